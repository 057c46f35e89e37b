"""`customer-vault rights requests ...`: the DPO's queue of customers' requests.

Through the RightsService with the caller's token, like the other client commands:
`list` (the nearest deadline first), `show` (one request; a rectification's proposed
values for a DPO), `decide` (approve or reject with a reason the customer sees).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vault.api.messages import enum_name, time_text, to_json, to_json_line
from vault.cli.remote import Address, AsJson, Token, call

requests_app = typer.Typer(
    no_args_is_help=True, help="Customers' rectification, restriction and erasure requests."
)
console = Console()

STATES = (
    "awaiting_verification",
    "pending_decision",
    "fulfilled",
    "rejected",
    "cancelled",
    "expired",
)


def _state(message: Any) -> str:
    return enum_name(message, "state").removeprefix("DATA_SUBJECT_REQUEST_STATE_").lower()


def _kind(message: Any) -> str:
    return enum_name(message, "kind").removeprefix("DATA_SUBJECT_REQUEST_KIND_").lower()


def _due(message: Any, now: datetime) -> str:
    """The deadline's day; for an open request, the days left or OVERDUE."""
    deadline = message.deadline.ToDatetime(tzinfo=UTC)
    day = f"{deadline:%Y-%m-%d}"
    if _state(message) not in STATES[:2]:
        return day
    if deadline < now:
        return f"{day} OVERDUE"
    return f"{day} ({(deadline - now).days}d)"


@requests_app.command("list")
def list_requests(
    state: Annotated[
        list[str] | None,
        typer.Option(help=f"Only these states ({', '.join(STATES)}); default: the open ones."),
    ] = None,
    page_size: Annotated[int, typer.Option(help="Requests per page.")] = 50,
    page_token: Annotated[str, typer.Option(help="`next page` token of a previous list.")] = "",
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Requests waiting for verification or a decision, the nearest deadline first."""
    states = [f"DATA_SUBJECT_REQUEST_STATE_{s.upper()}" for s in state or []]
    response = call(
        address,
        token,
        "rights",
        "ListDataSubjectRequests",
        states=states,
        page_size=page_size,
        page_token=page_token,
    )
    if as_json:
        for item in response.requests:
            print(to_json_line(item))
        if response.next_page_token:
            print(f'{{"next_page_token":"{response.next_page_token}"}}')
        return
    now = datetime.now(UTC)
    table = Table("request", "kind", "state", "due", box=None, pad_edge=False)
    for item in response.requests:
        table.add_row(item.request_id, _kind(item), _state(item), _due(item, now))
    console.print(table)
    if response.next_page_token:
        console.print(f"next page: --page-token {response.next_page_token}")


@requests_app.command("show")
def show(
    request_id: str,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """One request: subject, kind, state, deadline, decision (and proposed values)."""
    found = call(address, token, "rights", "GetDataSubjectRequest", request_id=request_id).request
    if as_json:
        print(to_json(found))
        return
    _print(found)


def _print(found: Any) -> None:
    rows = [
        ("request", found.request_id),
        ("subject", found.subject_id),
        (
            "kind",
            _kind(found)
            + (f" ({', '.join(found.proposed_fields)})" if found.proposed_fields else ""),
        ),
        ("state", _state(found)),
        ("jurisdiction", f"{found.jurisdiction} ({found.regulation})"),
        ("received", time_text(found, "create_time")),
        ("deadline", _due(found, datetime.now(UTC))),
        ("verified", time_text(found, "verify_time") or "-"),
        ("decided", time_text(found, "decide_time") or "-"),
        ("decided by", found.decided_by or "-"),
        ("reason", found.decision_reason or "-"),
    ]
    rows += [(f"proposed {name}", value) for name, value in sorted(found.proposed_values.items())]
    table = Table(show_header=False, box=None, pad_edge=False)
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


@requests_app.command("decide")
def decide(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why; the customer is shown it (no PII).")],
    approve: Annotated[
        bool, typer.Option("--approve/--reject", help="Carry the request out, or refuse it.")
    ],
    address: Address = "127.0.0.1:50051",
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Approve (erase, restrict or rectify now, then fulfilled) or reject, with a reason."""
    decision = "APPROVE" if approve else "REJECT"
    decided = call(
        address,
        token,
        "rights",
        "DecideDataSubjectRequest",
        request_id=request_id,
        decision=f"DATA_SUBJECT_REQUEST_DECISION_{decision}",
        reason=reason,
    ).request
    if as_json:
        print(to_json(decided))
        return
    console.print(f"{decided.request_id} {_state(decided)}")
