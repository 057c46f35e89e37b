"""Consent: the append-only consent ledger, opt-outs and signed consent receipts.

Kept import-light on purpose: `vault.records` reads the ledger on every read, and the
consent service builds on `vault.records`; import the submodules you need.
"""
