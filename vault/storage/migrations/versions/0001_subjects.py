"""Subjects and blind indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subjects",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("last_activity_at", sa.BigInteger, nullable=False),
        sa.Column("legal_hold", sa.Boolean, nullable=False),
        sa.Column("kek_version", sa.Integer, nullable=True),
        sa.Column("wrapped_dek", sa.LargeBinary, nullable=True),
        sa.Column("dek_id", sa.Integer, nullable=False),
        sa.Column("fields", sa.LargeBinary, nullable=True),
    )
    op.create_index(
        "ix_subjects_tenant_state_activity", "subjects", ["tenant", "state", "last_activity_at"]
    )
    op.create_index("ix_subjects_kek_version", "subjects", ["kek_version"])
    op.create_table(
        "blind_indexes",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("field", sa.String(64), primary_key=True),
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column(
            "subject_id",
            sa.String(40),
            sa.ForeignKey("subjects.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_index("ix_blind_indexes_subject", "blind_indexes", ["subject_id"])


def downgrade() -> None:
    op.drop_table("blind_indexes")
    op.drop_table("subjects")
