"""Key rotation without downtime, and ciphertexts that refuse to move."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import struct
import time
from contextlib import closing
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from typer.testing import CliRunner

from tests.data import ADA
from tests.integration.harness import RunningVault
from vault import key_custody
from vault.api.client import VaultClientError
from vault.cli.main import app as cli_app
from vault.crypto import LocalKeyFileProvider, WrappedDataKey
from vault.storage.fields_blob import (
    BINARY,
    blob_format,
    decode_fields,
    encode_fields,
    encode_json,
)
from vault.subject import StoredField

READER = {"principal": "dpo-desk", "roles": ("dpo",)}


def _read(vault: RunningVault, subject_id: str) -> dict[str, str]:
    view = vault.client(**READER).get(subject_id, "full", "data_subject_request", "DSR-1")  # type: ignore[arg-type]
    return {name: f.value for name, f in view.fields.items()}


def _wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.05)


def test_rotation_keeps_data_readable_and_leaves_nothing_on_the_old_kek(
    vault: RunningVault,
) -> None:
    writer = vault.client()
    ids = [r.subject_id for r in writer.batch_create([ADA] * 120).results]
    before = _read(vault, ids[0])
    provider = LocalKeyFileProvider(vault.settings.resolved_key_file)
    assert provider.add_kek_version() == 2
    # Readable throughout the background re-wrap, and new writes use v2.
    fresh = writer.create(ADA).subject_id
    for subject_id in (ids[0], ids[-1], fresh):
        assert _read(vault, subject_id) == before
    _wait_for(lambda: key_custody.status(vault.app.db, provider).pending_rewrap == 0)
    status = key_custody.status(vault.app.db, provider)
    assert status.active_version == 2
    assert status.data_keys_by_version.get(1, 0) == 0
    key_custody.retire(vault.app.db, provider, 1)
    assert provider.kek_versions() == (2,)
    assert _read(vault, ids[57]) == before


def test_the_active_or_a_used_kek_cannot_be_retired(sqlite_vault: RunningVault) -> None:
    sqlite_vault.client().create(ADA)
    provider = LocalKeyFileProvider(sqlite_vault.settings.resolved_key_file)
    with pytest.raises(Exception, match="active"):
        key_custody.retire(sqlite_vault.app.db, provider, 1)


@pytest.mark.parametrize("column", ["fields", "wrapped_dek"])
def test_a_ciphertext_moved_to_another_subject_fails_opaquely(
    vault: RunningVault, column: str
) -> None:
    client = vault.client()
    first = client.create(ADA).subject_id
    second = client.create({**ADA, "given_name": "Charles"}).subject_id
    with vault.app.db.engine.begin() as conn:
        moved = conn.execute(
            sa.text(f"SELECT {column} FROM subjects WHERE id = :id"), {"id": first}
        ).scalar_one()
        conn.execute(
            sa.text(f"UPDATE subjects SET {column} = :v WHERE id = :id"),
            {"v": moved, "id": second},
        )
    with pytest.raises(VaultClientError) as caught:
        _read(vault, second)
    assert caught.value.code == "DATA_LOSS"
    assert caught.value.message == "decryption failed"
    assert _read(vault, first)["given_name"] == "Augusta Ada"


def test_a_ciphertext_moved_to_another_field_fails_opaquely(sqlite_vault: RunningVault) -> None:
    client = sqlite_vault.client()
    subject = client.create(ADA).subject_id
    with sqlite_vault.app.db.engine.begin() as conn:
        blob = conn.execute(
            sa.text("SELECT fields FROM subjects WHERE id = :id"), {"id": subject}
        ).scalar_one()
        doc = _doc(blob)
        doc["f"]["family_name"][0] = doc["f"]["given_name"][0]
        conn.execute(
            sa.text("UPDATE subjects SET fields = :v WHERE id = :id"),
            {"v": _encoded(doc), "id": subject},
        )
    with pytest.raises(VaultClientError) as caught:
        _read(sqlite_vault, subject)
    assert (caught.value.code, caught.value.message) == ("DATA_LOSS", "decryption failed")


# A DBA with write access to the database file, and an older copy of a subject's row.


def _raw_db(vault: RunningVault) -> sqlite3.Connection:
    """The SQLite file itself, opened beside the running vault as a DBA would."""
    return sqlite3.connect(vault.settings.data_dir / "vault.db", timeout=10)


def _doc(blob: bytes) -> dict[str, Any]:
    """A stored blob (any format) as an editable document shaped like format 2's JSON:
    {"v": format, "f": {name: [sealed base64, writer, written_at, version]}, "t": tag}."""
    fields = decode_fields(blob)
    entries = {
        name: [base64.b64encode(f.sealed).decode(), f.written_by, f.written_at, f.version]
        for name, f in fields.items()
    }
    tag = base64.b64encode(fields.tag).decode() if fields.tag is not None else None
    return {"v": blob_format(blob), "f": entries, "t": tag}


def _encoded(doc: dict[str, Any]) -> bytes:
    """`doc` written back as the vault writes a blob now (format 3), edits and all."""
    fields = {
        name: StoredField(base64.b64decode(sealed), writer, at, version)
        for name, (sealed, writer, at, version) in doc["f"].items()
    }
    return encode_fields(fields, base64.b64decode(doc["t"]))


def _blob(vault: RunningVault, subject_id: str) -> dict[str, Any]:
    with closing(_raw_db(vault)) as db:
        (blob,) = db.execute("SELECT fields FROM subjects WHERE id = ?", (subject_id,)).fetchone()
    return _doc(blob)


def _put_blob(vault: RunningVault, subject_id: str, doc: dict[str, Any]) -> None:
    with closing(_raw_db(vault)) as db, db:
        db.execute("UPDATE subjects SET fields = ? WHERE id = ?", (_encoded(doc), subject_id))


def _refused_and_audited(vault: RunningVault, subject_id: str) -> None:
    with pytest.raises(VaultClientError) as caught:
        _read(vault, subject_id)
    assert (caught.value.code, caught.value.message) == ("DATA_LOSS", "decryption failed")
    query = sa.text(
        "SELECT count(*) FROM audit_entries e JOIN audit_entry_subjects s ON s.entry_id = e.id "
        "WHERE e.action = 'GetSubject' AND e.result_code = 'DATA_LOSS' AND s.subject_id = :s"
    )

    def _audited() -> bool:
        with vault.app.db.engine.connect() as conn:
            return int(conn.execute(query, {"s": subject_id}).scalar_one()) >= 1

    _wait_for(_audited)


def _rectified(vault: RunningVault) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A subject whose e-mail was changed: its id, its blob before and after."""
    client = vault.client()
    subject = client.create(ADA).subject_id
    before = _blob(vault, subject)
    client.update(subject, 1, {"email": "ada@new.example"}, reason="rectification")
    return subject, before, _blob(vault, subject)


def test_a_field_rolled_back_to_its_older_ciphertext_does_not_open(
    sqlite_vault: RunningVault,
) -> None:
    subject, before, after = _rectified(sqlite_vault)
    assert after["f"]["email"][3] == 2 and after["f"]["given_name"][3] == 1
    assert _read(sqlite_vault, subject)["email"] == "ada@new.example"

    # The old ciphertext alone, under the current provenance: the bound version differs.
    rolled = json.loads(json.dumps(after))
    rolled["f"]["email"][0] = before["f"]["email"][0]
    _put_blob(sqlite_vault, subject, rolled)
    _refused_and_audited(sqlite_vault, subject)

    # The whole old entry (ciphertext, writer, time and version): the field set differs.
    rolled["f"]["email"] = before["f"]["email"]
    _put_blob(sqlite_vault, subject, rolled)
    _refused_and_audited(sqlite_vault, subject)

    # An update does not launder it: the stored set is checked before it is re-tagged.
    with pytest.raises(VaultClientError) as caught:
        sqlite_vault.client().update(subject, 2, {"phone": "+44 20 7946 0019"}, reason="fix")
    assert caught.value.code == "DATA_LOSS"
    _put_blob(sqlite_vault, subject, after)
    assert _read(sqlite_vault, subject)["email"] == "ada@new.example"


@pytest.mark.parametrize("forged", ["dpo-1", "order-servicf", ""])
def test_a_forged_writer_does_not_open(sqlite_vault: RunningVault, forged: str) -> None:
    subject, _, after = _rectified(sqlite_vault)
    assert after["f"]["email"][1] == "order-service"
    edited = json.loads(json.dumps(after))
    edited["f"]["email"][1] = forged
    _put_blob(sqlite_vault, subject, edited)
    _refused_and_audited(sqlite_vault, subject)
    # The time of the write is bound too.
    edited = json.loads(json.dumps(after))
    edited["f"]["given_name"][2] -= 1
    _put_blob(sqlite_vault, subject, edited)
    _refused_and_audited(sqlite_vault, subject)


def _legacy_blob(vault: RunningVault, subject_id: str, values: dict[str, str]) -> bytes:
    """A fields blob as the vault wrote it before format 2 (format 1 values, no tag),
    sealed with the subject's own data key, as docs/architecture.md specifies."""
    with vault.app.db.engine.connect() as conn:
        kek_version, wrapped = conn.execute(
            sa.text("SELECT kek_version, wrapped_dek FROM subjects WHERE id = :s"),
            {"s": subject_id},
        ).one()
    dek = vault.app.keyring.unwrap(WrappedDataKey(kek_version, wrapped))

    def lp(text: str) -> bytes:
        return struct.pack(">I", len(text.encode())) + text.encode()

    header = b"\x01" + struct.pack(">I", 1)
    entries = {}
    for name, value in values.items():
        nonce = os.urandom(12)
        aad = b"cv:field:v1" + lp("acme") + lp(subject_id) + lp(name) + header
        sealed = header + nonce + AESGCM(dek).encrypt(nonce, value.encode(), aad)
        entries[name] = [base64.b64encode(sealed).decode(), "order-service", 1_700_000_000]
    return json.dumps({"v": 1, "f": entries}).encode()


def test_format_1_values_still_open_and_are_resealed_on_the_next_update(
    sqlite_vault: RunningVault,
) -> None:
    client = sqlite_vault.client()
    subject = client.create(ADA).subject_id
    normalized = _read(sqlite_vault, subject)
    legacy = _legacy_blob(sqlite_vault, subject, normalized)
    with closing(_raw_db(sqlite_vault)) as db, db:
        db.execute("UPDATE subjects SET fields = ? WHERE id = ?", (legacy, subject))
    assert _read(sqlite_vault, subject) == normalized

    client.update(subject, 1, {"phone": "+44 20 7946 0019"}, reason="rectification")
    upgraded = _blob(sqlite_vault, subject)
    assert upgraded["v"] == BINARY and upgraded["t"] is not None
    assert upgraded["f"]["phone"][3] == 2 and upgraded["f"]["email"][3] == 1
    assert all(base64.b64decode(e[0])[0] == 2 for e in upgraded["f"].values())
    assert _read(sqlite_vault, subject)["email"] == normalized["email"]
    # The old format-1 value cannot be slipped back into the upgraded subject.
    upgraded["f"]["email"] = json.loads(legacy)["f"]["email"] + [1]
    _put_blob(sqlite_vault, subject, upgraded)
    _refused_and_audited(sqlite_vault, subject)


def test_upgrade_seals_reseals_format_1_subjects_without_an_update(
    sqlite_vault: RunningVault,
) -> None:
    client = sqlite_vault.client()
    subjects = [client.create(ADA).subject_id for _ in range(3)]
    normalized = _read(sqlite_vault, subjects[0])
    legacy = {s: _legacy_blob(sqlite_vault, s, normalized) for s in subjects[:2]}
    with closing(_raw_db(sqlite_vault)) as db, db:
        for subject, blob in legacy.items():
            db.execute("UPDATE subjects SET fields = ? WHERE id = ?", (blob, subject))
    current = _blob(sqlite_vault, subjects[2])

    done = CliRunner().invoke(
        cli_app, ["keys", "upgrade-seals", "--data-dir", str(sqlite_vault.settings.data_dir)]
    )
    assert done.exit_code == 0, done.output
    assert "2 subjects re-sealed in format 2" in done.output
    assert _blob(sqlite_vault, subjects[2]) == current  # already format 2: untouched
    for subject in subjects[:2]:
        upgraded = _blob(sqlite_vault, subject)
        assert upgraded["v"] == BINARY and {e[3] for e in upgraded["f"].values()} == {1}
        assert _read(sqlite_vault, subject) == normalized
        upgraded["f"]["email"] = [*json.loads(legacy[subject])["f"]["email"], 1]
        _put_blob(sqlite_vault, subject, upgraded)
        _refused_and_audited(sqlite_vault, subject)


@pytest.mark.parametrize(
    ("position", "value"),
    [(3, "2"), (3, 0), (3, 2**64), (3, None), (2, 1.5), (1, 7), (0, "!!"), (1, "\ud800")],
)
def test_a_fields_blob_of_another_shape_is_the_same_opaque_failure(
    sqlite_vault: RunningVault, position: int, value: object
) -> None:
    """Edited in the JSON of format 2, which the vault still reads."""
    subject, _, after = _rectified(sqlite_vault)
    edited = json.loads(json.dumps(after))
    edited["v"] = 2
    edited["f"]["email"][position] = value
    with closing(_raw_db(sqlite_vault)) as db, db:
        db.execute(
            "UPDATE subjects SET fields = ? WHERE id = ?", (json.dumps(edited).encode(), subject)
        )
    _refused_and_audited(sqlite_vault, subject)


@pytest.mark.parametrize("cut", [1, 30, -1])
def test_a_binary_fields_blob_cut_short_or_lengthened_is_the_same_opaque_failure(
    sqlite_vault: RunningVault, cut: int
) -> None:
    subject, _, after = _rectified(sqlite_vault)
    blob = _encoded(after)
    edited = blob + b"\x00" if cut < 0 else blob[:-cut]
    with closing(_raw_db(sqlite_vault)) as db, db:
        db.execute("UPDATE subjects SET fields = ? WHERE id = ?", (edited, subject))
    _refused_and_audited(sqlite_vault, subject)


def test_a_format_2_json_blob_as_the_vault_wrote_it_before_still_opens(
    sqlite_vault: RunningVault,
) -> None:
    subject, _, after = _rectified(sqlite_vault)
    fields = decode_fields(_encoded(after))
    with closing(_raw_db(sqlite_vault)) as db, db:
        db.execute(
            "UPDATE subjects SET fields = ? WHERE id = ?",
            (encode_json(fields, fields.tag), subject),
        )
    assert _read(sqlite_vault, subject)["email"] == "ada@new.example"
