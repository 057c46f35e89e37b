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
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table

from vault.cli.options import parse_ttl
from vault.cli.output import Format, FormatOpt, Output, print_message
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, call

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
    fmt: FormatOpt = Format.table,
    output: Output = None,
    address: Address = DEFAULT_ADDRESS,
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
    print_message(reply, fmt, output, table=_report)
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
    from customer_vault_client.messages import enum_name

    return _KINDS.get(enum_name(message, "kind"), "?")


def _report(reply: Any) -> Group:
    parts: list[Any] = []
    parts.append(f"policy in force: {reply.base_version}   draft: {reply.draft_version}")
    if reply.HasField("replay"):
        r = reply.replay
        parts.append(
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
        parts.append(table if reply.groups else "no recorded decision changes")
    parts.append(f"decision matrix: {reply.matrix_cells} cells compared")
    if not reply.matrix_changes:
        parts.append("no matrix cell changes")
        return Group(*parts)
    matrix = _table(
        "Decision matrix (roles x actions x purposes x resources)",
        ("change", "role", "action", "purpose", "resource", "before"),
        "after",
    )
    for c in reply.matrix_changes:
        matrix.add_row(_kind(c), escape(c.role), c.action, c.purpose or "-", c.resource,
                       escape(c.before), escape(c.after))  # fmt: skip
    parts.append(matrix)
    return Group(*parts)


def _table(title: str, headers: tuple[str, ...], last: str) -> Table:
    """A table that folds long cells instead of cutting them (rules and ids must read
    whole at 80 columns)."""
    table = Table(title=title, show_lines=True)
    for header in (*headers, last):
        table.add_column(header, overflow="fold")
    return table


def explain_command(
    leaf: Annotated[int, typer.Argument(help="The entry's leaf index.")],
    fmt: FormatOpt = Format.table,
    output: Output = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
) -> None:
    """Why the entry at LEAF was decided as it was: the policy version and consent
    ledger as of its moment, the rule that decided, the consent event relied on, and
    whether today's policy and ledger would decide the same."""
    reply = call(address, token, "audit", "ExplainEntry", index=leaf)
    print_message(reply, fmt, output, table=_explanation)


def _explanation(reply: Any) -> str:
    lines: list[str] = []
    e = reply.entry
    lines.append(f"entry {e.index}: {e.action} by {escape(e.actor)} ({', '.join(e.roles)})")
    lines.append(f"recorded: {e.decision}  {escape(e.reason)}")
    if reply.policy_action:
        lines.append(f"question: {reply.policy_action} on {reply.policy_resource} "
                      f"for purpose {e.purpose or '-'}")  # fmt: skip
    for label, field in (("then", "then"), ("now ", "now")):
        if reply.HasField(field):
            d = getattr(reply, field)
            extra = f"; {d.subject_rule}" if d.subject_rule else ""
            lines.append(f"{label}: {d.outcome} by policy {d.policy_version}: "
                          f"{escape(d.rule)}{extra}")  # fmt: skip
    if reply.HasField("consent_event"):
        c = reply.consent_event
        moment = c.record_time.ToDatetime(tzinfo=UTC).isoformat()
        lines.append(f"consent relied on: event {c.event_id}, {c.action} {c.purpose} at {moment}")
    lines.append(f"agrees with the record: {'yes' if reply.agrees else 'NO'}")
    lines.append(f"decided the same today: {'yes' if reply.same_now else 'no'}")
    lines.append(f"verdict: {reply.verdict}")
    if reply.note:
        lines.append(f"note: {escape(reply.note)}")
    return "\n".join(lines)


def versions_command(
    page_size: Annotated[int, typer.Option(help="At most this many (0: 100).")] = 0,
    fmt: FormatOpt = Format.table,
    output: Output = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
) -> None:
    """The policy versions a running vault has served, most recent first (a kept
    version can be the draft of `simulate`)."""
    reply = call(address, token, "admin", "ListPolicyVersions", pageSize=page_size)
    print_message(reply, fmt, output, table=_versions)


def _versions(reply: Any) -> Table:
    table = Table("version", "first served", "last served", "", title="Policy versions")
    for v in reply.policy_versions:
        first = v.first_serve_time.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")
        last = v.last_serve_time.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")
        table.add_row(v.version, first, last, "in force" if v.in_force else "")
    return table
