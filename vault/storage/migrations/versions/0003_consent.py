"""The consent ledger and its signed receipts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_events",
        sa.Column("id", _SEQUENCE, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(40), sa.ForeignKey("subjects.id"), nullable=False),
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
    )
    op.create_index("ix_consent_events_subject", "consent_events", ["subject_id", "id"])
    op.create_index("ix_consent_events_receipt", "consent_events", ["receipt_id"])
    op.create_table(
        "consent_receipts",
        sa.Column("receipt_id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(40), sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
    )
    op.create_index("ix_consent_receipts_subject", "consent_receipts", ["subject_id"])


def downgrade() -> None:
    op.drop_index("ix_consent_receipts_subject", table_name="consent_receipts")
    op.drop_table("consent_receipts")
    op.drop_index("ix_consent_events_receipt", table_name="consent_events")
    op.drop_index("ix_consent_events_subject", table_name="consent_events")
    op.drop_table("consent_events")
