"""One-time customer links for the privacy center.

Revision ID: customer_links
Revises: 0002
Create Date: 2026-12-06

A branch of its own off 0002 (like 0004); `upgrade heads` applies every branch.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "customer_links"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_links",
        sa.Column("link_hash", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column(
            "subject_id",
            sa.String(40),
            sa.ForeignKey("subjects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_customer_links_expiry", "customer_links", ["expires_at"])


def downgrade() -> None:
    op.drop_table("customer_links")
