"""The consent ledger's tables (registered on the vault's one `metadata`).

Rows hold ids, purpose names, codes and times only: never a personal data value. They
are never updated or deleted, not even by erasure: the ledger is the evidence of what
the subject chose, and an erased subject's ledger identifies nobody once the subject's
personal data is crypto-shredded (the subject id is random, the evidence reference is
checked not to be personal data). Migration: 0003_consent.
"""

from __future__ import annotations

import sqlalchemy as sa

from vault.storage.tables import metadata

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

consent_events = sa.Table(
    "consent_events",
    metadata,
    # The ledger position: increases with every event; a subject's consent version is
    # the id of its latest event.
    sa.Column("id", _SEQUENCE, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("subject_id", sa.String(40), sa.ForeignKey("subjects.id"), nullable=False),
    # A declared purpose or an opt-out marker (all_marketing, all_sharing).
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("notice_version", sa.String(64), nullable=False),
    sa.Column("evidence_ref", sa.String(128), nullable=True),
    sa.Column("jurisdiction", sa.String(16), nullable=False),
    sa.Column("receipt_id", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Index("ix_consent_events_subject", "subject_id", "id"),
    sa.Index("ix_consent_events_receipt", "receipt_id"),
)

# The signed receipt of each change, as issued (canonical JSON of receipt + signature).
consent_receipts = sa.Table(
    "consent_receipts",
    metadata,
    sa.Column("receipt_id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("subject_id", sa.String(40), sa.ForeignKey("subjects.id"), nullable=False),
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Index("ix_consent_receipts_subject", "subject_id"),
)
