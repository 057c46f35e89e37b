"""Data-subject requests from the privacy center (rectification, restriction, erasure).

Revision ID: subject_requests
Revises: 0002
Create Date: 2026-12-06

A branch of its own off 0002 (like customer_links); `upgrade heads` applies every branch.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "subject_requests"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column(
            "subject_id",
            sa.String(40),
            sa.ForeignKey("subjects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("jurisdiction", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("deadline_at", sa.BigInteger, nullable=False),
        sa.Column("verified_at", sa.BigInteger, nullable=True),
        sa.Column("decided_at", sa.BigInteger, nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.Column("proposed", sa.LargeBinary, nullable=True),
        sa.Column("proposed_fields", sa.String(1000), nullable=True),
        sa.Column("verification_failures", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_subject_requests_queue", "subject_requests", ["tenant", "state", "deadline_at"]
    )
    op.create_index("ix_subject_requests_subject", "subject_requests", ["subject_id", "created_at"])


def downgrade() -> None:
    op.drop_table("subject_requests")
