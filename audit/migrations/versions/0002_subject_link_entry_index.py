"""Index subject links by entry, for the verifier's per-leaf link check.

Revision ID: audit_0002
Revises: audit_0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from alembic import op

revision = "audit_0002"
down_revision = "audit_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_entry_subjects_entry", "audit_entry_subjects", ["entry_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_entry_subjects_entry", table_name="audit_entry_subjects")
