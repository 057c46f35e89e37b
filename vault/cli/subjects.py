"""`customer-vault subjects ...`: a client for a running vault (as HashiCorp's `vault` is)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vault.api.client import VaultClientError
from vault.api.messages import enum_name, to_json, to_json_line
from vault.cli.options import parse_pairs
from vault.cli.remote import Address, AsJson, Token, client_for, fail

subjects_app = typer.Typer(
    no_args_is_help=True, help="Store and read customers in a running vault."
)
console = Console()

View = Annotated[str, typer.Option(help="The masked view to read through.")]
Purpose = Annotated[str, typer.Option(help="Why you read (a declared purpose).")]
Justification = Annotated[
    str,
    typer.Option(
        help="Why, citing the case (required for full clear-text views and legal-obligation "
        "purposes; audited, no personal data)."
    ),
]


def _show_view(view: Any, as_json: bool) -> None:
    if as_json:
        print(to_json(view))
        return
    meta = view.meta
    title = f"{meta.subject_id}  v{meta.version}  {enum_name(meta, 'state')}  view={view.view}"
    table = Table("field", "value", "disclosure", "written by", title=title)
    for name in sorted(view.fields):
        f = view.fields[name]
        shown = enum_name(f, "disclosure").removeprefix("DISCLOSURE_").lower()
        table.add_row(name, f.value, f"{shown} {f.strategy}".strip(), f.provenance.written_by)
    for withheld in view.withheld:
        table.add_row(withheld.field, "-", f"withheld ({withheld.reason})", "")
    console.print(table)


def _show_meta(meta: Any, as_json: bool) -> None:
    if as_json:
        print(to_json(meta))
    else:
        console.print(f"{meta.subject_id} version {meta.version} {enum_name(meta, 'state')}")


@subjects_app.command("create")
def create(
    field: Annotated[list[str], typer.Option(help="name=value (repeatable).")],
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Store a new customer."""
    with client_for(address, token) as client:
        try:
            _show_meta(client.create(parse_pairs(field, "--field")), as_json)
        except VaultClientError as exc:
            raise fail(exc) from None


@subjects_app.command("get")
def get(
    subject_id: str,
    view: View = "support",
    purpose: Purpose = "support",
    justification: Justification = "",
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Read a customer through a view."""
    with client_for(address, token) as client:
        try:
            _show_view(client.get(subject_id, view, purpose, justification), as_json)
        except VaultClientError as exc:
            raise fail(exc) from None


@subjects_app.command("find")
def find(
    field: Annotated[str, typer.Option(help="A searchable field, e.g. email.")],
    value: Annotated[str, typer.Option(help="The exact value.")],
    view: View = "support",
    purpose: Purpose = "support",
    justification: Justification = "",
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Find customers by an exact value of a searchable field (blind index)."""
    with client_for(address, token) as client:
        try:
            found = client.find(field, value, view, purpose, justification)
        except VaultClientError as exc:
            raise fail(exc) from None
    for subject in found:
        _show_view(subject, as_json)
    if not found and not as_json:
        console.print("no match")


@subjects_app.command("update")
def update(
    subject_id: str,
    version: Annotated[int, typer.Option(help="The version you read (optimistic locking).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value.")] = None,
    clear: Annotated[list[str] | None, typer.Option(help="Field to clear.")] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Change fields of a customer."""
    with client_for(address, token) as client:
        try:
            meta = client.update(
                subject_id, version, parse_pairs(set_ or [], "--set"), clear or [], reason
            )
        except VaultClientError as exc:
            raise fail(exc) from None
    _show_meta(meta, as_json)


@subjects_app.command("erase")
def erase(
    subject_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")],
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Crypto-shred a customer's personal data."""
    with client_for(address, token) as client:
        try:
            _show_meta(client.erase(subject_id, reason), as_json)
        except VaultClientError as exc:
            raise fail(exc) from None


@subjects_app.command("activity")
def activity(
    subject_id: str,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Record customer activity now (resets dormancy)."""
    with client_for(address, token) as client:
        try:
            _show_meta(client.record_activity(subject_id), as_json)
        except VaultClientError as exc:
            raise fail(exc) from None


@subjects_app.command("export")
def export(
    view: View = "analytics",
    purpose: Purpose = "analytics",
    justification: Justification = "",
    address: Address = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Stream every customer of your tenant through a view, as JSON lines."""
    with client_for(address, token) as client:
        try:
            for subject in client.export(view, purpose, justification):
                print(to_json_line(subject))
        except VaultClientError as exc:
            raise fail(exc) from None
