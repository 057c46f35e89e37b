"""The fields blob's move from JSON (format 2) to binary (format 3), on a real database:
the migration converts format-2 rows without a key and the values still open, leaves
format-1 and unreadable blobs alone, and its downgrade gives back the very bytes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from vault.crypto import FieldProvenance, FieldSealer
from vault.storage import migrate
from vault.storage.db import create_engine
from vault.storage.fields_blob import (
    BINARY,
    JSON_FORMAT,
    LEGACY_FORMAT,
    blob_format,
    decode_fields,
    encode_fields,
    encode_json,
)
from vault.subject import StoredField

TENANT = "acme"
VALUES = {
    "given_name": "Ada",
    "email": "ada@example.com",
    "notes": "Z\u00fcrich \u2014 \u65e5\u672c",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty vault database (no revision applied yet)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vault.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    made = create_engine(url)
    yield made
    made.dispose()


def _alembic(engine: Engine, verb: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "vault.storage:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, verb)(config, revision)


def _sealed_json(subject_id: str, dek: bytes, *, tagged: bool) -> bytes:
    """A blob as the vault wrote it before format 3 (format 2, or format 1 untagged)."""
    sealer = FieldSealer(dek, TENANT, subject_id)
    fields = {}
    for n, (name, value) in enumerate(VALUES.items(), start=1):
        provenance = FieldProvenance(n, f"writer-{n}", 1_700_000_000_000_000 + n)
        sealed = sealer.seal(name, value.encode(), provenance)
        version = n if tagged else None
        fields[name] = StoredField(sealed, provenance.written_by, provenance.written_at, version)
    if not tagged:
        return encode_json(fields, None)
    versions = {name: f.version or 0 for name, f in fields.items()}
    return encode_json(fields, sealer.seal_field_set(versions))


def _insert(engine: Engine, blobs: dict[str, bytes | None]) -> None:
    with engine.begin() as conn:
        for subject_id, blob in blobs.items():
            conn.execute(
                sa.text(
                    "INSERT INTO subjects (id, tenant, version, state, created_at, updated_at,"
                    " last_activity_at, legal_hold, kek_version, wrapped_dek, dek_id, fields)"
                    " VALUES (:id, 'acme', 3, 'active', 1, 1, 1, false, 1, :w, 1, :f)"
                ),
                {"id": subject_id, "w": b"\x00" * 40, "f": blob},
            )


def _blobs(engine: Engine) -> dict[str, bytes | None]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, fields FROM subjects")).all()
    return {i: bytes(b) if b is not None else None for i, b in rows}


def test_format_2_rows_become_binary_and_still_open_and_the_downgrade_restores_them(
    engine: Engine,
) -> None:
    _alembic(engine, "upgrade", "0001")
    dek = os.urandom(32)
    # More than one page of the migration's keyset walk.
    tagged = {f"sub_{n:04d}": _sealed_json(f"sub_{n:04d}", dek, tagged=True) for n in range(1203)}
    others: dict[str, bytes | None] = {
        "sub_legacy": _sealed_json("sub_legacy", dek, tagged=False),
        "sub_shredded": None,
        "sub_garbled": b'{"v":2,"f":{"email":["not base64!","x",1,1]},"t":"AAAA"}',
        "sub_notjson": b"\xff\xfe",
    }
    _insert(engine, {**tagged, **others})

    _alembic(engine, "upgrade", "fields_blob_binary")
    after = _blobs(engine)
    for subject_id, before in tagged.items():
        blob = after[subject_id]
        assert blob is not None and blob_format(blob) == BINARY and len(blob) < len(before)
        old, new = decode_fields(before), decode_fields(blob)
        assert new == old and new.tag == old.tag and new.versions == old.versions
    for subject_id, blob in others.items():
        assert after[subject_id] == blob  # format 1, shredded and unreadable: untouched
    assert blob_format(after["sub_legacy"] or b"") == LEGACY_FORMAT

    # Every converted value opens under its provenance, and the set under its tag.
    sample = decode_fields(after["sub_0007"])
    sealer = FieldSealer(dek, TENANT, "sub_0007")
    sealer.check_field_set({n: v or 0 for n, v in sample.versions.items()}, sample.tag or b"")
    for name, stored in sample.items():
        provenance = FieldProvenance(stored.version or 0, stored.written_by, stored.written_at)
        assert sealer.open(name, stored.sealed, provenance).decode() == VALUES[name]

    _alembic(engine, "downgrade", "0001")
    restored = _blobs(engine)
    assert restored == {**tagged, **others}
    assert all(blob_format(b) == JSON_FORMAT for b in tagged.values())


def test_stepping_back_converts_to_format_2_and_leaves_the_other_branches(
    engine: Engine,
) -> None:
    migrate.upgrade(engine)
    blob = _sealed_json("sub_0001", os.urandom(32), tagged=True)
    _insert(engine, {"sub_0001": blob})
    migrate.upgrade(engine)  # current already: nothing converted twice
    assert _blobs(engine)["sub_0001"] == blob  # inserted after the conversion ran
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE subjects SET fields = :f"),
            {"f": encode_fields(decode_fields(blob), decode_fields(blob).tag)},
        )
    before = set(sa.inspect(engine).get_table_names())

    migrate.step_back(engine, "fields_blob_binary")

    assert _blobs(engine)["sub_0001"] == blob
    assert set(sa.inspect(engine).get_table_names()) == before
    assert not migrate.is_current(engine)
    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    assert blob_format(_blobs(engine)["sub_0001"] or b"") == BINARY
