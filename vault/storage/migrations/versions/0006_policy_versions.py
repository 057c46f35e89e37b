"""Every policy version the vault served, content-addressed (`policy simulate`, `audit
explain`).

Revision ID: policy_versions
Revises: 0001
Create Date: 2026-12-06

A branch of its own off 0001: the table depends on no other; `upgrade heads` applies
every branch.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "policy_versions"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.String(16), primary_key=True),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("first_served_us", sa.BigInteger, nullable=False),
        sa.Column("last_served_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("policy_versions")
