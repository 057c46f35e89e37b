"""Access: who may do what to which subject, asked once per operation.

`guard.authorize` asks the policy (the decision itself is made in `vault.policy`) and
records the decision and its rule on the call, allowed or denied, for the audit entry;
`guard.load_own_subject` refuses a subject of another tenant as if it were missing.
Every domain service (records, consent, rights, retention) and the admin and audit
servicers start here.
"""
