"""Key rotation without downtime, and ciphertexts that refuse to move."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from tests.data import ADA
from tests.integration.harness import RunningVault
from vault import key_custody
from vault.api.client import VaultClientError
from vault.crypto import LocalKeyFileProvider

READER = {"principal": "dpo-desk", "roles": ("dpo",)}


def _read(vault: RunningVault, subject_id: str) -> dict[str, str]:
    view = vault.client(**READER).get(subject_id, "full", "data_subject_request")  # type: ignore[arg-type]
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
    import json

    client = sqlite_vault.client()
    subject = client.create(ADA).subject_id
    with sqlite_vault.app.db.engine.begin() as conn:
        blob = conn.execute(
            sa.text("SELECT fields FROM subjects WHERE id = :id"), {"id": subject}
        ).scalar_one()
        doc = json.loads(blob)
        doc["f"]["family_name"][0] = doc["f"]["given_name"][0]
        conn.execute(
            sa.text("UPDATE subjects SET fields = :v WHERE id = :id"),
            {"v": json.dumps(doc).encode(), "id": subject},
        )
    with pytest.raises(VaultClientError) as caught:
        _read(sqlite_vault, subject)
    assert (caught.value.code, caught.value.message) == ("DATA_LOSS", "decryption failed")
