"""What every client command of the CLI shares: the address and token options, a client,
and how a failed call is printed."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from vault.api.client import VaultClient, VaultClientError
from vault.api.messages import RequestError, build_request

err = Console(stderr=True)

Address = Annotated[str, typer.Option(envvar="VAULT_ADDRESS", help="The vault's HOST:PORT.")]
Token = Annotated[
    str, typer.Option(envvar="VAULT_TOKEN", help="Bearer token (`customer-vault token issue`).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def client_for(address: str, token: str) -> VaultClient:
    """A client for the CLI's client commands (a token is required)."""
    if not token:
        err.print("[red]error:[/red] no token: pass --token or set VAULT_TOKEN")
        raise typer.Exit(2)
    return VaultClient(address, token)


def fail(exc: VaultClientError) -> typer.Exit:
    """Print a failed call's code, message and field violations; exit 1."""
    err.print(f"[red]{exc.code}[/red] {exc.message}")
    for field, description in exc.violations:
        err.print(f"  {field}: {description}")
    return typer.Exit(1)


def call(address: str, token: str, service: str, method: str, **fields: Any) -> Any:
    """One unary call of `service` (a stub of `VaultClient`: consent, rights, admin...)
    with a request built from `fields`; a failure is printed and ends the command."""
    try:
        request = build_request(service, method, fields)
    except RequestError as exc:
        raise typer.BadParameter(str(exc)) from None
    with client_for(address, token) as client:
        try:
            return client.call(getattr(client, service), method, request)
        except VaultClientError as exc:
            raise fail(exc) from None
