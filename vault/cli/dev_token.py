"""`customer-vault token issue`: development bearer tokens signed with the data dir's key."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Annotated

import typer
from rich.console import Console

from vault.cli.options import DatabaseUrl, DataDir, die, parse_pairs, parse_ttl, settings
from vault.cli.output import Format, FormatOpt, print_document

token_app = typer.Typer(
    no_args_is_help=True, help="Development bearer tokens (DEVELOPMENT ONLY: see `token issue`)."
)
err = Console(stderr=True)


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
    fmt: FormatOpt = Format.table,
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
        raise die("no token signing key: run `customer-vault keys init` first")
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
            raise die(f"--bind-cert {bind_cert}: {exc}") from None
    try:
        issued = dev_tokens.issue(cfg, who, parse_ttl(ttl), SystemClock(), bound_to=bound_to)
    except ValueError as exc:
        raise die(str(exc)) from None
    if issued.recorded:
        err.print(f"recorded in the audit log as {dev_tokens.ACTION} by {dev_tokens.operator()}")
    else:
        err.print(f"[yellow]not recorded in the audit log:[/yellow] {issued.not_recorded}")
    if fmt is Format.json:
        print_document({"token": issued.token, "recorded": issued.recorded}, fmt)
    else:
        print(issued.token)  # plain: a console would wrap the token
