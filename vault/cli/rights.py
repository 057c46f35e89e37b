"""`customer-vault rights ...`: data-subject requests against a running vault."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from google.protobuf import json_format
from rich.console import Console

from vault.api.gen.customervault.v1 import rights_pb2 as pb
from vault.api.gen.customervault.v1 import vault_pb2
from vault.cli.options import parse_pairs
from vault.cli.remote import Address, AsJson, Token, call

rights_app = typer.Typer(no_args_is_help=True, help="Data-subject rights: access, rectify, ...")
console = Console()

Reason = Annotated[str, typer.Option(help="The request's reference (audited; no PII).")]


def show_meta(meta: vault_pb2.SubjectMeta, as_json: bool) -> None:
    if as_json:
        print(json_format.MessageToJson(meta, indent=2))
    else:
        state = vault_pb2.SubjectState.Name(meta.state).removeprefix("SUBJECT_STATE_").lower()
        console.print(f"{meta.subject_id} version {meta.version} {state}")


def _run(address: str, token: str, method: str, request: object) -> vault_pb2.SubjectMeta:
    response = call(address, token, "rights", method, request)
    subject: vault_pb2.SubjectMeta = response.subject
    return subject


@rights_app.command("access")
def access(
    subject_id: str,
    reason: Reason,
    out: Annotated[Path | None, typer.Option(help="Write the package to this file.")] = None,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Everything held about the subject, as one JSON package (access and portability)."""
    request = pb.ExportSubjectDataRequest(subject_id=subject_id, reason=reason)
    response = call(address, token, "rights", "ExportSubjectData", request)
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
    request = pb.RectifySubjectDataRequest(
        subject_id=subject_id,
        expected_version=version,
        set_fields=parse_pairs(set_ or [], "--set"),
        clear_fields=clear or [],
        reason=reason,
    )
    show_meta(_run(address, token, "RectifySubjectData", request), as_json)


@rights_app.command("restrict")
def restrict(
    subject_id: str,
    reason: Reason,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Freeze processing (storage, the subject's own requests and legal claims only)."""
    request = pb.RestrictProcessingRequest(subject_id=subject_id, reason=reason)
    show_meta(_run(address, token, "RestrictProcessing", request), as_json)


@rights_app.command("lift-restriction")
def lift_restriction(
    subject_id: str,
    reason: Reason,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """End a restriction of processing."""
    request = pb.LiftRestrictionRequest(subject_id=subject_id, reason=reason)
    show_meta(_run(address, token, "LiftRestriction", request), as_json)


@rights_app.command("erase")
def erase(
    subject_id: str,
    reason: Reason,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Erase the subject: crypto-shred its personal data, keep a tombstone."""
    request = pb.EraseSubjectDataRequest(subject_id=subject_id, reason=reason)
    show_meta(_run(address, token, "EraseSubjectData", request), as_json)
