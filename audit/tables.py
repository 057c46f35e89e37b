"""The audit log's own tables (SQLAlchemy Core), all prefixed `audit_`.

- `audit_entries`: one row per entry. The database assigns `id` at insert; the
  integrator assigns `leaf_index` later, so ids may have gaps or commit out of order
  while leaf indexes stay dense. `entry` holds the canonical bytes the leaf hash covers;
  the query columns are copies of identifiers and codes for indexed look-ups.
- `audit_entry_subjects`: which subjects an entry concerns ("who saw this subject").
- `audit_checkpoints`: every signed checkpoint, one per tree size.
- `audit_cosignatures`: witnesses' cosignatures of checkpoints (C2SP tlog-cosignature).
- `audit_tree_state`: one row, the compact range of the integrated tree (a cache the
  integrator extends; the verifier recomputes it from the leaves).

Indexes cover identifiers, codes and times only: never free text such as justification.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

# SQLite only autoincrements an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
IdType = BigInteger().with_variant(Integer(), "sqlite")

entries = Table(
    "audit_entries",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("leaf_index", BigInteger, nullable=True),
    Column("time_us", BigInteger, nullable=False),
    Column("actor", String, nullable=False),
    Column("tenant", String, nullable=False),
    Column("action", String, nullable=False),
    Column("decision", String, nullable=False),
    Column("purpose", String, nullable=False),
    Column("result_code", String, nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    # HMAC-SHA256 of `entry` under a key kept outside the database (audit.mac); NULL
    # for entries written before audit_0003. The leaf hash covers it.
    Column("mac", LargeBinary, nullable=True),
    Index("ix_audit_entries_leaf_index", "leaf_index", unique=True),
    # The integrator's queue: rows not yet in the tree, in id order.
    Index(
        "ix_audit_entries_pending",
        "id",
        postgresql_where=text("leaf_index IS NULL"),
        sqlite_where=text("leaf_index IS NULL"),
    ),
    Index("ix_audit_entries_time", "time_us"),
    # (column, id) pairs serve "filter, then keyset-page on id" without a sort.
    Index("ix_audit_entries_actor", "actor", "id"),
    Index("ix_audit_entries_tenant", "tenant", "id"),
    Index("ix_audit_entries_action", "action", "id"),
    Index("ix_audit_entries_decision", "decision", "id"),
    Index("ix_audit_entries_purpose", "purpose", "id"),
    Index("ix_audit_entries_result_code", "result_code", "id"),
)

entry_subjects = Table(
    "audit_entry_subjects",
    metadata,
    Column("subject_id", String, primary_key=True),
    Column("tenant", String, primary_key=True),
    Column("entry_id", IdType, ForeignKey("audit_entries.id"), primary_key=True),
    # The verifier checks every leaf's links: entry -> subjects.
    Index("ix_audit_entry_subjects_entry", "entry_id"),
)

checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

cosignatures = Table(
    "audit_cosignatures",
    metadata,
    # One witness's cosignature (a C2SP tlog-cosignature note line) of the checkpoint
    # (origin, size, root_hash); the checkpoint body is rebuilt from these to check it.
    Column("witness", String, primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("line", Text, nullable=False),
    Column("cosigned_at", BigInteger, nullable=False),
)

tree_state = Table(
    "audit_tree_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("compact_range", LargeBinary, nullable=False),
    Column("root_hash", LargeBinary, nullable=False),
)

TREE_STATE_ID = 1
