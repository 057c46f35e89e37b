"""What the audit CLI needs besides its commands: the database, the key, the filters."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from audit.checkpoint import Checkpoint, CheckpointVerifier, split_note
from audit.db import create_sqlite_engine, is_current
from audit.errors import AuditError
from audit.proofs import latest_checkpoint
from audit.query import LoggedEntry

DEFAULT_DATABASE = Path(".vault-data") / "vault.db"


class CliError(Exception):
    """A set-up problem to report in one line (never with a URL's password in it)."""


def open_engine(database_url: str | None) -> Engine:
    """An engine on an existing database whose audit schema is current."""
    if database_url is None:
        engine = _sqlite(DEFAULT_DATABASE)
    else:
        try:
            url = make_url(database_url)
        except ArgumentError:
            raise CliError("--database-url is not a database URL") from None
        if url.get_backend_name() == "sqlite":
            engine = _sqlite(Path(url.database or ""))
        else:
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            engine = sa.create_engine(url, hide_parameters=True)
    try:
        current = is_current(engine)
    except DBAPIError:
        engine.dispose()
        raise CliError("cannot read the database") from None
    if not current:
        engine.dispose()
        raise CliError("no current audit schema there: run `customer-vault migrate` first")
    return engine


def _sqlite(path: Path) -> Engine:
    # SQLAlchemy would create a missing file; a typo must not look like an empty log.
    if not path.is_file():
        raise CliError(f"no database at {path}")
    return create_sqlite_engine(path)


def read_verifier(public_key: Path, origin: str | None) -> CheckpointVerifier:
    """A checkpoint verifier from a public key PEM file."""
    try:
        pem = public_key.read_bytes()
    except OSError:
        raise CliError(f"cannot read the public key {public_key}") from None
    try:
        return CheckpointVerifier.from_pem(pem, origin=origin)
    except AuditError as exc:
        raise CliError(f"{public_key}: {exc}") from None


def describe_checkpoint(note: str | None) -> str:
    """One line naming a checkpoint's origin, size and root (its signature unchecked)."""
    if note is None:
        return "none yet"
    try:
        body = note if "\n\n" not in note else split_note(note)[0]
        checkpoint = Checkpoint.parse(body)
    except AuditError:
        return "unreadable"
    root = base64.b64encode(checkpoint.root_hash).decode("ascii")
    return f"{checkpoint.origin}, size {checkpoint.size}, root {root}"


def filters(
    *,
    subject: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    decision: str | None = None,
    purpose: str | None = None,
    tenant: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """`audit.query` keyword arguments from the CLI's filter options."""
    return {
        "subject_id": subject,
        "actor": actor,
        "action": action,
        "decision": decision,
        "purpose": purpose,
        "tenant": tenant,
        "since": _parse_time(since, "--since"),
        "until": _parse_time(until, "--until"),
    }


def _parse_time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} is not an ISO 8601 time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def take(found: Iterable[LoggedEntry], count: int) -> list[LoggedEntry]:
    """The first `count` entries (`count + 1` tells whether more exist)."""
    return list(itertools.islice(found, count))


_LABELS = {
    "subject_id": "Subject",
    "actor": "Actor",
    "action": "Action",
    "decision": "Decision",
    "purpose": "Purpose",
    "tenant": "Tenant",
    "since": "From",
    "until": "Before",
}


def report_summary(engine: Engine, given: dict[str, Any]) -> dict[str, str]:
    """What an HTML report covers: its filters, and the log's latest checkpoint."""
    summary = {
        label: value.isoformat() if isinstance(value, datetime) else str(value)
        for name, label in _LABELS.items()
        if (value := given[name]) is not None
    }
    summary["Log checkpoint"] = describe_checkpoint(latest_checkpoint(engine))
    return summary
