"""Consent: the append-only consent ledger, opt-outs and signed consent receipts.

Below the records in the layers (.importlinter): every read of a subject derives its
consent from `ledger` in the read's own transaction; `models.subject_context` is what
the policy is told about a subject (state, hold, consent). The service checks access
through `vault.access` and writes through `vault.storage`; it never imports records.
"""
