"""`customer-vault events list`: read the event feed of a running vault (EventService),
as the organization's front end or mailing service would, by cursor."""

from __future__ import annotations

from typing import Annotated, Any, TextIO

import typer
from rich.console import Console

from vault.cli.output import Format, FormatOpt, Output, open_output
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call

events_app = typer.Typer(
    no_args_is_help=True,
    help="The event feed: consent changes, dormancy notices, request states, by cursor.",
)
err = Console(stderr=True)

KINDS = (
    "consent_granted",
    "consent_withdrawn",
    "consent_opted_out",
    "dormancy_notice_created",
    "subject_anonymized",
    "request_state_changed",
)
"""The event kinds as the option names them (`EventKind` without its prefix)."""


@events_app.callback()
def events_group() -> None:
    """The event feed of a running vault (permission events:read, e.g. role frontend)."""


@events_app.command("list")
def list_events(
    after: Annotated[
        str,
        typer.Option(
            "--after", help="A cursor printed by an earlier call (empty: the oldest retained)."
        ),
    ] = "",
    kinds: Annotated[
        list[str] | None,
        typer.Option("--kind", help=f"Only this kind (repeatable): {', '.join(KINDS)}."),
    ] = None,
    page_size: Annotated[int, typer.Option(help="Events per call, 1 to 1000.")] = 100,
    fmt: FormatOpt = Format.table,
    json_lines: Annotated[
        bool, typer.Option("--jsonl", help="One JSON object per event (for scripts).")
    ] = False,
    output: Output = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
) -> None:
    """One page of events after the cursor; the cursor to continue from is printed last
    (to standard error), so a script can store it and resume after a restart.
    `--format json`: the whole response; `--jsonl`: one JSON object per event."""
    from customer_vault_client.messages import to_json, to_json_line

    wanted = [k.lower() for k in kinds or []]
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise typer.BadParameter(f"unknown kind {unknown[0]!r}; one of {', '.join(KINDS)}")
    response: Any = call(
        address,
        token,
        "events",
        "ListEvents",
        page_size=page_size,
        page_token=after,
        kinds=[f"EVENT_KIND_{k.upper()}" for k in wanted],
    )
    with open_output(output) as out:
        if fmt is Format.json:
            out.write(to_json(response) + "\n")
            return
        if json_lines:
            out.writelines(to_json_line(event) + "\n" for event in response.events)
        else:
            _show(response, out)
    err.print(f"next cursor: {response.next_page_token}")


def _show(response: Any, out: TextIO) -> None:
    """Two lines an event, within 80 columns: number, time and kind; then the subject
    and the facts."""
    from customer_vault_client.messages import enum_name, time_text

    for event in response.events:
        kind = enum_name(event, "kind").removeprefix("EVENT_KIND_").lower()
        out.write(f"{event.sequence:>6}  {time_text(event, 'occur_time')[:19]}  {kind}\n")
        facts = " ".join(f"{k}={v}" for k, v in sorted(event.facts.items()))
        out.write(f"        {event.subject_id}  {facts}".rstrip() + "\n")
    err.print(f"{len(response.events)} events")
