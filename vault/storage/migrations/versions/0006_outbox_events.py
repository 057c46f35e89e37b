"""The transactional outbox: events for the organization's systems (vault.storage.events).

Revision ID: outbox_events
Revises: 0002
Create Date: 2026-12-06

A branch of its own off 0002 (like 0004 and customer_links); `upgrade heads` applies
every branch.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outbox_events"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("occurred_at", sa.BigInteger, nullable=False),
        sa.Column("facts", sa.Text, nullable=False),
    )
    op.create_index("ux_outbox_events_seq", "outbox_events", ["seq"], unique=True)
    op.create_index("ix_outbox_events_tenant_seq", "outbox_events", ["tenant", "seq"])
    op.create_index("ix_outbox_events_occurred", "outbox_events", ["occurred_at"])


def downgrade() -> None:
    op.drop_table("outbox_events")
