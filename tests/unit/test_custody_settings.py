"""Settings of key custody and token issuers: what is refused, and the PIN kept out of
every message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vault.config import SettingsError, load_settings
from vault.startup import StartupRefusedError, check_private_modes

ISSUER: dict[str, Any] = {
    "issuer": "https://idp.example.test",
    "jwks_url": "https://idp.example.test/certs",
    "audience": "customer-vault",
    "tenant": "acme",
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"algorithms": ["HS256"]}, "asymmetric"),
        ({"algorithms": ["RS256", "none"]}, "asymmetric"),
        ({"jwks_url": "http://idp.example.test/certs"}, "https://"),
        ({"tenant_claim": "org"}, "exactly one of tenant and tenant_claim"),
        ({"tenant": None}, "exactly one of tenant and tenant_claim"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_an_issuer_that_could_be_abused_is_refused(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        load_settings(token_issuers=[{**ISSUER, **change}])


def test_an_issuer_on_the_loopback_may_use_plain_http() -> None:
    entry = {**ISSUER, "jwks_url": "http://127.0.0.1:8080/certs"}
    (issuer,) = load_settings(token_issuers=[entry]).token_issuers
    assert issuer.algorithms == ["RS256", "ES256", "EdDSA"]


def test_pkcs11_needs_a_module_and_exactly_one_pin_source(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="pkcs11_module"):
        load_settings(key_provider="pkcs11", pkcs11_pin="1234")
    with pytest.raises(SettingsError, match="exactly one of pkcs11_pin"):
        load_settings(key_provider="pkcs11", pkcs11_module="/lib.so")
    with pytest.raises(SettingsError, match="exactly one of pkcs11_pin"):
        load_settings(
            key_provider="pkcs11",
            pkcs11_module="/lib.so",
            pkcs11_pin="1234",
            pkcs11_pin_file=tmp_path / "pin",
        )
    with pytest.raises(SettingsError, match="master_keys"):
        load_settings(key_provider="env")


def test_the_pin_is_read_from_its_file_and_never_shown(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("s3cret-pin-value\n")
    settings = load_settings(
        key_provider="pkcs11", pkcs11_module="/lib.so", pkcs11_pin_file=pin_file
    )
    assert settings.pkcs11_pin_value() == "s3cret-pin-value"
    inline = load_settings(key_provider="pkcs11", pkcs11_module="/lib.so", pkcs11_pin="0p3n-pin")
    assert inline.pkcs11_pin_value() == "0p3n-pin"
    for shown in (repr(settings), str(inline), repr(inline), str(inline.model_dump())):
        assert "s3cret-pin-value" not in shown and "0p3n-pin" not in shown
    with pytest.raises(SettingsError) as caught:
        load_settings(key_provider="pkcs11", pkcs11_module=7, pkcs11_pin="0p3n-pin")
    assert "0p3n-pin" not in str(caught.value)


def test_serve_refuses_a_pin_file_others_may_read(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234")
    pin_file.chmod(0o644)
    settings = load_settings(
        data_dir=tmp_path / "data",
        key_provider="pkcs11",
        pkcs11_module="/lib.so",
        pkcs11_pin_file=pin_file,
    )
    with pytest.raises(StartupRefusedError, match="mode 0644"):
        check_private_modes(settings)
    pin_file.chmod(0o600)
    check_private_modes(settings)


@pytest.mark.parametrize(
    ("change", "on_loop"),
    [
        ({}, True),  # SQLite, key file
        ({"database_url": "postgresql+psycopg://db/vault"}, False),
        ({"key_provider": "pkcs11", "pkcs11_module": "/lib.so", "pkcs11_pin": "1234"}, False),
        (
            {"key_provider": "pkcs11", "pkcs11_module": "/lib.so", "pkcs11_pin": "1"}
            | {"reads_on_loop": True},
            True,
        ),
        ({"reads_on_loop": False}, False),
    ],
)
def test_short_reads_run_on_the_loop_only_where_nothing_there_waits(
    change: dict[str, Any], on_loop: bool
) -> None:
    """On the loop by default only on SQLite with keys in the process: a read there
    waits on nothing but its own CPU (PostgreSQL's network and an HSM's unwrap would
    hold up every other call); an explicit setting wins."""
    assert load_settings(**change).resolved_reads_on_loop is on_loop
