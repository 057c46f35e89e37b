"""Retention's tables, on the vault's metadata (migration 0004_retention).

- `retention_notices`: one row per notice. At most one is open per subject: a notice is
  only created with the subject's move to pending_anonymization, under the row's lock,
  and closed with its move out. The prior state is kept so a cancelled notice gives a
  restricted subject back as restricted.
- `legal_holds`: the holds in force, with their reason; the history is in the audit log.
- `anonymized_records`: what anonymization keeps: a fresh random pseudonym and the
  generalized attributes as canonical JSON. There is deliberately no subject id: the
  link to the customer dies with the data key. Only the day is stored and, on SQLite,
  rows are ordered by the random pseudonym (WITHOUT ROWID), so neither a timestamp nor
  the insertion order ties a record back to its tombstone.

Indexes are chosen for the job's write volume: an anonymization run touches millions
of index entries, and every index keyed by a random id costs a random page write per
subject. The notice indexes follow the deadline (the order the job works in), and the
k-anonymity report groups the records without an index (one sort per run).
- `retention_runs`: the report of every finished run (counts only, no personal data).
"""

from __future__ import annotations

import sqlalchemy as sa

from vault.storage.tables import metadata

OPEN = "open"
CANCELLED = "cancelled"
COMPLETED = "completed"

notices = sa.Table(
    "retention_notices",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column(
        "subject_id",
        sa.String(40),
        sa.ForeignKey("subjects.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("prior_state", sa.String(24), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("deadline_at", sa.BigInteger, nullable=False),
    sa.Column("closed_at", sa.BigInteger, nullable=True),
    sa.Column("close_reason", sa.String(32), nullable=True),
    sa.Column("acknowledged_at", sa.BigInteger, nullable=True),
    sa.Column("acknowledged_by", sa.String(128), nullable=True),
    sa.Index("ix_retention_notices_due", "status", "deadline_at"),
    sa.Index("ix_retention_notices_tenant", "tenant", "status", "deadline_at", "id"),
    sa.Index("ix_retention_notices_subject", "subject_id"),
)

legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column(
        "subject_id",
        sa.String(40),
        sa.ForeignKey("subjects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(1000), nullable=False),
    sa.Column("set_by", sa.String(256), nullable=False),
    sa.Column("set_at", sa.BigInteger, nullable=False),
    sa.Index("ix_legal_holds_tenant", "tenant", "subject_id"),
)

anonymized_records = sa.Table(
    "anonymized_records",
    metadata,
    sa.Column("pseudonym", sa.String(40), primary_key=True),
    sa.Column("tenant", sa.String(64), nullable=False),
    sa.Column("attributes", sa.Text, nullable=False),
    sa.Column("anonymized_on", sa.String(10), nullable=False),
    sqlite_with_rowid=False,
)

runs = sa.Table(
    "retention_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Index("ix_retention_runs_started", "started_at"),
)
