"""`customer-vault retention notices | acknowledge | hold | release | holds | report`: the
retention officer's calls to a running vault (RetentionService), mounted on the
retention group next to the local `run`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from vault.cli.output import Format, FormatOpt, Output, print_message, rows_table
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call

Reason = Annotated[str, typer.Option(help="Why (the case reference; audited, no PII).")]
PageSize = Annotated[int, typer.Option(help="Per page (0: the vault's default).")]
PageToken = Annotated[str, typer.Option(help="Continue from a previous page.")]


def notices(
    include_acknowledged: Annotated[
        bool, typer.Option(help="Also the notices already acknowledged.")
    ] = False,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Dormancy notices sent (one page)."""
    response = call(
        address,
        token,
        "retention",
        "ListNotices",
        includeAcknowledged=include_acknowledged,
        pageSize=page_size,
        pageToken=page_token,
    )
    print_message(response, fmt, output, table=lambda r: rows_table(r, "notices"))


def acknowledge(
    notice_id: str,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Mark a dormancy notice as handled."""
    response = call(address, token, "retention", "AcknowledgeNotice", noticeId=notice_id)
    print_message(response, fmt, output)


def hold(
    subject_id: str,
    reason: Reason,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Put the subject under legal hold: never anonymized while it lasts."""
    response = call(
        address, token, "retention", "SetLegalHold", subjectId=subject_id, reason=reason
    )
    print_message(response, fmt, output)


def release(
    subject_id: str,
    reason: Reason,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """End the subject's legal hold."""
    response = call(
        address, token, "retention", "ClearLegalHold", subjectId=subject_id, reason=reason
    )
    print_message(response, fmt, output, table=lambda _: f"legal hold on {subject_id} cleared")


def holds(
    page_size: PageSize = 0,
    page_token: PageToken = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Subjects under legal hold (one page)."""
    response = call(
        address, token, "retention", "ListLegalHolds", pageSize=page_size, pageToken=page_token
    )
    print_message(response, fmt, output, table=lambda r: rows_table(r, "holds"))


def report(
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """The last retention run's report as the vault keeps it."""
    response: Any = call(address, token, "retention", "GetRetentionReport")
    print_message(response, fmt, output)


def runs(
    page_size: PageSize = 0,
    page_token: PageToken = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Past anonymization runs, newest first (one page): this tenant's counts and the
    k-anonymity of its anonymized records when each run ended."""
    response = call(
        address, token, "retention", "ListRetentionRuns", pageSize=page_size, pageToken=page_token
    )
    print_message(response, fmt, output, table=lambda r: rows_table(r, "runs"))


COMMANDS: dict[str, Callable[..., None]] = {
    "notices": notices,
    "acknowledge": acknowledge,
    "hold": hold,
    "release": release,
    "holds": holds,
    "report": report,
    "runs": runs,
}
