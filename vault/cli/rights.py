"""`customer-vault rights ...`: data-subject requests against a running vault."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vault.cli.options import parse_pairs
from vault.cli.output import Format, FormatOpt, Output, print_message, write
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call
from vault.cli.requests import requests_app
from vault.cli.shapes import meta_line

rights_app = typer.Typer(no_args_is_help=True, help="Data-subject rights: access, rectify, ...")

Reason = Annotated[str, typer.Option(help="The request's reference (audited; no PII).")]


def show_meta(meta: Any, fmt: Format, output: Path | None = None) -> None:
    """A subject's id, version and state (or the `SubjectMeta` message as JSON)."""
    print_message(meta, fmt, output, table=meta_line)


def _run(address: str, token: str, method: str, **fields: Any) -> Any:
    return call(address, token, "rights", method, **fields).subject


@rights_app.command("access")
def access(
    subject_id: str,
    reason: Reason,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Everything held about the subject, as one JSON package (access and portability):
    the package itself (table, the default), or the whole response (json)."""
    response = call(
        address, token, "rights", "ExportSubjectData", subject_id=subject_id, reason=reason
    )
    if fmt is Format.json:
        print_message(response, fmt, output)
    else:
        write(response.package_json, output)


@rights_app.command("rectify")
def rectify(
    subject_id: str,
    version: Annotated[int, typer.Option(help="The version you read (optimistic locking).")],
    reason: Reason,
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value.")] = None,
    clear: Annotated[list[str] | None, typer.Option(help="Field to clear.")] = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Correct the subject's fields; the reason is recorded."""
    subject = _run(
        address,
        token,
        "RectifySubjectData",
        subject_id=subject_id,
        expected_version=version,
        set_fields=parse_pairs(set_ or [], "--set"),
        clear_fields=clear or [],
        reason=reason,
    )
    show_meta(subject, fmt, output)


@rights_app.command("restrict")
def restrict(
    subject_id: str,
    reason: Reason,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Freeze processing (storage, the subject's own requests and legal claims only)."""
    show_meta(
        _run(address, token, "RestrictProcessing", subject_id=subject_id, reason=reason),
        fmt,
        output,
    )


@rights_app.command("lift-restriction")
def lift_restriction(
    subject_id: str,
    reason: Reason,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """End a restriction of processing."""
    show_meta(
        _run(address, token, "LiftRestriction", subject_id=subject_id, reason=reason), fmt, output
    )


@rights_app.command("erase")
def erase(
    subject_id: str,
    reason: Reason,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Erase the subject: crypto-shred its personal data, keep a tombstone."""
    show_meta(
        _run(address, token, "EraseSubjectData", subject_id=subject_id, reason=reason), fmt, output
    )


rights_app.add_typer(requests_app, name="requests")
