"""A fault in the audit store, made in the database itself: every insert into the audit
log fails while `audit_store_refusing` is active (test_audit_store_faults.py, and the
outbox's rollback test)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.integration.harness import RunningVault

_SQLITE_DOWN = (
    "CREATE TRIGGER audit_store_down BEFORE INSERT ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit store down'); END"
)
_PG_DOWN = (
    "CREATE FUNCTION audit_store_down() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit store down'; END $$",
    "CREATE TRIGGER audit_store_down BEFORE INSERT ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_store_down()",
)


@contextmanager
def audit_store_refusing(vault: RunningVault) -> Iterator[None]:
    """Every insert into the audit log fails (in the database itself) until the block ends."""
    engine = vault.app.db.engine
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        for statement in (_SQLITE_DOWN,) if sqlite else _PG_DOWN:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "DROP TRIGGER audit_store_down" + ("" if sqlite else " ON audit_entries")
            )
            if not sqlite:
                conn.exec_driver_sql("DROP FUNCTION audit_store_down()")
