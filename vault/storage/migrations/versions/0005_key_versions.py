"""Key versions on blind indexes and tokens (rotatable blind-index and token keys).

Revision ID: 0005_key_versions
Revises: 0002
Create Date: 2026-12-06

Every stored digest and token records the version of the root secret it was derived
under, so a rotation can re-index (blind indexes), refuse retired tokens, and retire a
version only once nothing refers to it. Rows written before this revision were made
with the only secret there was, which a format-1 key document names version 1.
A branch of its own off 0002, like consent and retention.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_key_versions"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("blind_indexes", "tokens"):
        op.add_column(
            table,
            sa.Column("key_version", sa.Integer, nullable=False, server_default=sa.text("1")),
        )
    # The re-index walks one old version's subjects in id order, a batch at a time.
    op.create_index("ix_blind_indexes_key_version", "blind_indexes", ["key_version", "subject_id"])
    op.create_index("ix_tokens_key_version", "tokens", ["key_version"])


def downgrade() -> None:
    op.drop_index("ix_blind_indexes_key_version", table_name="blind_indexes")
    op.drop_index("ix_tokens_key_version", table_name="tokens")
    for table in ("blind_indexes", "tokens"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("key_version")
