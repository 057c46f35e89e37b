"""Shared pieces of the retention tests: a clock the test moves, customers with known
PII, and readers for the database and the audit log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import audit
from tests.data import ADMIN
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault.api.client import VaultClient
from vault.config import Settings
from vault.retention.job import RetentionJob
from vault.retention.locking import runner_lock_for
from vault.retention.preparer import ChildPreparerSetup
from vault.retention.rules import RULES_FILE, RetentionRules

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
DEFAULT_DAYS, NOTICE_DAYS = 1095, 30  # policies/retention.yaml, rule "*" (tenant acme)


class TestClock:
    """A settable clock shared by the server, the token issuer and the job."""

    __test__ = False

    def __init__(self, now: datetime = T0) -> None:
        self._now = now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


@contextmanager
def retention_vault(
    data_dir: Path, database_url: str | None, clock: TestClock, **overrides: Any
) -> Iterator[RunningVault]:
    """A running vault on the test clock, without the in-process schedule (the tests
    run the job themselves)."""
    settings = settings_for(data_dir, database_url, **{"retention_schedule": "", **overrides})
    with running_vault(settings, clock=clock) as running:
        yield running


def job_with_child(rv: RunningVault, clock: TestClock, batch_size: int) -> RetentionJob:
    """The vault's retention job, except that every run prepares its batches in a child
    process, as the vault's own job does only for a run of ten batches or more."""
    app = rv.app
    rules = RetentionRules.from_file(app.settings.policies_dir / RULES_FILE)
    return RetentionJob(
        db=app.db,
        rules=rules,
        anonymizer=app.retention_job._batches._anonymizer,
        clock=clock,
        lock=runner_lock_for(app.db.engine, app.settings.data_dir),
        batch_size=batch_size,
        child=ChildPreparerSetup(app.settings, app.dictionary),
        child_from_batches=1,
    )


def customer(n: int, tenant_tag: str = "") -> dict[str, str]:
    """A customer whose every value is unique to `n` (so a scan can find each one)."""
    return {
        "given_name": f"Zephyrine{_letters(n)}",
        "family_name": f"Quillfeather{_letters(n)}{tenant_tag}",
        "email": f"zq.{n}.{tenant_tag}mail@example.net",
        "phone": f"+1415555{n % 10000:04d}",
        "date_of_birth": f"19{70 + n % 30}-0{1 + n % 9}-1{n % 10}",
        "street_address": f"{100 + n} Marmalade Lane",
        "city": f"Brindlewick{_letters(n)}",
        "postal_code": f"ZQ{n % 10}-{n:04d}",
        "country": "US" if n % 3 else "DE",
        "national_id": f"NX-{n:06d}-Q",
        "loyalty_tier": ("bronze", "silver", "gold", "platinum")[n % 4],
        "notes": f"Collects antique barometers #{n}",
    }


def _letters(n: int) -> str:
    digits = "abcdefghij"
    return "".join(digits[int(c)] for c in str(n))


def admin(vault: RunningVault, tenant: str = "acme") -> VaultClient:
    """A fresh admin client (tokens are minted at the clock's current time)."""
    return vault.client(tenant=tenant, **ADMIN)  # type: ignore[arg-type]


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def audit_actions_per_subject(engine: Engine, action: str) -> dict[str, int]:
    """How many audit entries of `action` name each subject."""
    found = rows(
        engine,
        "SELECT s.subject_id, count(*) FROM audit_entry_subjects s "
        "JOIN audit_entries e ON e.id = s.entry_id WHERE e.action = :action "
        "GROUP BY s.subject_id",
        action=action,
    )
    return {subject_id: int(count) for subject_id, count in found}


def verify_audit_log(vault: RunningVault) -> int:
    """Integrate every pending entry, then verify the whole log; returns its size."""
    return verify_audit_log_at(vault.app.db.engine, vault.settings)


def verify_audit_log_at(engine: Engine, settings: Settings) -> int:
    """The same for any vault database, with the keys in `settings`' data dir."""
    signer = audit.CheckpointSigner(
        settings.resolved_audit_signing_key.read_bytes(), settings.audit_origin
    )
    integrator = audit.Integrator(engine, signer, settings.audit_origin)
    while integrator.integrate() is not None:
        pass
    verifier = audit.CheckpointVerifier.from_pem(
        settings.audit_public_key.read_bytes(), settings.audit_origin
    )
    report = audit.verify_log(engine, verifier)
    report.raise_for_failure()
    return report.size


def dump_database(engine: Engine) -> Iterator[tuple[str, str, Any]]:
    """(table, column, value) for every value of every table, as stored."""
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            result = conn.execute(sa.text(f'SELECT * FROM "{table}"'))
            columns = list(result.keys())
            for row in result:
                for column, value in zip(columns, row, strict=True):
                    yield table, column, value


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")
