"""A whole vault with its keys in a SoftHSM2 token: subjects written and read through
gRPC, the KEK rotated and data keys re-wrapped by the background task, the old KEK
retired from the token, a blind-index rotation re-indexed; the data-key cache bounded,
emptied on erasure and on key changes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pkcs11
import pytest
from typer.testing import CliRunner

from tests.data import ADA, GRACE
from tests.integration.harness import RunningVault, running_vault, settings_for
from tests.softhsm import SoftHsmToken
from vault import key_custody as keys
from vault.api.client import VaultClientError
from vault.cli.main import app as cli_app
from vault.config import Settings
from vault.crypto.hsm import Pkcs11KeyProvider

SEARCHER = {"principal": "dpo-desk", "roles": ("dpo",)}


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.05)


def _settings(tmp_path: Path, token: SoftHsmToken, **overrides: object) -> Settings:
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin + "\n")
    return settings_for(
        tmp_path / "data",
        key_provider="pkcs11",
        pkcs11_module=token.module,
        pkcs11_token_label=token.label,
        pkcs11_pin_file=pin_file,
        **overrides,
    )


@pytest.fixture
def hsm_vault(tmp_path: Path, token: SoftHsmToken) -> Iterator[RunningVault]:
    with running_vault(_settings(tmp_path, token, dek_cache_size=2)) as running:
        yield running


def _read(vault: RunningVault, subject_id: str) -> dict[str, str]:
    searcher = vault.client(**SEARCHER)  # type: ignore[arg-type]
    view = searcher.get(subject_id, "full", "data_subject_request", "DSR-2026-9")
    return {name: value.value for name, value in view.fields.items()}


def test_a_vault_keeps_its_keys_in_the_token_and_rotates_them(hsm_vault: RunningVault) -> None:
    app = hsm_vault.app
    provider = app.keyring.provider
    assert isinstance(provider, Pkcs11KeyProvider)
    assert not (hsm_vault.settings.keys_dir / "master.json").exists()  # no key file
    writer = hsm_vault.client()
    ada = writer.create(ADA).subject_id
    grace = writer.create(GRACE).subject_id
    assert _read(hsm_vault, ada)["email"] == "ada.lovelace@example.com"

    # `keys rotate`, as another process would do it: a new KEK in the token; the
    # running vault notices, wraps new keys under it and re-wraps the old ones.
    with keys.managed_provider(hsm_vault.settings) as rotator:
        assert rotator.add_kek_version() == 2
        _wait_for(lambda: keys.status(app.db, provider).data_keys_by_version == {2: 2})
        keys.retire(app.db, rotator, 1)
        assert rotator.kek_versions() == (2,)
        # A blind-index rotation: the re-index moves every digest to the new version.
        assert rotator.add_root_version(keys.BLIND_INDEX) == 2
        _wait_for(
            lambda: (
                keys.secret_status(app.db, provider, keys.BLIND_INDEX).rows_by_version.keys() == {2}
            )
        )
        keys.retire_blind_index_version(app.db, rotator, 1)
    _wait_for(lambda: provider.kek_versions() == (2,))
    assert _read(hsm_vault, ada)["email"] == "ada.lovelace@example.com"
    assert _read(hsm_vault, grace)["given_name"] == GRACE["given_name"]
    searcher = hsm_vault.client(**SEARCHER)  # type: ignore[arg-type]
    found = searcher.find(
        "email", "ada.lovelace@example.com", "full", "data_subject_request", "DSR-2026-9"
    )
    assert [v.meta.subject_id for v in found] == [ada]


def test_the_data_key_cache_is_bounded_and_forgets_erased_subjects(
    hsm_vault: RunningVault,
) -> None:
    cache = hsm_vault.app.keyring.dek_cache
    assert cache is not None and cache.max_entries == 2
    writer = hsm_vault.client()
    ids = [writer.create(ADA).subject_id for _ in range(3)]
    for subject_id in ids:
        _read(hsm_vault, subject_id)
    assert len(cache) == 2  # the bound: the least recently used went first
    _read(hsm_vault, ids[2])
    writer.erase(ids[2], reason="erasure request DSR-3")
    assert len(cache) == 1  # the shredded subject's data key left the cache


def test_keys_init_generates_the_token_keys_and_the_pin_is_never_shown(
    tmp_path: Path, token: SoftHsmToken
) -> None:
    settings = _settings(tmp_path, token)
    created = keys.init_keys(settings)
    assert "customer-vault/kek/v1 (in the PKCS#11 token)" in created
    assert not any("master.json" in c for c in created)
    assert keys.init_keys(settings) == []
    assert token.pin not in repr(settings) and token.pin not in str(settings.model_dump())


def test_the_key_commands_work_on_the_token(tmp_path: Path, token: SoftHsmToken) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin)
    env = {
        "VAULT_KEY_PROVIDER": "pkcs11",
        "VAULT_PKCS11_MODULE": token.module,
        "VAULT_PKCS11_TOKEN_LABEL": token.label,
        "VAULT_PKCS11_PIN_FILE": str(pin_file),
    }
    data = str(tmp_path / "data")
    runner = CliRunner()
    init = runner.invoke(cli_app, ["keys", "init", "--data-dir", data], env=env)
    assert init.exit_code == 0, init.output
    assert "customer-vault/kek/v1" in init.output
    rotate = runner.invoke(cli_app, ["keys", "rotate", "--data-dir", data], env=env)
    assert rotate.exit_code == 0, rotate.output
    assert "KEK v2 is now active" in rotate.output
    assert token.pin not in init.output + rotate.output


def test_the_vault_logs_in_again_after_the_token_restarts(
    tmp_path: Path, token: SoftHsmToken
) -> None:
    with running_vault(_settings(tmp_path, token, dek_cache_size=0)) as vault:
        writer = vault.client()
        ada = writer.create(ADA).subject_id
        # The token restarts (C_Finalize, C_Initialize: every session and login is gone),
        # as a network HSM does when its connection drops.
        pkcs11.lib(token.module).reinitialize()
        refusals: set[str] = set()

        def reads_again() -> bool:
            try:
                _read(vault, ada)
            except VaultClientError as exc:
                refusals.add(exc.code)
                return False
            return True

        # Until the key refresh (every 0.2 s here) logs in again, a call that needs the
        # token fails UNAVAILABLE (retryable), never INTERNAL or as a tampered subject.
        _wait_for(reads_again)
        assert refusals <= {"UNAVAILABLE"}
        assert writer.create(GRACE).subject_id
        assert _read(vault, ada)["email"] == "ada.lovelace@example.com"
