"""How the audit CLI shows things: rich tables of entries and verification reports.

Entry text is data, never rich markup: every value is escaped before it is shown.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from audit.cli_support import describe_checkpoint
from audit.query import LoggedEntry
from audit.restore import ErasureList
from audit.verify import VerifyReport


def stdout() -> Console:
    """A console on stdout, made per use: the width comes from the terminal (or COLUMNS)."""
    return Console()


def stderr() -> Console:
    """A console on stderr, for progress, notices and errors."""
    return Console(stderr=True)


def entries_table(found: list[LoggedEntry], limit: int) -> Table:
    """Entries as `audit query` lists them."""
    table = Table(title=f"Audit entries ({_count(found, limit)})", expand=True)
    _columns(table, "Leaf", "Time (UTC)", "Actor", "Action", "Subjects", "Fields", "Purpose")
    _columns(table, "Decision", "Rule or reason", "Result")
    for logged in found[:limit]:
        entry = logged.entry
        table.add_row(
            *_cells(
                "pending" if logged.leaf_index is None else str(logged.leaf_index),
                _time(entry.time),
                entry.actor,
                entry.action,
                ", ".join(entry.subject_ids),
                ", ".join(entry.field_names),
                entry.purpose,
            ),
            _decision(entry.decision),
            *_cells(entry.reason, entry.result_code),
        )
    return table


def history_table(subject_id: str, found: list[LoggedEntry], limit: int) -> Table:
    """One subject's access history: who, when, which fields, why, and the decision."""
    title = f"Access history of {escape(subject_id)} ({_count(found, limit)})"
    table = Table(title=title, expand=True)
    _columns(table, "Time (UTC)", "Who", "Action", "Fields", "Purpose", "Justification")
    _columns(table, "Decision", "Rule or reason", "Request")
    for logged in found[:limit]:
        entry = logged.entry
        who = entry.actor + (f" ({', '.join(entry.actor_roles)})" if entry.actor_roles else "")
        table.add_row(
            *_cells(
                _time(entry.time),
                who,
                entry.action,
                ", ".join(entry.field_names),
                entry.purpose,
                entry.justification,
            ),
            _decision(entry.decision),
            *_cells(entry.reason, entry.request_id),
        )
    return table


def print_report(console: Console, report: VerifyReport) -> None:
    """The outcome of `audit verify`: what was proven, or the first bad leaf."""
    if report.ok:
        unchecked = "" if report.index_checked else " (query columns and links not checked)"
        console.print(
            f"[green]OK[/green]: {report.entries_checked} entries verified against "
            f"{report.checkpoints_checked} signed checkpoints{unchecked}; "
            f"{report.pending} pending",
            soft_wrap=True,
        )
        if report.checkpoint is not None:
            line = describe_checkpoint(report.checkpoint.format())
            console.print(line, markup=False, soft_wrap=True)
        _print_extras(console, report)
        return
    where = ""
    if report.first_bad_position is not None:
        where = f" at leaf {report.first_bad_position}"
        if report.bad_range_end not in (None, report.first_bad_position + 1):
            span = f"{report.first_bad_position}, {report.bad_range_end}"
            where += f" (the first bad leaf is in \\[{span}))"
    console.print(f"[red]FAILED[/red]{where}: {escape(report.problem or '')}", soft_wrap=True)
    console.print(
        f"leaves \\[0, {report.verified_size}) are proven by a signed root", soft_wrap=True
    )
    _print_extras(console, report)


def _print_extras(console: Console, report: VerifyReport) -> None:
    """What the MAC and witness checks covered, so a partial check never passes for full."""
    if not report.mac_checked:
        console.print(
            "[yellow]entry MACs NOT checked[/yellow] (no --mac-key): an entry invented by "
            "someone with database access would not be caught below a witnessed checkpoint",
            soft_wrap=True,
        )
    elif report.mac_legacy:
        console.print(
            f"entry MACs checked; the first {report.mac_legacy} entries predate MACs "
            "and carry none",
            soft_wrap=True,
        )
    else:
        console.print("entry MACs checked: every entry carries a valid MAC", soft_wrap=True)
    if not report.witnessed and not report.latest_cosigned_by:
        if report.ok:
            console.print(
                "[yellow]witness cosignatures NOT checked[/yellow] (no --witness-key)",
                soft_wrap=True,
            )
        return
    for name, size in sorted(report.witnessed.items()):
        latest = " (the newest checkpoint)" if name in report.latest_cosigned_by else ""
        console.print(f"witness {escape(name)} cosigned up to size {size}{latest}", soft_wrap=True)


def erasures_table(found: ErasureList) -> Table:
    """The erasures to re-apply after a restore, each proven by a witnessed checkpoint."""
    table = Table(
        title=f"Erasures proven by the witnessed checkpoint at size {found.witnessed_size}",
        caption=f"{found.unwitnessed} journal entries beyond it (not witnessed) left out",
    )
    _columns(table, "Leaf", "Time", "Action", "Tenant", "Subject")
    for e in found.erasures:
        table.add_row(*_cells(str(e.leaf_index), _time(e.time), e.action, e.tenant, e.subject_id))
    return table


def _count(found: list[LoggedEntry], limit: int) -> str:
    return f"first {limit}, more exist" if len(found) > limit else str(len(found))


def _columns(table: Table, *names: str) -> None:
    for name in names:
        # Fold, never truncate: ids are copied from here into requests and reports.
        table.add_column(name, overflow="fold")


def _cells(*values: str) -> list[str]:
    return [escape(value) for value in values]


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _decision(decision: str) -> str:
    return "[green]allow[/green]" if decision == "allow" else "[red]deny[/red]"
