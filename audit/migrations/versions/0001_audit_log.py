"""The audit log: entries, subject links, checkpoints and tree state.

Revision ID: audit_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copy of the types at this revision: later edits to audit.tables must not
# change what this migration creates.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_PENDING = "leaf_index IS NULL"


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("leaf_index", sa.BigInteger, nullable=True),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("decision", sa.String, nullable=False),
        sa.Column("purpose", sa.String, nullable=False),
        sa.Column("result_code", sa.String, nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_audit_entries_leaf_index", "audit_entries", ["leaf_index"], unique=True)
    op.create_index(
        "ix_audit_entries_pending",
        "audit_entries",
        ["id"],
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )
    op.create_index("ix_audit_entries_time", "audit_entries", ["time_us"])
    for column in ("actor", "tenant", "action", "decision", "purpose", "result_code"):
        op.create_index(f"ix_audit_entries_{column}", "audit_entries", [column, "id"])

    op.create_table(
        "audit_entry_subjects",
        sa.Column("subject_id", sa.String, primary_key=True),
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("entry_id", _ID, sa.ForeignKey("audit_entries.id"), primary_key=True),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    tree_state = op.create_table(
        "audit_tree_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("compact_range", sa.LargeBinary, nullable=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
    )
    # The single state row exists from the start, so integrators only ever update it.
    empty_root = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    op.bulk_insert(
        tree_state, [{"id": 1, "size": 0, "compact_range": b"", "root_hash": empty_root}]
    )


def downgrade() -> None:
    op.drop_table("audit_tree_state")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_entry_subjects")
    op.drop_table("audit_entries")
