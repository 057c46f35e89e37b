"""The integration suite's way to start a vault: `vault.testing.running_vault` (the
start-up path `customer-vault serve` takes), plus what the suite adds around it: every
audit entry a test's vault wrote is handed to the PII watch before the vault closes."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc
from sqlalchemy.engine import make_url

import audit
from tests import pii_watch
from vault import testing
from vault.clock import Clock
from vault.config import Settings
from vault.storage import migrate
from vault.storage.db import create_engine
from vault.storage.fields_blob import BINARY, blob_format, decode_fields
from vault.testing import RunningVault
from vault.testing import vault_settings as settings_for

__all__ = ["RunningVault", "raw_stub", "running_vault", "settings_for", "shreddable_copies"]


@contextmanager
def running_vault(settings: Settings, clock: Clock | None = None) -> Iterator[RunningVault]:
    """`vault.testing.running_vault`, and at the end, once the server has stopped and
    before the app closes, the audit log goes to the PII watch (tests/pii_watch.py).

    An embedded vault whose database file does not exist yet starts from a copy of one
    migrated once per test process: its start-up still runs the migrations, which find
    nothing to do."""
    if settings.is_embedded:
        _copy_sqlite_template(Path(make_url(settings.resolved_database_url).database or ""))
    with testing.running_vault(settings, clock) as vault:
        try:
            yield vault
        finally:
            for client in vault.clients:
                client.__exit__(None, None, None)
            vault.clients.clear()
            vault.server.stop(0)
            pii_watch.export_audit(vault.app.db.engine)


_sqlite_template: list[Path] = []


def _copy_sqlite_template(target: Path) -> None:
    if target.exists():
        return
    if not _sqlite_template:
        folder = Path(tempfile.mkdtemp(prefix="cvt-sqlite-template-"))
        atexit.register(shutil.rmtree, folder, True)
        engine = create_engine(f"sqlite:///{folder / target.name}")
        try:
            migrate.upgrade(engine)
            audit.migrate(engine)
        finally:
            engine.dispose()
        _sqlite_template.append(folder / target.name)
    template = _sqlite_template[0]
    assert not template.with_name(template.name + "-wal").exists()  # all in the file
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


def raw_stub(vault: RunningVault) -> tuple[vault_pb2_grpc.VaultServiceStub, grpc.Channel]:
    """A raw VaultService stub (no token) and its channel, for calls the client hides."""
    channel = grpc.insecure_channel(vault.address)
    return vault_pb2_grpc.VaultServiceStub(channel), channel


def shreddable_copies(engine: sa.engine.Engine, subject_ids: Sequence[str]) -> list[bytes]:
    """What erasing or anonymizing these subjects destroys, as it lies in the database
    files: the wrapped data keys, the sealed fields' ciphertexts and the field-set tag
    (raw in a binary blob, base64 inside a JSON one), the blind-index digests and the
    token strings."""
    found: list[bytes] = []
    ids = list(subject_ids)
    with engine.connect() as conn:
        query = sa.text("SELECT wrapped_dek, fields FROM subjects WHERE id IN :ids")
        for wrapped, blob in conn.execute(_expanding(query), {"ids": ids}):
            found.append(bytes(wrapped))
            found += _sealed_copies(bytes(blob))
        for table, column in (("blind_indexes", "digest"), ("tokens", "token")):
            query = sa.text(f"SELECT {column} FROM {table} WHERE subject_id IN :ids")
            rows = conn.execute(_expanding(query), {"ids": ids})
            found += [_raw(value) for (value,) in rows]
    return found


def _sealed_copies(blob: bytes) -> list[bytes]:
    if blob_format(blob) != BINARY:
        return [text.encode() for text in _strings(json.loads(blob))]
    fields = decode_fields(blob)
    return [f.sealed for f in fields.values()] + [fields.tag or b""]


def _expanding(query: sa.TextClause) -> sa.TextClause:
    return query.bindparams(sa.bindparam("ids", expanding=True))


def _raw(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _strings(value: object) -> Iterator[str]:
    """The long strings (ciphertexts) anywhere in decoded JSON."""
    if isinstance(value, str):
        if len(value) >= 24:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
