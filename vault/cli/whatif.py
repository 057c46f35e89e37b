"""`customer-vault policy simulate` and `customer-vault audit explain`: what a draft
policy would change, and why a past entry was decided as it was (`vault.whatif`).

`simulate` asks a running vault (PolicyAdminService.SimulatePolicy: the recorded log
over a window and the decision matrix) or, with `--base DIR`, compares two policy
folders offline (the matrix only: no vault, no token; what a CI job runs). Both end
with exit code 3 when a `--fail-on` check fails.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vault.cli.options import parse_ttl
from vault.cli.remote import Address, Token, call

console = Console()
err = Console(stderr=True)

FAILED_GATE = 3
"""Exit code when the draft fails a `--fail-on` check."""
_POLICY_FILES = ("vault_model.conf", "vault_policy.csv", "purposes.yaml", "views.yaml")
_KINDS = {
    "CHANGE_KIND_ALLOW_TO_DENY": "allow->deny",
    "CHANGE_KIND_DENY_TO_ALLOW": "deny->allow",
    "CHANGE_KIND_WIDENED": "widened",
    "CHANGE_KIND_NARROWED": "narrowed",
    "CHANGE_KIND_CHANGED": "changed",
}


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", help="table or json.")]


def simulate_command(
    draft: Annotated[
        Path,
        typer.Option(
            "--draft", help="Folder of the draft policy files (those absent: the base's)."
        ),
    ],
    since: Annotated[
        str, typer.Option("--since", help="Replay entries of this window (30d) or since a time.")
    ] = "30d",
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="Comma-separated checks: widen-restricted, widen-confidential, widen-any, "
            "narrow-any, any-change; exit 3 when one fails.",
        ),
    ] = "",
    base: Annotated[
        Path | None,
        typer.Option("--base", help="Offline: compare with this policy folder (matrix only)."),
    ] = None,
    matrix_only: Annotated[
        bool, typer.Option("--matrix-only", help="Skip the replay of the log.")
    ] = False,
    output: FormatOpt = Format.table,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """What a draft policy would change: recorded decisions that would flip, fields shown
    more or less, and the decision matrix before and after."""
    checks = [name.strip() for name in fail_on.split(",") if name.strip()]
    files = _draft_files(draft)
    if base is not None:
        reply = _offline(base, files, checks)
    else:
        start = _start(since)
        reply = call(
            address,
            token,
            "admin",
            "SimulatePolicy",
            draftFiles=[{"name": n, "content": t} for n, t in files.items()],
            startTime=start.isoformat().replace("+00:00", "Z"),
            failOn=checks,
            matrixOnly=matrix_only,
        )
    if output is Format.json:
        from vault.api.messages import to_json

        console.print_json(to_json(reply))
    else:
        _print_report(reply)
    if reply.failed_checks:
        err.print(f"[red]failed:[/red] {', '.join(reply.failed_checks)}")
        raise typer.Exit(FAILED_GATE)


def _draft_files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        raise typer.BadParameter("--draft must be a folder of policy files")
    files = {
        name: (folder / name).read_text(encoding="utf-8")
        for name in _POLICY_FILES
        if (folder / name).is_file()
    }
    if not files:
        raise typer.BadParameter(f"--draft holds none of {', '.join(_POLICY_FILES)}")
    return files


_DURATION = re.compile(r"^\d+[smhd]$")


def _start(since: str) -> datetime:
    if _DURATION.fullmatch(since):
        return datetime.now(UTC) - parse_ttl(since)
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise typer.BadParameter("--since: a duration (30d) or an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _offline(base: Path, files: dict[str, str], checks: list[str]) -> Any:
    from vault.api.whatif_messages import simulation_message
    from vault.errors import VaultError
    from vault.fields.dictionary import DataDictionary
    from vault.policy import PolicyEngine
    from vault.whatif.simulate import draft_engine, side, simulate
    from vault.whatif.versions import descriptors, field_classes

    try:
        engine = PolicyEngine.from_dir(base)
        fields = descriptors(field_classes(DataDictionary.from_file(base / "data_dictionary.yaml")))
        draft = draft_engine(files, engine.texts)
        result = simulate(
            side(engine, fields),
            side(draft, fields),
            entries=None,
            version_side=lambda _: None,
            fail_on=checks,
        )
    except VaultError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}")
        for violation in getattr(exc, "violations", ()):
            err.print(f"  {escape(violation.field)}: {escape(violation.description)}")
        raise typer.Exit(2) from None
    return simulation_message(result)


def _kind(message: Any) -> str:
    from vault.api.messages import enum_name

    return _KINDS.get(enum_name(message, "kind"), "?")


def _print_report(reply: Any) -> None:
    console.print(f"policy in force: {reply.base_version}   draft: {reply.draft_version}")
    if reply.HasField("replay"):
        r = reply.replay
        console.print(
            f"replayed {r.entries_replayed} of {r.entries_scanned} entries "
            f"({r.distinct_questions} distinct questions); {r.entries_changed} change; "
            f"{r.entries_without_question} recorded no policy question, "
            f"{r.entries_unknown_version} cite a version this vault never kept"
        )
        table = _table(
            "Recorded decisions",
            ("change", "roles", "action", "purpose", "class", "entries", "caused by"),
            "examples (leaf: subjects)",
        )
        for g in reply.groups:
            fields = f"\nfields: {', '.join(g.fields)}" if g.fields else ""
            examples = "\n".join(
                f"{e.leaf_index}: {', '.join(e.subject_ids) or '-'}" for e in g.examples
            )
            table.add_row(
                _kind(g), escape(g.roles), g.action, g.purpose or "-", g.sensitivity,
                str(g.entry_count), escape("\n".join(g.causes)) + fields, examples,
            )  # fmt: skip
        console.print(table if reply.groups else "no recorded decision changes")
    console.print(f"decision matrix: {reply.matrix_cells} cells compared")
    if not reply.matrix_changes:
        console.print("no matrix cell changes")
        return
    matrix = _table(
        "Decision matrix (roles x actions x purposes x resources)",
        ("change", "role", "action", "purpose", "resource", "before"),
        "after",
    )
    for c in reply.matrix_changes:
        matrix.add_row(_kind(c), escape(c.role), c.action, c.purpose or "-", c.resource,
                       escape(c.before), escape(c.after))  # fmt: skip
    console.print(matrix)


def _table(title: str, headers: tuple[str, ...], last: str) -> Table:
    """A table that folds long cells instead of cutting them (rules and ids must read
    whole at 80 columns)."""
    table = Table(title=title, show_lines=True)
    for header in (*headers, last):
        table.add_column(header, overflow="fold")
    return table


def explain_command(
    leaf: Annotated[int, typer.Argument(help="The entry's leaf index.")],
    output: FormatOpt = Format.table,
    address: Address = "127.0.0.1:50051",
    token: Token = "",
) -> None:
    """Why the entry at LEAF was decided as it was: the policy version and consent
    ledger as of its moment, the rule that decided, the consent event relied on, and
    whether today's policy and ledger would decide the same."""
    reply = call(address, token, "audit", "ExplainEntry", index=leaf)
    if output is Format.json:
        from vault.api.messages import to_json

        console.print_json(to_json(reply))
        return
    e = reply.entry
    console.print(f"entry {e.index}: {e.action} by {escape(e.actor)} ({', '.join(e.roles)})")
    console.print(f"recorded: {e.decision}  {escape(e.reason)}")
    if reply.policy_action:
        console.print(f"question: {reply.policy_action} on {reply.policy_resource} "
                      f"for purpose {e.purpose or '-'}")  # fmt: skip
    for label, field in (("then", "then"), ("now ", "now")):
        if reply.HasField(field):
            d = getattr(reply, field)
            extra = f"; {d.subject_rule}" if d.subject_rule else ""
            console.print(f"{label}: {d.outcome} by policy {d.policy_version}: "
                          f"{escape(d.rule)}{extra}")  # fmt: skip
    if reply.HasField("consent_event"):
        c = reply.consent_event
        moment = c.record_time.ToDatetime(tzinfo=UTC).isoformat()
        console.print(f"consent relied on: event {c.event_id}, {c.action} {c.purpose} at {moment}")
    console.print(f"agrees with the record: {'yes' if reply.agrees else 'NO'}")
    console.print(f"decided the same today: {'yes' if reply.same_now else 'no'}")
    console.print(f"verdict: {reply.verdict}")
    if reply.note:
        console.print(f"note: {escape(reply.note)}")


def mount(policy_app: typer.Typer, audit_app: typer.Typer) -> None:
    """Add `policy simulate` and `audit explain` to their groups."""
    policy_app.command("simulate")(simulate_command)
    audit_app.command("explain")(explain_command)
