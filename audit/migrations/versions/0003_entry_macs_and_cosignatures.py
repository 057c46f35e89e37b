"""Per-entry MACs and witness cosignatures.

`audit_entries.mac` is nullable: entries written before this revision keep no MAC (their
leaf hash covers the entry bytes alone, as it always did), so nothing is rewritten and
every existing checkpoint still verifies. Expand-only: old replicas ignore both.

Revision ID: audit_0003
Revises: audit_0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "audit_0003"
down_revision = "audit_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("mac", sa.LargeBinary, nullable=True))
    op.create_table(
        "audit_cosignatures",
        sa.Column("witness", sa.String, primary_key=True),
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("cosigned_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_cosignatures")
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_column("mac")
