"""`customer-vault`: run the vault, manage keys and tokens, and talk to a running vault."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from audit.witness.cli import app as witness_app
from vault.cli.audit import audit_app
from vault.cli.consent import consent_app
from vault.cli.options import DatabaseUrl, DataDir, parse_pairs, parse_ttl, settings
from vault.cli.policy import policy_app
from vault.cli.requests import requests_app
from vault.cli.retention import retention_app
from vault.cli.rights import rights_app
from vault.cli.subjects import subjects_app
from vault.cli.whatif import mount as mount_whatif
from vault.config import Settings
from vault.errors import VaultError

# No local variables in tracebacks: a frame's locals may hold settings or key material.
app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False
)
keys_app = typer.Typer(no_args_is_help=True, help="Key custody: create, rotate, re-wrap, retire.")
token_app = typer.Typer(
    no_args_is_help=True, help="Development bearer tokens (DEVELOPMENT ONLY: see `token issue`)."
)
app.add_typer(keys_app, name="keys")
app.add_typer(token_app, name="token")
app.add_typer(subjects_app, name="subjects")
mount_whatif(policy_app, audit_app)  # policy simulate, audit explain
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit", help="The compliance officer's audit tools.")
app.add_typer(
    witness_app,
    name="witness",
    help="A witness for the audit log: its own process, key and storage (C2SP tlog-witness).",
)
app.add_typer(consent_app, name="consent")
app.add_typer(rights_app, name="rights")
rights_app.add_typer(requests_app, name="requests")
app.add_typer(retention_app, name="retention")
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    # soft_wrap: one line, so a path in the message is never broken across lines.
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code=1)


@app.command()
def serve(
    address: Annotated[str | None, typer.Option(help="HOST:PORT to listen on.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    policies_dir: Annotated[Path | None, typer.Option(help="Policy folder.")] = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Development only: serve beyond loopback, or with PostgreSQL, while "
            "trusting the data dir's own token key (anyone who reads it can mint tokens).",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Server processes sharing the port [default: VAULT_WORKERS, else one per CPU].",
        ),
    ] = None,
) -> None:
    """Run the vault (embedded default: SQLite + generated development keys, loopback)."""
    from vault.supervisor import serve as run

    _configure_logging()
    try:
        cfg = settings(
            address=address,
            data_dir=data_dir,
            database_url=database_url,
            policies_dir=policies_dir,
            workers=workers,
        )
        code = run(cfg, dev=dev, worker_setup=_configure_logging)
    except VaultError as exc:
        raise _fail(exc.message) from None
    raise typer.Exit(code)


@app.command("console")
def console_command(
    listen: Annotated[str, typer.Option(help="HOST:PORT the web console listens on.")] = (
        "127.0.0.1:8080"
    ),
    address: Annotated[
        str | None, typer.Option(help="The vault's gRPC HOST:PORT [default: the vault's address].")
    ] = None,
    data_dir: DataDir = None,
    policies_dir: Annotated[Path | None, typer.Option(help="Policy folder.")] = None,
    audit_public_key: Annotated[
        Path | None,
        typer.Option(help="The audit log's public key (PEM) [default: in the data dir]."),
    ] = None,
    vault_ca: Annotated[
        Path | None, typer.Option(help="CA bundle to reach the vault over TLS.")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Serve HTTPS with this cert.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="...and this key.")] = None,
    secure_cookies: Annotated[
        bool, typer.Option(help="Mark cookies Secure (behind a TLS-terminating proxy).")
    ] = False,
) -> None:
    """Serve the compliance console (a web app; every page calls the vault with the
    signed-in person's own token)."""
    import uvicorn

    from vault.fields.dictionary import DataDictionary
    from vault.web import WebSettings, create_app

    _configure_logging()
    cfg = settings(data_dir=data_dir, policies_dir=policies_dir)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise _fail("--listen must be HOST:PORT")
    if (tls_cert is None) != (tls_key is None):
        raise _fail("--tls-cert and --tls-key go together")
    try:
        dictionary = DataDictionary.from_file(cfg.policies_dir / "data_dictionary.yaml")
    except VaultError as exc:
        raise _fail(exc.message) from None
    web_settings = WebSettings(
        vault_address=address or cfg.address,
        audit_public_key=audit_public_key or cfg.audit_public_key,
        vault_ca_file=vault_ca,
        receipt_public_key=cfg.receipt_public_key if cfg.receipt_public_key.exists() else None,
        secure_cookies=secure_cookies or tls_cert is not None,
        restricted_fields=frozenset(
            name for name, spec in dictionary.fields.items() if spec.sensitivity == "restricted"
        ),
    )
    scheme = "https" if tls_cert else "http"
    err.print(
        f"compliance console on {scheme}://{listen}/, privacy center on {scheme}://{listen}"
        f"/privacy/ (vault at {web_settings.vault_address})"
    )
    uvicorn.run(
        create_app(web_settings),
        host=host,
        port=int(port),
        access_log=False,
        log_config=None,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        server_header=False,
    )


@app.command()
def migrate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Bring the vault and audit schemas to the newest revision."""
    import audit
    from vault.storage import migrate as vault_migrate
    from vault.storage.db import create_engine

    cfg = settings(data_dir=data_dir, database_url=database_url)
    if cfg.is_embedded:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(cfg.resolved_database_url)
    vault_migrate.upgrade(engine)
    audit.migrate(engine)
    console.print("[green]schema is current[/green]")


@keys_app.command("init")
def keys_init(data_dir: DataDir = None) -> None:
    """Create the key file and signing keys under the data dir (never commit them)."""
    from vault.key_custody import init_keys

    created = init_keys(settings(data_dir=data_dir))
    for path in created:
        console.print(f"created {path}")
    if not created:
        console.print("all keys already exist; nothing changed")


def _db(cfg: Settings) -> Any:
    from vault.storage.db import Database, create_engine

    return Database(create_engine(cfg.resolved_database_url))


@keys_app.command("rotate")
def keys_rotate(data_dir: DataDir = None) -> None:
    """Add a new KEK version and make it active; running vaults re-wrap in the background."""
    from vault.crypto import LocalKeyFileProvider

    cfg = settings(data_dir=data_dir)
    version = LocalKeyFileProvider(cfg.resolved_key_file).add_kek_version()
    console.print(f"KEK v{version} is now active; data keys are re-wrapped in the background")


@keys_app.command("status")
def keys_status(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """KEK versions and how many data keys each one wraps; blind-index and token key
    versions and how many digests and tokens each one made."""
    from vault import key_custody

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db, provider = _db(cfg), key_custody.provider_for(cfg)
    status = key_custody.status(db, provider)
    table = Table("KEK version", "state", "data keys")
    for version in status.versions:
        state = "active" if version == status.active_version else "old"
        table.add_row(f"v{version}", state, str(status.data_keys_by_version.get(version, 0)))
    table.add_row("-", "shredded", str(status.data_keys_by_version.get(None, 0)))
    console.print(table)
    console.print(f"pending re-wrap: {status.pending_rewrap}")
    for purpose, rows in ((key_custody.BLIND_INDEX, "digests"), (key_custody.TOKEN, "tokens")):
        secret = key_custody.secret_status(db, provider, purpose)
        table = Table(f"{purpose} key version", "state", rows)
        for version in sorted({*secret.versions, *secret.rows_by_version}):
            state = "active" if version == secret.active_version else "old"
            if version not in secret.versions:
                state = "retired"
            table.add_row(f"v{version}", state, str(secret.rows_by_version.get(version, 0)))
        console.print(table)
    blind = key_custody.secret_status(db, provider, key_custody.BLIND_INDEX)
    console.print(f"pending re-index: {blind.pending} digests")


@keys_app.command("rewrap")
def keys_rewrap(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option(help="Data keys per transaction.")] = 1000,
) -> None:
    """Re-wrap every data key under the active KEK now (what servers do in the background)."""
    from rich.progress import Progress

    from vault import key_custody
    from vault.crypto import KeyRing

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db, provider = _db(cfg), key_custody.provider_for(cfg)
    keyring = KeyRing(provider)
    total = key_custody.status(db, provider).pending_rewrap
    with Progress(console=console) as progress:
        task = progress.add_task("re-wrapping data keys", total=total)
        while moved := key_custody.rewrap_batch(db, keyring, batch_size):
            progress.advance(task, moved)
    console.print("[green]every data key is wrapped by the active KEK[/green]")


@keys_app.command("retire")
def keys_retire(version: int, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Remove an old KEK version once no data key uses it."""
    from vault import key_custody
    from vault.crypto import LocalKeyFileProvider

    cfg = settings(data_dir=data_dir, database_url=database_url)
    try:
        key_custody.retire(_db(cfg), LocalKeyFileProvider(cfg.resolved_key_file), version)
    except VaultError as exc:
        raise _fail(exc.message) from None
    console.print(f"KEK v{version} retired")


@keys_app.command("rotate-blind-index")
def keys_rotate_blind_index(data_dir: DataDir = None) -> None:
    """Add a new blind-index key version and make it active; running vaults re-index in
    the background (searches look under every version meanwhile)."""
    from vault import key_custody
    from vault.crypto import LocalKeyFileProvider

    cfg = settings(data_dir=data_dir)
    version = LocalKeyFileProvider(cfg.resolved_key_file).add_root_version(key_custody.BLIND_INDEX)
    console.print(f"blind-index key v{version} is now active; digests are re-indexed")
    console.print("in the background, or now with `customer-vault keys reindex`")


@keys_app.command("reindex")
def keys_reindex(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option(help="Subjects per transaction.")] = 500,
) -> None:
    """Re-index every blind index under the active key version now (what servers do in
    the background). Safe to stop and run again: it resumes where digests are stale."""
    from rich.progress import Progress

    from vault import key_custody
    from vault.crypto import KeyRing
    from vault.fields.dictionary import DataDictionary
    from vault.records.cipher import RecordCipher
    from vault.records.reindex import Reindexer

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db, provider = _db(cfg), key_custody.provider_for(cfg)
    dictionary = DataDictionary.from_file(cfg.policies_dir / "data_dictionary.yaml")
    reindexer = Reindexer(
        db, RecordCipher(KeyRing(provider), dictionary.searchable_fields), batch_size
    )
    total = key_custody.secret_status(db, provider, key_custody.BLIND_INDEX).pending
    failed, after = 0, ""
    with Progress(console=console) as progress:
        task = progress.add_task("re-indexing digests", total=total)
        while True:
            done = reindexer.batch(after)
            failed += done.failed
            progress.advance(task, done.reindexed + done.dropped)
            if not done.last_id:
                break
            after = done.last_id
    if failed:
        raise _fail(f"{failed} subjects could not be opened and keep their old digests")
    console.print("[green]every digest is under the active blind-index key[/green]")


@keys_app.command("upgrade-seals")
def keys_upgrade_seals(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option(help="Subjects per transaction.")] = 500,
) -> None:
    """Re-seal every value still in sealed format 1 in format 2 (bound to its version and
    writer, with a field-set tag). Safe to stop and run again; online."""
    from vault import key_custody
    from vault.crypto import KeyRing
    from vault.fields.dictionary import DataDictionary
    from vault.records.cipher import RecordCipher
    from vault.records.reindex import upgrade_seals

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db, provider = _db(cfg), key_custody.provider_for(cfg)
    dictionary = DataDictionary.from_file(cfg.policies_dir / "data_dictionary.yaml")
    sealing = RecordCipher(KeyRing(provider), dictionary.searchable_fields)
    upgraded = failed = 0
    after = ""
    while True:
        done = upgrade_seals(db, sealing, after, batch_size)
        upgraded, failed, after = upgraded + done.upgraded, failed + done.failed, done.last_id
        if not after:
            break
    console.print(f"{upgraded} subjects re-sealed in format 2")
    if failed:
        raise _fail(f"{failed} subjects could not be opened and keep their format-1 values")


@keys_app.command("retire-blind-index")
def keys_retire_blind_index(
    version: int, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Remove an old blind-index key version once no digest uses it."""
    from vault import key_custody
    from vault.crypto import LocalKeyFileProvider

    cfg = settings(data_dir=data_dir, database_url=database_url)
    try:
        provider = LocalKeyFileProvider(cfg.resolved_key_file)
        key_custody.retire_blind_index_version(_db(cfg), provider, version)
    except VaultError as exc:
        raise _fail(exc.message) from None
    console.print(f"blind-index key v{version} retired")


@keys_app.command("rotate-token")
def keys_rotate_token(data_dir: DataDir = None) -> None:
    """Add a new token key version and make it active: new tokens carry it, and
    deterministic tokens of the same value differ from those of older versions."""
    from vault import key_custody
    from vault.crypto import LocalKeyFileProvider

    cfg = settings(data_dir=data_dir)
    version = LocalKeyFileProvider(cfg.resolved_key_file).add_root_version(key_custody.TOKEN)
    console.print(f"token key v{version} is now active; older tokens still detokenize")
    console.print("until their version is retired (`customer-vault keys retire-token`)")


@keys_app.command("retire-token")
def keys_retire_token(
    version: int,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Retire even though tokens of it are recorded.")
    ] = False,
) -> None:
    """Remove an old token key version: every token minted under it stops detokenizing."""
    from vault import key_custody
    from vault.crypto import LocalKeyFileProvider

    cfg = settings(data_dir=data_dir, database_url=database_url)
    db = _db(cfg)
    try:
        provider = LocalKeyFileProvider(cfg.resolved_key_file)
        live = key_custody.secret_status(db, provider, key_custody.TOKEN).rows_by_version.get(
            version, 0
        )
        if live and not yes:
            raise _fail(f"{live} tokens of v{version} would stop working; add --yes to retire")
        forgotten = key_custody.retire_token_version(db, provider, version)
    except VaultError as exc:
        raise _fail(exc.message) from None
    console.print(f"token key v{version} retired; {forgotten} tokens no longer detokenize")


@token_app.command("issue")
def token_issue(
    principal: Annotated[str, typer.Option(help="Principal id (service or employee).")],
    tenant: Annotated[str, typer.Option(help="The tenant the token is scoped to.")],
    role: Annotated[list[str], typer.Option(help="Role (repeatable).")],
    attr: Annotated[list[str] | None, typer.Option(help="Attribute k=v (repeatable).")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 15m, 1h (max 24h).")] = "1h",
    bind_cert: Annotated[
        Path | None,
        typer.Option(
            help="Bind the token to this PEM client certificate (RFC 8705): it is then "
            "accepted only over mutual TLS with that certificate, so a copy is useless."
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """DEVELOPMENT ONLY: print a bearer token (EdDSA) signed with the data dir's own key.

    Anyone who can read that key can mint any role, so a vault trusting it serves only
    on loopback with SQLite unless started with `serve --dev`; in production tokens come
    from your identity provider. Each token issued is recorded in the audit log
    (principal, roles, tenant, expiry; the operator by uid) when the log can be reached.
    """
    from vault import dev_tokens
    from vault.clock import SystemClock
    from vault.crypto import KeyMaterialError, certificate_thumbprint
    from vault.principal import Principal

    cfg = settings(data_dir=data_dir, database_url=database_url)
    if not cfg.token_private_key.exists():
        raise _fail("no token signing key: run `customer-vault keys init` first")
    err.print(
        "[yellow]notice:[/yellow] development token, signed with the data dir's own key "
        f"({cfg.token_private_key}); production tokens come from your identity provider"
    )
    who = Principal(
        id=principal,
        tenant=tenant,
        roles=frozenset(role),
        attributes=MappingProxyType(parse_pairs(attr or [], "--attr")),
    )
    bound_to = None
    if bind_cert is not None:
        try:
            bound_to = certificate_thumbprint(bind_cert.read_bytes())
        except (OSError, KeyMaterialError) as exc:
            raise _fail(f"--bind-cert {bind_cert}: {exc}") from None
    try:
        issued = dev_tokens.issue(cfg, who, parse_ttl(ttl), SystemClock(), bound_to=bound_to)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if issued.recorded:
        err.print(f"recorded in the audit log as {dev_tokens.ACTION} by {dev_tokens.operator()}")
    else:
        err.print(f"[yellow]not recorded in the audit log:[/yellow] {issued.not_recorded}")
    print(issued.token)


def _configure_logging() -> None:
    """Log lines on stderr, each naming the trace and span it was written in."""
    from vault.telemetry import LOG_FORMAT, RedactingFormatter, TraceContextFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    handler.addFilter(TraceContextFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def main() -> None:
    """Console-script entry point. Whatever a command creates (keys, the data dir, the
    SQLite files, receipts written with --receipt-out) is private to its user."""
    os.umask(0o077)
    app()
