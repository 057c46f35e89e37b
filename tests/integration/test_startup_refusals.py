"""Setups `customer-vault serve` refuses, run as the container runs it (a separate
process): a development token key serving beyond loopback or with PostgreSQL (unless
`--dev`), and key files or a data dir that other users may read. Development tokens
say what they are and are recorded in the audit log."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import audit
from tests.integration.serving import clean_env, run_cli, serving
from vault import key_custody, startup
from vault.config import Settings
from vault.crypto import generate_ed25519_keypair
from vault.storage.db import create_engine

REFUSED = "refusing to start"
QUIET = {"VAULT_RETENTION_SCHEDULE": "", "VAULT_SHUTDOWN_GRACE_SECONDS": "2"}


def _env(**extra: str) -> dict[str, str]:
    return clean_env(**QUIET, **extra)


def _refusal(args: list[str], env: dict[str, str]) -> str:
    done = run_cli(["serve", *args], env)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "serving on" not in done.stdout
    return " ".join(done.stderr.split())  # rich wraps long lines


# --- development keys cannot serve production -------------------------------------------


def test_the_embedded_default_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    data = tmp_path / "data"
    message = _refusal(["--address", "0.0.0.0:0", "--data-dir", str(data)], _env())
    assert REFUSED in message and "0.0.0.0:0" in message
    assert "VAULT_TOKEN_PUBLIC_KEY" in message and "--dev" in message
    assert str(data / "keys" / "token_signing.pem") in message
    # Refused before anything was opened or generated.
    assert not (data / "keys").exists() and not (data / "vault.db").exists()


@pytest.mark.postgres
def test_postgresql_with_the_data_dir_token_key_is_refused_even_on_loopback(
    tmp_path: Path, postgres_url: str
) -> None:
    data = tmp_path / "data"
    env = _env()
    for command in (["keys", "init"], ["migrate", "--database-url", postgres_url]):
        assert run_cli([*command, "--data-dir", str(data)], env).returncode == 0
    args = ["--address", "127.0.0.1:0", "--data-dir", str(data), "--database-url", postgres_url]
    message = _refusal(args, env)
    assert REFUSED in message and "PostgreSQL" in message and "--dev" in message
    # --dev says it is meant: the same setup serves.
    with serving([*args, "--dev"], env, tmp_path / "dev.log") as vault:
        assert vault.port
    assert "DEVELOPMENT MODE (--dev)" in vault.log()
    # A token key from elsewhere (the issuer keeps the private half) is production.
    issuer = tmp_path / "issuer"
    generate_ed25519_keypair(issuer / "token.pem", issuer / "token.pub.pem")
    external = {**env, "VAULT_TOKEN_PUBLIC_KEY": str(issuer / "token.pub.pem")}
    with serving(args, external, tmp_path / "prod.log") as vault:
        assert vault.port
    # A development token issued against this database is in its audit log.
    issue = ["token", "issue", "--principal", "order-service", "--tenant", "acme"]
    issue += ["--role", "service", "--data-dir", str(data), "--database-url", postgres_url]
    issued = run_cli(issue, env)
    assert issued.returncode == 0 and "recorded in the audit log" in issued.stderr
    engine = create_engine(postgres_url)
    try:
        (entry,) = [e.entry for e in audit.iter_query(engine, action="IssueDevelopmentToken")]
    finally:
        engine.dispose()
    assert entry.extra["token_principal"] == "order-service"


def test_loopback_and_an_external_token_key_are_not_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", address="0.0.0.0:50051")
    with pytest.raises(startup.StartupRefusedError):
        startup.check_token_key(settings, dev=False)
    startup.check_token_key(settings, dev=True)
    startup.check_token_key(settings.model_copy(update={"address": "127.0.0.1:50051"}), dev=False)
    key_custody.init_keys(settings)
    generate_ed25519_keypair(tmp_path / "idp.pem", tmp_path / "idp.pub.pem")
    external = settings.model_copy(update={"token_public_key": tmp_path / "idp.pub.pem"})
    startup.check_token_key(external, dev=False)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.8.9.1:1", True),
        ("[::1]:50051", True),
        ("localhost:50051", True),
        ("unix:/run/vault.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        ("10.1.2.3:50051", False),
        ("vault.internal:50051", False),
        ("localhost.evil.example:50051", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert startup.is_loopback(address) is loopback


# --- token issue is a development command, and audited -----------------------------------


def test_token_issue_says_it_is_for_development_and_is_audited(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env()
    helped = run_cli(["token", "issue", "--help"], env)
    assert "DEVELOPMENT ONLY" in helped.stdout
    base = ["token", "issue", "--principal", "dpo-1", "--tenant", "acme", "--data-dir", str(data)]
    base += ["--role", "dpo", "--attr", "clearance=3", "--ttl", "15m"]
    # Keys but no vault has run here yet: issued, and said not to be recorded.
    assert run_cli(["keys", "init", "--data-dir", str(data)], env).returncode == 0
    early = run_cli(base, env)
    assert early.returncode == 0, early.stderr
    assert "development token" in early.stderr and "not recorded in the audit log" in early.stderr
    with serving(["--address", "127.0.0.1:0", "--data-dir", str(data)], env, tmp_path / "v.log"):
        issued = run_cli(base, env)
    assert issued.returncode == 0, issued.stderr
    assert "development token" in issued.stderr and "recorded in the audit log" in issued.stderr
    token = issued.stdout.strip()
    engine = create_engine(f"sqlite:///{data / 'vault.db'}")
    try:
        (logged,) = list(audit.iter_query(engine, action="IssueDevelopmentToken"))
    finally:
        engine.dispose()
    entry = logged.entry
    # It carries the MAC every vault entry carries: without one the running vault's
    # integrator refused to sign the log and its services went NOT_SERVING.
    mac = audit.EntryMac.from_file(data / "keys" / "audit_mac.key")
    assert logged.mac is not None and mac.is_valid(entry.canonical_bytes(), logged.mac)
    assert entry.actor == f"local-operator:uid:{os.getuid()}"
    assert entry.tenant == "acme" and entry.decision == audit.ALLOW
    assert dict(entry.extra) == {
        "token_principal": "dpo-1",
        "token_roles": "dpo",
        "token_tenant": "acme",
        "token_expires_at": entry.extra["token_expires_at"],
        "token_bound_to_certificate": "no",
        "token_attribute_names": "clearance",
    }
    assert token not in repr(entry) and "=3" not in repr(entry.extra)


# --- key files and the data dir that others may read ------------------------------------


def _serve_refused_for(data: Path) -> str:
    return _refusal(["--address", "127.0.0.1:0", "--data-dir", str(data)], _env())


@pytest.mark.parametrize(
    ("relative", "mode"),
    [
        (".", 0o755),
        (".", 0o750),
        ("keys", 0o711),
        ("keys/master.json", 0o644),
        ("keys/master.json", 0o640),
        ("keys/token_signing.pem", 0o604),
        ("keys/audit_signing.pem", 0o660),
        ("keys/receipt_signing.pem", 0o644),
    ],
)
def test_serve_refuses_key_files_and_a_data_dir_others_may_read(
    tmp_path: Path, relative: str, mode: int
) -> None:
    data = tmp_path / "data"
    assert run_cli(["keys", "init", "--data-dir", str(data)], _env()).returncode == 0
    secret = (data / "keys" / "master.json").read_text()
    loose = data / relative
    loose.chmod(mode)
    message = _serve_refused_for(data)
    assert REFUSED in message
    assert f"{loose.resolve() if relative == '.' else loose}".rstrip("/.") in message
    assert f"mode {mode:04o}" in message and "chmod" in message
    assert secret not in message
    assert not (data / "vault.db").exists()


def test_everything_serve_creates_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)  # the child inherits a permissive umask
    try:
        with serving(["--address", "127.0.0.1:0", "--data-dir", str(data)], _env(), tmp_path / "l"):
            pass
    finally:
        os.umask(old)
    # Public keys are 0644 on purpose, inside the 0700 keys dir.
    created = [data, *(p for p in data.rglob("*") if not p.name.endswith(".pub.pem"))]
    assert len(created) > 5  # keys, the database and its WAL
    loose = {str(p): f"{stat.S_IMODE(p.stat().st_mode):04o}" for p in created}
    assert {p: m for p, m in loose.items() if int(m, 8) & 0o077} == {}
