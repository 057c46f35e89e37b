"""Blind-index and token keys are versioned and rotatable, online.

The attack on blind indexes: a digest kept from before an erasure (a copy of the
database, a dead PostgreSQL tuple, WAL, a backup) must not match the digest of a later
subject with the same e-mail address. With one root secret forever, it always did.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from typer.testing import CliRunner

from tests.data import ADA
from tests.integration.harness import RunningVault
from vault import key_custody as keys
from vault.api.client import VaultClientError
from vault.background import PeriodicTask
from vault.cli.main import app as cli_app
from vault.crypto import LocalKeyFileProvider
from vault.records.cipher import RecordCipher
from vault.records.reindex import Reindexer

FRAUD = {"principal": "fraud-1", "roles": ("fraud_analyst",), "clearance": "3"}
SEARCHER = {"principal": "dpo-desk", "roles": ("dpo",)}
EMAIL = "ada.lovelace@example.com"


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.05)


def _digests(vault: RunningVault, subject_id: str) -> dict[str, tuple[bytes, int]]:
    with vault.app.db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT field, digest, key_version FROM blind_indexes WHERE subject_id = :s"),
            {"s": subject_id},
        )
        return {r.field: (bytes(r.digest), r.key_version) for r in rows}


def _all_digests(vault: RunningVault) -> set[bytes]:
    with vault.app.db.engine.connect() as conn:
        return {
            bytes(d) for d in conn.execute(sa.text("SELECT digest FROM blind_indexes")).scalars()
        }


def _stop_background_reindex(vault: RunningVault) -> None:
    for task in vault.app.tasks:
        if isinstance(task, PeriodicTask) and task.name == "blind-reindex":
            task.stop()


def _found(vault: RunningVault, email: str) -> list[str]:
    searcher = vault.client(**SEARCHER)  # type: ignore[arg-type]
    views = searcher.find("email", email, "full", "data_subject_request", "DSR-2026-5")
    return [v.meta.subject_id for v in views]


def test_after_rotation_and_reindex_an_erased_subjects_digest_links_to_nobody(
    vault: RunningVault,
) -> None:
    writer = vault.client()
    erased = writer.create(ADA).subject_id
    kept = [r.subject_id for r in writer.batch_create([ADA] * 30).results]
    # What a DBA (or a backup, or a dead tuple) keeps of the subject before its erasure.
    old_email_digest, old_version = _digests(vault, erased)["email"]
    assert old_version == 1
    writer.erase(erased, reason="erasure request DSR-1")

    provider = LocalKeyFileProvider(vault.settings.resolved_key_file)
    _stop_background_reindex(vault)  # to look at the state half-way; run by hand below
    assert provider.add_root_version(keys.BLIND_INDEX) == 2
    # New writes pick up v2 once the server reloads the key file; until the re-index
    # is done, searches look under both versions and miss no one.
    newcomers: list[str] = []

    def _newcomer_on_v2() -> bool:
        newcomers.append(writer.create(ADA).subject_id)
        return _digests(vault, newcomers[-1])["email"][1] == 2

    _wait_for(_newcomer_on_v2)
    assert {v for _, v in _digests(vault, kept[0]).values()} == {1}
    assert sorted(_found(vault, EMAIL)) == sorted([*kept, *newcomers])

    # The re-index (what the background task runs) moves every digest to v2 ...
    while vault.app.reindexer.run_once():
        pass
    status = keys.secret_status(vault.app.db, provider, keys.BLIND_INDEX)
    assert status.active_version == 2 and status.rows_by_version.get(1, 0) == 0
    assert sorted(_found(vault, EMAIL)) == sorted([*kept, *newcomers])
    # ... then v1 is retired: nothing can recompute a v1 digest any more.
    keys.retire_blind_index_version(vault.app.db, provider, 1)
    assert provider.root_versions(keys.BLIND_INDEX) == (2,)
    _wait_for(lambda: vault.app.keyring.blind_index_versions() == (2,))

    # The attack: a new customer signs up with the erased subject's e-mail address.
    returning = writer.create(ADA).subject_id
    new_email_digest, new_version = _digests(vault, returning)["email"]
    assert new_version == 2
    assert new_email_digest != old_email_digest
    assert old_email_digest not in _all_digests(vault)
    assert erased not in _found(vault, EMAIL)
    assert returning in _found(vault, EMAIL)


def test_a_blind_index_version_in_use_or_active_cannot_be_retired(
    sqlite_vault: RunningVault,
) -> None:
    sqlite_vault.client().create(ADA)
    provider = LocalKeyFileProvider(sqlite_vault.settings.resolved_key_file)
    with pytest.raises(Exception, match="active"):
        keys.retire_blind_index_version(sqlite_vault.app.db, provider, 1)
    _stop_background_reindex(sqlite_vault)
    provider.add_root_version(keys.BLIND_INDEX)
    with pytest.raises(Exception, match="re-index first"):
        # Nothing has re-indexed yet: the subject's digests are all under v1.
        keys.retire_blind_index_version(sqlite_vault.app.db, provider, 1)
    assert provider.root_versions(keys.BLIND_INDEX) == (1, 2)


def test_the_reindex_resumes_and_skips_what_does_not_open(sqlite_vault: RunningVault) -> None:
    writer = sqlite_vault.client()
    ids = sorted(r.subject_id for r in writer.batch_create([ADA] * 5).results)
    with sqlite_vault.app.db.engine.begin() as conn:  # a tampered row: its fields fail to open
        conn.execute(
            sa.text(
                "UPDATE subjects SET fields = (SELECT fields FROM subjects WHERE id = :a) "
                "WHERE id = :b"
            ),
            {"a": ids[0], "b": ids[1]},
        )
    provider = LocalKeyFileProvider(sqlite_vault.settings.resolved_key_file)
    _stop_background_reindex(sqlite_vault)
    provider.add_root_version(keys.BLIND_INDEX)
    app = sqlite_vault.app
    _wait_for(lambda: app.keyring.blind_indexer().version == 2)
    sealing = RecordCipher(app.keyring, app.dictionary.index_forms)
    reindexer = Reindexer(app.db, sealing, batch_size=2)
    first = reindexer.batch("")
    assert first.last_id  # stopped after two subjects, resumes from there
    after, failed = first.last_id, first.failed
    while after:
        done = reindexer.batch(after)
        failed, after = failed + done.failed, done.last_id
    status = keys.secret_status(app.db, provider, keys.BLIND_INDEX)
    # The tampered subject keeps its v1 digests (and blocks retirement); the others moved.
    assert status.rows_by_version.get(1, 0) == len(_digests(sqlite_vault, ids[1]))
    assert {v for _, v in _digests(sqlite_vault, ids[1]).values()} == {1}


def _tokenize(vault: RunningVault, subject_id: str, kind: int) -> str:
    # Deterministic tokens need a clear read of the field (the fraud analyst's, for
    # fraud); the service mints random ones.
    if kind == pb.TOKEN_KIND_DETERMINISTIC:
        fraud = vault.client(**FRAUD)
        return fraud.tokenize(subject_id, "email", kind, "fraud", "case FR-79").token
    return vault.client().tokenize(subject_id, "email", kind, "support").token


def test_token_keys_rotate_and_a_retired_version_no_longer_detokenizes(
    vault: RunningVault,
) -> None:
    subject = vault.client().create(ADA).subject_id
    fraud = vault.client(**FRAUD)
    old_det = _tokenize(vault, subject, pb.TOKEN_KIND_DETERMINISTIC)
    old_rnd = _tokenize(vault, subject, pb.TOKEN_KIND_RANDOM)
    assert old_det.startswith("tkd_k1_") and old_rnd.startswith("tkr_k1_")

    provider = LocalKeyFileProvider(vault.settings.resolved_key_file)
    assert provider.add_root_version(keys.TOKEN) == 2
    _wait_for(lambda: vault.app.keyring.tokenizer().version == 2)
    new_det = _tokenize(vault, subject, pb.TOKEN_KIND_DETERMINISTIC)
    # The same value under the new key version is a different token: old and new
    # tokens of one value cannot be joined without the vault.
    assert new_det.startswith("tkd_k2_") and new_det[7:] != old_det[7:]
    assert _tokenize(vault, subject, pb.TOKEN_KIND_RANDOM).startswith("tkr_k2_")
    for token in (old_det, old_rnd, new_det):  # until v1 is retired, both reverse
        assert fraud.detokenize(token, "fraud", "case FR-80").value.value == EMAIL

    status = keys.secret_status(vault.app.db, provider, keys.TOKEN)
    assert status.rows_by_version == {1: 2, 2: 2}
    with pytest.raises(Exception, match="active"):
        keys.retire_token_version(vault.app.db, provider, 2)
    assert keys.retire_token_version(vault.app.db, provider, 1) == 2
    _wait_for(lambda: vault.app.keyring.token_versions() == (2,))
    for token in (old_det, old_rnd):
        with pytest.raises(VaultClientError) as caught:
            fraud.detokenize(token, "fraud", "case FR-81")
        assert caught.value.code == "NOT_FOUND"
    assert fraud.detokenize(new_det, "fraud", "case FR-82").value.value == EMAIL


def test_a_recorded_token_of_a_retired_version_is_refused_even_if_its_row_survives(
    sqlite_vault: RunningVault,
) -> None:
    # Another replica may record a v1 token after the retirement deleted v1's rows
    # (it had not reloaded the key file yet): the version check still refuses it.
    subject = sqlite_vault.client().create(ADA).subject_id
    token = _tokenize(sqlite_vault, subject, pb.TOKEN_KIND_RANDOM)
    provider = LocalKeyFileProvider(sqlite_vault.settings.resolved_key_file)
    provider.add_root_version(keys.TOKEN)
    provider.retire_root_version(keys.TOKEN, 1)  # the key file only: the row stays
    _wait_for(lambda: sqlite_vault.app.keyring.token_versions() == (2,))
    with pytest.raises(VaultClientError) as caught:
        sqlite_vault.client(**FRAUD).detokenize(token, "fraud", "case FR-83")
    assert caught.value.code == "NOT_FOUND"


def test_servers_reindex_in_the_background(sqlite_vault: RunningVault) -> None:
    ids = [r.subject_id for r in sqlite_vault.client().batch_create([ADA] * 20).results]
    provider = LocalKeyFileProvider(sqlite_vault.settings.resolved_key_file)
    provider.add_root_version(keys.BLIND_INDEX)
    _wait_for(lambda: keys.secret_status(sqlite_vault.app.db, provider, "blind-index").pending == 0)
    assert {v for i in ids for _, v in _digests(sqlite_vault, i).values()} == {2}
    assert set(ids) <= set(_found(sqlite_vault, EMAIL))


def test_the_key_commands_rotate_reindex_show_and_retire(sqlite_vault: RunningVault) -> None:
    writer = sqlite_vault.client()
    subject = writer.create(ADA).subject_id
    token = _tokenize(sqlite_vault, subject, pb.TOKEN_KIND_RANDOM)
    _stop_background_reindex(sqlite_vault)
    data = ["--data-dir", str(sqlite_vault.settings.data_dir)]
    runner = CliRunner()

    def run(*args: str) -> str:
        done = runner.invoke(cli_app, [*args, *data])
        assert done.exit_code == 0, done.output
        return done.output

    assert "blind-index key v2 is now active" in run("keys", "rotate-blind-index")
    assert "token key v2 is now active" in run("keys", "rotate-token")
    status = run("keys", "status")
    assert "blind-index key version" in status and "token key version" in status
    assert "pending re-index: 4 digests" in status  # the searchable fields of one subject
    refused = runner.invoke(cli_app, ["keys", "retire-blind-index", "1", *data])
    assert refused.exit_code == 1 and "re-index first" in refused.output
    assert "every digest is under the active blind-index key" in run("keys", "reindex")
    assert "pending re-index: 0 digests" in run("keys", "status")
    assert "blind-index key v1 retired" in run("keys", "retire-blind-index", "1")

    refused = runner.invoke(cli_app, ["keys", "retire-token", "1", *data])
    assert refused.exit_code == 1 and "1 tokens of v1 would stop working" in refused.output
    assert "1 tokens no longer detokenize" in run("keys", "retire-token", "1", "--yes")
    _wait_for(lambda: sqlite_vault.app.keyring.token_versions() == (2,))
    with pytest.raises(VaultClientError) as caught:
        sqlite_vault.client(**FRAUD).detokenize(token, "fraud", "case FR-84")
    assert caught.value.code == "NOT_FOUND"
    assert subject in _found(sqlite_vault, EMAIL)
