"""`customer-vault subjects ...`: a client for a running vault (as HashiCorp's `vault` is)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vault.cli import disclosure
from vault.cli.options import parse_pairs
from vault.cli.output import Format, FormatOpt, Output, open_output, print_message
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call, stream
from vault.cli.shapes import Justification, Purpose, View, meta_line, view_table

subjects_app = typer.Typer(
    no_args_is_help=True, help="Store and read customers in a running vault."
)
subjects_app.command("reveal")(disclosure.reveal)
subjects_app.command("tokenize")(disclosure.tokenize)
subjects_app.command("detokenize")(disclosure.detokenize)


def _meta(response: Any, fmt: Format, output: Path | None) -> None:
    print_message(response.subject, fmt, output, table=meta_line)


@subjects_app.command("create")
def create(
    field: Annotated[list[str], typer.Option(help="name=value (repeatable).")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Store a new customer."""
    response = call(address, token, "vault", "CreateSubject", fields=parse_pairs(field, "--field"))
    _meta(response, fmt, output)


@subjects_app.command("batch-create")
def batch_create(
    file: Annotated[Path, typer.Argument(help="JSON lines: one object of fields per line.")],
    all_or_nothing: Annotated[
        bool, typer.Option(help="Create every subject or none (one transaction).")
    ] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Store many customers in one call; each line's result (id or error) is printed."""
    try:
        lines = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        items = [{"fields": json.loads(line)} for line in lines]
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{file}: {type(exc).__name__}", param_hint="FILE") from None
    response = call(
        address, token, "vault", "BatchCreateSubjects", items=items, allOrNothing=all_or_nothing
    )
    print_message(response, fmt, output, table=_batch_table)


def _batch_table(response: Any) -> Any:
    from rich.table import Table

    table = Table("line", "subject", "error", title=f"{response.created} created")
    for result in response.results:
        error = f"{result.error.code} {result.error.message}" if result.error.code else ""
        table.add_row(str(result.index + 1), result.subject_id, error)
    return table


@subjects_app.command("get")
def get(
    subject_id: str,
    view: View = "support",
    purpose: Purpose = "support",
    justification: Justification = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Read a customer through a view."""
    response = call(
        address,
        token,
        "vault",
        "GetSubject",
        subjectId=subject_id,
        view=view,
        purpose=purpose,
        justification=justification,
    )
    print_message(response.subject, fmt, output, table=view_table)


@subjects_app.command("find")
def find(
    field: Annotated[str, typer.Option(help="A searchable field, e.g. email.")],
    value: Annotated[str, typer.Option(help="The exact value.")],
    view: View = "support",
    purpose: Purpose = "support",
    justification: Justification = "",
    page_size: Annotated[int, typer.Option(help="Per page (0: the vault's default).")] = 0,
    page_token: Annotated[str, typer.Option(help="Continue from a previous page.")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Find customers by an exact value of a searchable field (blind index): one page;
    the next page's token is printed when there is one."""
    response = call(
        address,
        token,
        "vault",
        "FindSubjects",
        field=field,
        value=value,
        view=view,
        purpose=purpose,
        justification=justification,
        pageSize=page_size,
        pageToken=page_token,
    )
    print_message(response, fmt, output, table=_found_table)


def _found_table(response: Any) -> Any:
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [view_table(subject) for subject in response.subjects]
    if not parts:
        parts.append(Text("no match"))
    if response.next_page_token:
        parts.append(Text(f"more: add --page-token {response.next_page_token}"))
    return Group(*parts)


@subjects_app.command("update")
def update(
    subject_id: str,
    version: Annotated[int, typer.Option(help="The version you read (optimistic locking).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value.")] = None,
    clear: Annotated[list[str] | None, typer.Option(help="Field to clear.")] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Change fields of a customer."""
    response = call(
        address,
        token,
        "vault",
        "UpdateSubject",
        subjectId=subject_id,
        expectedVersion=version,
        setFields=parse_pairs(set_ or [], "--set"),
        clearFields=clear or [],
        reason=reason,
    )
    _meta(response, fmt, output)


@subjects_app.command("erase")
def erase(
    subject_id: str,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Crypto-shred a customer's personal data."""
    response = call(address, token, "vault", "EraseSubject", subjectId=subject_id, reason=reason)
    _meta(response, fmt, output)


@subjects_app.command("activity")
def activity(
    subject_id: str,
    kind: Annotated[
        str, typer.Option(help="What the customer did: login, purchase, ... or other.")
    ] = "other",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Record customer activity now (resets dormancy)."""
    response = call(
        address,
        token,
        "vault",
        "RecordActivity",
        subjectId=subject_id,
        kind=f"ACTIVITY_KIND_{kind.upper()}",
    )
    _meta(response, fmt, output)


@subjects_app.command("export")
def export(
    view: View = "analytics",
    purpose: Purpose = "analytics",
    justification: Justification = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.json,
    output: Output = None,
) -> None:
    """Stream every customer of your tenant through a view: JSON lines (--format json,
    the default) or one table per customer."""
    from customer_vault_client.messages import to_json_line

    streamed = stream(
        address,
        token,
        "vault",
        "ExportView",
        view=view,
        purpose=purpose,
        justification=justification,
    )
    subjects = (message.subject for message in streamed)
    if fmt is Format.json:
        with open_output(output) as out:
            for subject in subjects:
                out.write(to_json_line(subject) + "\n")
        return
    from rich.console import Group

    from vault.cli.output import render

    render(Group(*(view_table(subject) for subject in subjects)), output)
