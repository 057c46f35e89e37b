"""`customer-vault rights requests ...`: the queue of customers' data-subject requests.

Through the RightsService with the caller's token, like the other client commands:
`list` (the nearest deadline first), `show` (one request; a rectification's proposed
values for a DPO), `decide` (approve or reject with a reason the customer sees). The
customer's own side (create, verify, list, cancel) and the front end's verification
code are `customer-vault customers request ...` (vault/cli/customers.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from vault.cli.options import parse_pairs
from vault.cli.output import Format, FormatOpt, Output, print_message
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call

requests_app = typer.Typer(
    no_args_is_help=True, help="Customers' rectification, restriction and erasure requests."
)

STATES = (
    "awaiting_verification",
    "pending_decision",
    "fulfilled",
    "rejected",
    "cancelled",
    "expired",
)
_STATE_PREFIX = "DATA_SUBJECT_REQUEST_STATE_"
_KIND_PREFIX = "DATA_SUBJECT_REQUEST_KIND_"


def _name(message: Any, field: str, prefix: str) -> str:
    enum = message.DESCRIPTOR.fields_by_name[field].enum_type
    value = enum.values_by_number.get(getattr(message, field))
    return (value.name if value else str(getattr(message, field))).removeprefix(prefix).lower()


def _due(message: Any, now: datetime) -> str:
    """The deadline's day; for an open request, the days left or OVERDUE."""
    deadline = message.deadline.ToDatetime(tzinfo=UTC)
    day = f"{deadline:%Y-%m-%d}"
    if _name(message, "state", _STATE_PREFIX) not in STATES[:2]:
        return day
    if deadline < now:
        return f"{day} OVERDUE"
    return f"{day} ({(deadline - now).days}d)"


def queue_table(response: Any) -> Any:
    """One line a request, within 80 columns."""
    from rich.table import Table

    now = datetime.now(UTC)
    table = Table("request", "kind", "state", "due", box=None, pad_edge=False)
    for item in response.requests:
        table.add_row(
            item.request_id,
            _name(item, "kind", _KIND_PREFIX),
            _name(item, "state", _STATE_PREFIX),
            _due(item, now),
        )
    if getattr(response, "next_page_token", ""):
        table.caption = f"more: add --page-token {response.next_page_token}"
    return table


def request_table(response: Any) -> Any:
    """One request, a row per fact."""
    from rich.table import Table

    found = response.request
    kind = " ".join(
        [_name(found, "kind", _KIND_PREFIX), *(f"({n})" for n in found.proposed_fields)]
    )
    rows = [
        ("request", found.request_id),
        ("subject", found.subject_id),
        ("kind", kind),
        ("state", _name(found, "state", _STATE_PREFIX)),
        ("jurisdiction", f"{found.jurisdiction} ({found.regulation})"),
        ("deadline", _due(found, datetime.now(UTC))),
        ("decided by", found.decided_by or "-"),
        ("reason", found.decision_reason or "-"),
    ]
    rows += [(f"proposed {name}", value) for name, value in sorted(found.proposed_values.items())]
    table = Table(show_header=False, box=None, pad_edge=False)
    for name, value in rows:
        table.add_row(name, value)
    return table


@requests_app.command("list")
def list_requests(
    state: Annotated[
        list[str] | None,
        typer.Option(help=f"Only these states ({', '.join(STATES)}); default: the open ones."),
    ] = None,
    page_size: Annotated[int, typer.Option(help="Requests per page.")] = 50,
    page_token: Annotated[str, typer.Option(help="The token a previous page ended with.")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Requests waiting for verification or a decision, the nearest deadline first."""
    response = call(
        address,
        token,
        "rights",
        "ListDataSubjectRequests",
        states=[_STATE_PREFIX + s.upper() for s in state or []],
        pageSize=page_size,
        pageToken=page_token,
    )
    print_message(response, fmt, output, table=queue_table)


@requests_app.command("show")
def show(
    request_id: str,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """One request: subject, kind, state, deadline, decision (and proposed values)."""
    response = call(
        address, token, "rights", "GetDataSubjectRequest", dataSubjectRequestId=request_id
    )
    print_message(response, fmt, output, table=request_table)


@requests_app.command("decide")
def decide(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why; the customer is shown it (no PII).")],
    approve: Annotated[
        bool, typer.Option("--approve/--reject", help="Carry the request out, or refuse it.")
    ],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Approve (erase, restrict or rectify now, then fulfilled) or reject, with a reason."""
    response = call(
        address,
        token,
        "rights",
        "DecideDataSubjectRequest",
        dataSubjectRequestId=request_id,
        decision="DATA_SUBJECT_REQUEST_DECISION_" + ("APPROVE" if approve else "REJECT"),
        reason=reason,
    )
    print_message(response, fmt, output, table=request_table)


# --- the customer's own side and the front end's code (CustomerAccessService) ---------

own_requests_app = typer.Typer(
    no_args_is_help=True,
    help="A customer's own requests (a customer token) and their verification codes.",
)
KINDS = ("rectification", "restriction", "erasure")


@own_requests_app.command("create")
def create(
    subject_id: str,
    kind: Annotated[str, typer.Option(help=f"One of {', '.join(KINDS)}.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="name=value (a rectification).")
    ] = None,
    jurisdiction: Annotated[str, typer.Option(help="e.g. EU or CN; default: the vault's.")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Ask for rectification, restriction or erasure of the customer's own data."""
    response = call(
        address,
        token,
        "customers",
        "CreateDataSubjectRequest",
        subjectId=subject_id,
        kind=_KIND_PREFIX + kind.upper(),
        proposedValues=parse_pairs(set_ or [], "--set"),
        jurisdiction=jurisdiction,
    )
    print_message(response, fmt, output, table=request_table)


@own_requests_app.command("issue-code")
def issue_code(
    request_id: str,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """A single-use code to send the customer out of band (a front-end token)."""
    response = call(
        address, token, "customers", "IssueRequestVerificationCode", dataSubjectRequestId=request_id
    )
    print_message(response, fmt, output)


@own_requests_app.command("verify")
def verify(
    request_id: str,
    code: str,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Confirm a request with the code the customer received."""
    response = call(
        address,
        token,
        "customers",
        "VerifyDataSubjectRequest",
        dataSubjectRequestId=request_id,
        code=code,
    )
    print_message(response, fmt, output, table=request_table)


@own_requests_app.command("list")
def list_own(
    subject_id: str,
    page_size: Annotated[int, typer.Option(help="Requests per page (at most 100).")] = 20,
    page_token: Annotated[str, typer.Option(help="The token a previous page ended with.")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """The customer's own requests, newest first, a page at a time."""
    response = call(
        address,
        token,
        "customers",
        "ListOwnDataSubjectRequests",
        subjectId=subject_id,
        pageSize=page_size,
        pageToken=page_token,
    )
    print_message(response, fmt, output, table=queue_table)


@own_requests_app.command("cancel")
def cancel(
    request_id: str,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    fmt: FormatOpt = Format.table,
    output: Output = None,
) -> None:
    """Withdraw a request not decided yet."""
    response = call(
        address, token, "customers", "CancelDataSubjectRequest", dataSubjectRequestId=request_id
    )
    print_message(response, fmt, output, table=request_table)
