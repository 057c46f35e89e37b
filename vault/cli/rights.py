"""`customer-vault rights ...`: data-subject requests against a running vault."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vault.api.messages import enum_name, to_json
from vault.cli.options import parse_pairs
from vault.cli.remote import Address, AsJson, Token, call

rights_app = typer.Typer(no_args_is_help=True, help="Data-subject rights: access, rectify, ...")
console = Console()

Reason = Annotated[str, typer.Option(help="The request's reference (audited; no PII).")]


def show_meta(meta: Any, as_json: bool) -> None:
    """A subject's id, version and state (or the `SubjectMeta` message as JSON)."""
    if as_json:
        print(to_json(meta))
    else:
        state = enum_name(meta, "state").removeprefix("SUBJECT_STATE_").lower()
        console.print(f"{meta.subject_id} version {meta.version} {state}")


def _run(address: str, token: str, method: str, **fields: Any) -> Any:
    return call(address, token, "rights", method, **fields).subject


@rights_app.command("access")
def access(
    subject_id: str,
    reason: Reason,
    out: Annotated[Path | None, typer.Option(help="Write the package to this file.")] = None,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Everything held about the subject, as one JSON package (access and portability)."""
    response = call(
        address, token, "rights", "ExportSubjectData", subject_id=subject_id, reason=reason
    )
    if out is None:
        print(response.package_json)
    else:
        out.write_text(response.package_json + "\n")
        console.print(f"wrote {out}")


@rights_app.command("rectify")
def rectify(
    subject_id: str,
    version: Annotated[int, typer.Option(help="The version you read (optimistic locking).")],
    reason: Reason,
    set_: Annotated[list[str] | None, typer.Option("--set", help="name=value.")] = None,
    clear: Annotated[list[str] | None, typer.Option(help="Field to clear.")] = None,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
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
    show_meta(subject, as_json)


@rights_app.command("restrict")
def restrict(
    subject_id: str,
    reason: Reason,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Freeze processing (storage, the subject's own requests and legal claims only)."""
    show_meta(
        _run(address, token, "RestrictProcessing", subject_id=subject_id, reason=reason), as_json
    )


@rights_app.command("lift-restriction")
def lift_restriction(
    subject_id: str,
    reason: Reason,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """End a restriction of processing."""
    show_meta(
        _run(address, token, "LiftRestriction", subject_id=subject_id, reason=reason), as_json
    )


@rights_app.command("erase")
def erase(
    subject_id: str,
    reason: Reason,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Erase the subject: crypto-shred its personal data, keep a tombstone."""
    show_meta(
        _run(address, token, "EraseSubjectData", subject_id=subject_id, reason=reason), as_json
    )
