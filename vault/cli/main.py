"""`customer-vault`: run the vault, manage keys and tokens, and talk to a running vault."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from vault.cli.lazy import Group, lazy_root
from vault.cli.options import DatabaseUrl, DataDir, die, settings

GROUPS: dict[str, Group] = {
    "subjects": Group("vault.cli.subjects", "subjects_app", "Store and read customers."),
    "consent": Group("vault.cli.consent", "consent_app", "Consent, opt-outs, receipts."),
    "rights": Group("vault.cli.rights", "rights_app", "Data-subject rights: access, rectify..."),
    "customers": Group(
        "vault.cli.customers", "customers_app", "Customers' own access: tokens, links, notices."
    ),
    "retention": Group(
        "vault.cli.retention", "retention_app", "Dormancy: the job, notices, legal holds."
    ),
    "policy": Group("vault.cli.policy", "policy_app", "Check and reload the access policy."),
    "audit": Group("vault.cli.audit", "audit_app", "The compliance officer's audit tools."),
    "events": Group(
        "vault.cli.events", "events_app", "The event feed for the front end (by cursor)."
    ),
    "keys": Group("vault.cli.keys", "keys_app", "Key custody: create, rotate, re-wrap, retire."),
    "token": Group("vault.cli.dev_token", "token_app", "Development bearer tokens."),
    "witness": Group(
        "audit.witness.cli",
        "app",
        "A witness for the audit log: its own process, key and storage (C2SP tlog-witness).",
    ),
}
"""Every command group: imported only when it runs (`vault.cli.lazy`). Add a group here."""

# No local variables in tracebacks: a frame's locals may hold settings or key material.
app = typer.Typer(
    cls=lazy_root(GROUPS),
    no_args_is_help=True,
    help=__doc__,
    pretty_exceptions_show_locals=False,
)


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
    from vault.errors import VaultError
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
        raise die(exc.message) from None
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
    from rich.console import Console

    from vault.errors import VaultError
    from vault.fields.dictionary import DataDictionary
    from vault.web import WebSettings, create_app

    _configure_logging()
    cfg = settings(data_dir=data_dir, policies_dir=policies_dir)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise die("--listen must be HOST:PORT")
    if (tls_cert is None) != (tls_key is None):
        raise die("--tls-cert and --tls-key go together")
    try:
        dictionary = DataDictionary.from_file(cfg.policies_dir / "data_dictionary.yaml")
    except VaultError as exc:
        raise die(exc.message) from None
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
    Console(stderr=True).print(
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
    print("schema is current")


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
    app(prog_name="customer-vault")
