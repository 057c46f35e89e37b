"""Idempotency keys of mutating calls (AIP-155 request_id).

Revision ID: idempotency_keys
Revises: 0001
Create Date: 2026-12-06

A branch of its own (like customer_links); `upgrade heads` applies every branch. The
table refers to no other, so it hangs off the first revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "idempotency_keys"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(255), primary_key=True),
        sa.Column("method", sa.String(128), primary_key=True),
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=True),
        sa.Column("subject_ids", sa.Text, nullable=False, server_default="[]"),
        sa.Column("call_request_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
