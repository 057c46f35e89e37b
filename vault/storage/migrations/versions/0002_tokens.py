"""Reversible tokens (token -> subject and field).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(80), primary_key=True),
        sa.Column(
            "subject_id",
            sa.String(40),
            sa.ForeignKey("subjects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_tokens_subject", "tokens", ["subject_id"])


def downgrade() -> None:
    op.drop_index("ix_tokens_subject", table_name="tokens")
    op.drop_table("tokens")
