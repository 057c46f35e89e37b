"""What every client command of the CLI shares: the address and token options, a client
(the slim `customer_vault_client`, imported when a command runs), and how a failed call
is printed.

The environment names are the CLI's own, `CUSTOMER_VAULT_ADDR` and `CUSTOMER_VAULT_TOKEN`
(HashiCorp Vault's `VAULT_ADDR`/`VAULT_TOKEN` left in a shell are ignored, with a warning
when they are all there is). TLS: `CUSTOMER_VAULT_CA_FILE` (trust this CA),
`CUSTOMER_VAULT_CLIENT_CERT` and `CUSTOMER_VAULT_CLIENT_KEY` (mutual TLS),
`CUSTOMER_VAULT_TLS=1` (TLS with the system's roots); `CUSTOMER_VAULT_TIMEOUT` (seconds
per call).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from customer_vault_client import VaultClient, VaultClientError

DEFAULT_ADDRESS = "127.0.0.1:50051"
FOREIGN_VARIABLES = ("VAULT_TOKEN", "VAULT_ADDR")
"""HashiCorp Vault's variables: never read, named in a warning when they are all set."""

Address = Annotated[str, typer.Option(envvar="CUSTOMER_VAULT_ADDR", help="The vault's HOST:PORT.")]
Token = Annotated[
    str,
    typer.Option(
        envvar="CUSTOMER_VAULT_TOKEN",
        help="Bearer token (`customer-vault token issue` in development).",
        show_default=False,
    ),
]


def _err(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(message, soft_wrap=True, highlight=False)


def require_token(token: str) -> None:
    """End the command (exit 2) when no token was given."""
    if token:
        return
    _err("[red]error:[/red] no token: pass --token or set CUSTOMER_VAULT_TOKEN")
    foreign = [name for name in FOREIGN_VARIABLES if os.environ.get(name)]
    if foreign:
        _err(
            f"[yellow]note:[/yellow] {' and '.join(foreign)} (HashiCorp Vault's) are set "
            "and ignored: this CLI reads CUSTOMER_VAULT_TOKEN and CUSTOMER_VAULT_ADDR"
        )
    raise typer.Exit(2)


def _path(variable: str) -> Path | None:
    value = os.environ.get(variable, "")
    return Path(value) if value else None


def client_for(address: str, token: str, *, anonymous: bool = False) -> VaultClient:
    """A client for the CLI's client commands (a token is required unless `anonymous`);
    TLS and the deadline from the environment (module doc)."""
    from customer_vault_client import DEFAULT_TIMEOUT, VaultClient

    if not anonymous:
        require_token(token)
    timeout = float(os.environ.get("CUSTOMER_VAULT_TIMEOUT") or DEFAULT_TIMEOUT)
    try:
        return VaultClient(
            address,
            token,
            tls=os.environ.get("CUSTOMER_VAULT_TLS", "") not in ("", "0"),
            ca_file=_path("CUSTOMER_VAULT_CA_FILE"),
            client_cert=_path("CUSTOMER_VAULT_CLIENT_CERT"),
            client_key=_path("CUSTOMER_VAULT_CLIENT_KEY"),
            timeout=timeout,
        )
    except (OSError, ValueError) as exc:
        _err(f"[red]error:[/red] TLS settings: {exc}")
        raise typer.Exit(2) from None


def fail(exc: VaultClientError) -> typer.Exit:
    """Print a failed call's code, message, field violations, reason and request id;
    the Exit (code 1) to raise."""
    from rich.markup import escape

    _err(f"[red]{exc.code}[/red] {escape(exc.message)}")
    for field, description in exc.violations:
        _err(f"  {escape(field)}: {escape(description)}")
    if exc.reason:
        _err(f"  reason: {exc.reason}")
    if exc.request_id:
        _err(f"  request id: {exc.request_id}")
    return typer.Exit(1)


def call(
    address: str,
    token: str,
    service: str,
    method: str,
    /,
    *,
    anonymous: bool = False,
    **fields: Any,
) -> Any:
    """One unary call of `service` (a stub of `VaultClient`: vault, consent, rights,
    admin...) with a request built from `fields` (protobuf JSON names and values); a
    failure is printed and ends the command. `anonymous`: no token needed."""
    from customer_vault_client import VaultClientError
    from customer_vault_client.messages import RequestError, build_request

    try:
        request = build_request(service, method, fields)
    except RequestError as exc:
        raise typer.BadParameter(str(exc)) from None
    with client_for(address, token, anonymous=anonymous) as client:
        try:
            return client.call(getattr(client, service), method, request)
        except VaultClientError as exc:
            raise fail(exc) from None


def stream(address: str, token: str, service: str, method: str, /, **fields: Any) -> Any:
    """Every message of a server-streaming call, as `call` does for a unary one."""
    from customer_vault_client import VaultClientError
    from customer_vault_client.messages import RequestError, build_request

    try:
        request = build_request(service, method, fields)
    except RequestError as exc:
        raise typer.BadParameter(str(exc)) from None
    with client_for(address, token) as client:
        try:
            yield from client.stream(getattr(client, service), method, request)
        except VaultClientError as exc:
            raise fail(exc) from None
