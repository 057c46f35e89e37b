"""A settings typo must not print the key document: errors name fields, never values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.serving import clean_env, run_cli
from vault.config import SettingsError, load_settings

# Recognisable, so that any echo of the document is found in the error text.
SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbC1ub3QtdG8tYmUtc2hvd24="
MARKER = "secret-key-material-not-to-be-shown"
DOCUMENT = json.dumps({"format": 1, "active_kek": 1, "keks": {"1": SECRET}})


def _leaks(text: str) -> bool:
    return SECRET in text or MARKER in text or SECRET[:12] in text


@pytest.mark.parametrize(
    "config",
    [
        # The key document under a misspelt name (extra keys are forbidden).
        f"master_key: '{DOCUMENT}'\n",
        # The key document pasted as YAML instead of a JSON string.
        f"master_keys: {DOCUMENT}\n",
        # A broken YAML line that holds the key (PyYAML quotes the line it stops at).
        f"master_keys: '{DOCUMENT}\n  : [\n",
        # A wrong type on another field, beside the key.
        f"master_keys: '{DOCUMENT}'\nmax_workers: {SECRET}\n",
    ],
    ids=["misspelt-name", "yaml-mapping", "broken-yaml", "wrong-type"],
)
def test_a_config_file_typo_names_the_field_not_the_key(tmp_path: Path, config: str) -> None:
    path = tmp_path / "vault.yaml"
    path.write_text(config)
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=str(path))
    assert not _leaks(caught.value.message), caught.value.message
    assert not _leaks(str(caught.value.__cause__ or ""))
    assert caught.value.__suppress_context__


def test_the_settings_error_says_which_field_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "vault.yaml"
    path.write_text(f"master_key: '{DOCUMENT}'\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=str(path))
    assert caught.value.message == "invalid settings: master_key: Extra inputs are not permitted"


@pytest.mark.parametrize(
    "env",
    [
        # Malformed JSON in VAULT_MASTER_KEYS: the key document parser names no value.
        {"VAULT_MASTER_KEYS": DOCUMENT[:-3]},
        # Well-formed JSON, but the KEK is not base64.
        {"VAULT_MASTER_KEYS": DOCUMENT.replace(SECRET, f"{MARKER} {SECRET}")},
        # A typo in another variable beside a good key document.
        {"VAULT_MASTER_KEYS": DOCUMENT, "VAULT_MAX_WORKERS": SECRET},
    ],
    ids=["malformed-json", "kek-not-base64", "other-field"],
)
def test_serve_with_a_malformed_key_setting_prints_no_key(
    tmp_path: Path, env: dict[str, str]
) -> None:
    done = run_cli(["serve", "--data-dir", str(tmp_path / "data")], clean_env(**env))
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "error:" in output
    assert not _leaks(output), output
    assert "Traceback" not in output
