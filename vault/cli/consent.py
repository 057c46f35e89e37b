"""`customer-vault consent ...`: the consent ledger of a running vault, and offline
verification of the signed receipts it issues."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from vault.cli import receipts
from vault.cli.options import parse_ttl
from vault.cli.output import Format, FormatOpt, Output, print_document, print_message, write
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call

consent_app = typer.Typer(no_args_is_help=True, help="Consent, opt-outs and consent receipts.")
consent_app.command("verify-receipt")(receipts.verify_receipt)
consent_app.command("verify-package")(receipts.verify_package)

CHANNELS = ("web", "app", "call_centre", "api", "gpc")
"""The consent channels of the contract (`ConsentChannel`), as the options name them."""

Purposes = Annotated[list[str], typer.Option("--purpose", help="A purpose (repeatable).")]
ChannelName = Annotated[
    str, typer.Option(help="How the subject chose: web, app, call_centre, api or gpc.")
]
Notice = Annotated[str, typer.Option(help="Version of the privacy notice shown, e.g. 2026-01.")]
Evidence = Annotated[
    str,
    typer.Option(
        help="Opaque id your system keeps the proof under: ev_ + 26 base32 characters "
        "(`consent new-evidence-ref`)."
    ),
]
Jurisdiction = Annotated[str, typer.Option(help="ISO 3166 code (default: the vault's).")]
ReceiptOutput = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Also write the signed receipt to this file."),
]


def _source(channel: str, notice: str, evidence: str, jurisdiction: str) -> dict[str, str]:
    if channel not in CHANNELS:
        raise typer.BadParameter("use web, app, call_centre, api or gpc", param_hint="--channel")
    return {
        "channel": f"CONSENT_CHANNEL_{channel.upper()}",
        "notice_version": notice,
        "evidence_ref": evidence,
        "jurisdiction": jurisdiction,
    }


def _moment(text: str, hint: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("an ISO 8601 time", param_hint=hint) from None
    if moment.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. Z", param_hint=hint)
    return _rfc3339(moment)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _expiry(text: str) -> dict[str, Any]:
    """The request's `expires_at`, or nothing when no expiry was given."""
    if not text:
        return {}
    if text[-1] in "smhd" and text[:-1].isdigit():
        return {"expires_at": _rfc3339(datetime.now(UTC) + parse_ttl(text))}
    return {"expires_at": _moment(text, "--expires")}


def _changed(response: Any, receipt_output: Path | None, fmt: Format) -> None:
    print_message(response, fmt, table=_change_lines)
    if receipt_output is not None:
        write(response.receipt.document, receipt_output)


def _change_lines(response: Any) -> str:
    from customer_vault_client.messages import enum_name

    lines = []
    for event in response.events:
        action = enum_name(event, "action").removeprefix("CONSENT_ACTION_").lower()
        lines.append(f"{action} {event.purpose} (sequence {event.sequence})")
    lines.append(f"consent version {response.consent_version}")
    lines.append(f"receipt {response.receipt.receipt_id}")
    return "\n".join(lines)


@consent_app.command("new-evidence-ref")
def new_evidence_ref(fmt: FormatOpt = Format.table) -> None:
    """Print a fresh opaque evidence reference (ev_ + 26 base32 characters): store the
    proof of a choice under it in your own system and send it as --evidence-ref."""
    from vault.crypto import new_random_id

    reference = new_random_id("ev")
    print_document({"evidence_ref": reference}, fmt, table=reference)


@consent_app.command("grant")
def grant(
    subject_id: str,
    purpose: Purposes,
    channel: ChannelName,
    notice_version: Notice,
    evidence_ref: Evidence = "",
    expires: Annotated[str, typer.Option(help="ISO 8601 time, or a duration like 365d.")] = "",
    jurisdiction: Jurisdiction = "",
    receipt_output: ReceiptOutput = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Record the subject's consent to purposes."""
    response = call(
        address,
        token,
        "consent",
        "GrantConsent",
        subject_id=subject_id,
        purposes=purpose,
        source=_source(channel, notice_version, evidence_ref, jurisdiction),
        **_expiry(expires),
    )
    _changed(response, receipt_output, fmt)


@consent_app.command("withdraw")
def withdraw(
    subject_id: str,
    channel: ChannelName,
    notice_version: Notice,
    purpose: Annotated[list[str] | None, typer.Option("--purpose", help="Repeatable.")] = None,
    receipt_id: Annotated[str, typer.Option(help="Withdraw what this receipt granted.")] = "",
    evidence_ref: Evidence = "",
    jurisdiction: Jurisdiction = "",
    receipt_output: ReceiptOutput = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Withdraw consent to purposes (or to everything one receipt granted)."""
    response = call(
        address,
        token,
        "consent",
        "WithdrawConsent",
        subject_id=subject_id,
        purposes=purpose or [],
        receipt_id=receipt_id,
        source=_source(channel, notice_version, evidence_ref, jurisdiction),
    )
    _changed(response, receipt_output, fmt)


@consent_app.command("opt-out")
def opt_out(
    subject_id: str,
    notice_version: Notice,
    scope: Annotated[
        list[str] | None,
        typer.Option(help="A purpose or all_marketing / all_sharing (repeatable)."),
    ] = None,
    channel: ChannelName = "web",
    evidence_ref: Evidence = "",
    jurisdiction: Jurisdiction = "",
    receipt_output: ReceiptOutput = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
) -> None:
    """Opt out of purposes or whole groups; --channel gpc opts out of all sharing."""
    response = call(
        address,
        token,
        "consent",
        "OptOut",
        subject_id=subject_id,
        scopes=scope or [],
        source=_source(channel, notice_version, evidence_ref, jurisdiction),
    )
    _changed(response, receipt_output, fmt)


@consent_app.command("status")
def status(
    subject_id: str,
    at: Annotated[str, typer.Option(help="Rebuild the state at this ISO 8601 time.")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """The subject's consent per purpose, now or at a past moment."""
    moment: dict[str, Any] = {"at": _moment(at, "--at")} if at else {}
    response = call(address, token, "consent", "GetConsent", subject_id=subject_id, **moment)
    print_message(response, fmt, output, table=_status_table)


def _status_table(response: Any) -> Any:
    from customer_vault_client.messages import time_text
    from rich.table import Table

    title = f"{response.subject_id}  consent version {response.consent_version}"
    table = Table(
        "purpose", "granted", "withdrawn", "expires", "effective", "blocked by", title=title
    )
    for p in response.purposes:
        table.add_row(
            p.purpose,
            _yes(p.granted),
            _yes(p.withdrawn),
            time_text(p, "expires_at"),
            _yes(p.effective),
            p.blocked_by,
        )
    return table


@consent_app.command("history")
def history(
    subject_id: str,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Every ledger event of the subject, oldest first (every page)."""
    response = call(
        address, token, "consent", "ListConsentEvents", subject_id=subject_id, page_size=1000
    )
    while response.next_page_token:
        more = call(
            address,
            token,
            "consent",
            "ListConsentEvents",
            subject_id=subject_id,
            page_size=1000,
            page_token=response.next_page_token,
        )
        response.events.extend(more.events)
        response.next_page_token = more.next_page_token
    print_message(response, fmt, output, table=_history_table)


def _history_table(response: Any) -> Any:
    from customer_vault_client.messages import enum_name, time_text
    from rich.table import Table

    table = Table("seq", "recorded", "purpose", "action", "channel", "notice", "expires", "receipt")
    for e in response.events:
        table.add_row(
            str(e.sequence),
            time_text(e, "recorded_at"),
            e.purpose,
            enum_name(e, "action").removeprefix("CONSENT_ACTION_").lower(),
            enum_name(e.source, "channel").removeprefix("CONSENT_CHANNEL_").lower(),
            e.source.notice_version,
            time_text(e, "expires_at"),
            e.receipt_id,
        )
    return table


@consent_app.command("receipt")
def receipt(
    subject_id: str,
    receipt_id: str,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Fetch a receipt issued earlier for the subject: the signed document (table), or
    the whole response (json)."""
    response = call(
        address,
        token,
        "consent",
        "GetConsentReceipt",
        subject_id=subject_id,
        receipt_id=receipt_id,
    )
    if fmt is Format.json:
        print_message(response, fmt, output)
    else:
        write(response.receipt.document, output)


def _yes(value: bool) -> str:
    return "yes" if value else "no"
