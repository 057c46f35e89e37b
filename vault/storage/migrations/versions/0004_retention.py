"""Retention: notices, legal holds, anonymized records and run reports.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01

A branch of its own off 0002 (consent adds 0003 beside it); `upgrade heads` applies both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_notices",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column(
            "subject_id",
            sa.String(40),
            sa.ForeignKey("subjects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("prior_state", sa.String(24), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("deadline_at", sa.BigInteger, nullable=False),
        sa.Column("closed_at", sa.BigInteger, nullable=True),
        sa.Column("close_reason", sa.String(32), nullable=True),
        sa.Column("acknowledged_at", sa.BigInteger, nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
    )
    op.create_index("ix_retention_notices_due", "retention_notices", ["status", "deadline_at"])
    op.create_index(
        "ix_retention_notices_tenant",
        "retention_notices",
        ["tenant", "status", "deadline_at", "id"],
    )
    op.create_index("ix_retention_notices_subject", "retention_notices", ["subject_id"])
    op.create_table(
        "legal_holds",
        sa.Column(
            "subject_id",
            sa.String(40),
            sa.ForeignKey("subjects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("set_by", sa.String(256), nullable=False),
        sa.Column("set_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_legal_holds_tenant", "legal_holds", ["tenant", "subject_id"])
    op.create_table(
        "anonymized_records",
        sa.Column("pseudonym", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("anonymized_on", sa.String(10), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "retention_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )
    op.create_index("ix_retention_runs_started", "retention_runs", ["started_at"])


def downgrade() -> None:
    op.drop_table("retention_runs")
    op.drop_table("anonymized_records")
    op.drop_table("legal_holds")
    op.drop_table("retention_notices")
