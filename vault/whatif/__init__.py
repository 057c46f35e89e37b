"""Policy what-if and as-of: every served policy version kept (`versions`), past
decisions asked again against a draft (`replay`, `matrix`, `gate`), and one past
entry explained under the policy and consent of its moment (`explain`).

Every decision here is made by `vault.policy.PolicyEngine`, the production engine,
loaded with the draft's or the stored version's files; nothing re-implements it.
"""
