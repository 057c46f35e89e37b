"""`customer-vault audit ...`: the audit log through the vault's AuditService.

`query`, `history`, `export`, `checkpoint`, `entry`, the proofs and `verify-log` call the
running vault with a bearer token (`--token` or `CUSTOMER_VAULT_TOKEN`), so they are
authorized by the policy (audit:read) and audited like any other read; they need no
database credentials. Only `verify` keeps an offline mode: it needs nothing but a copy
of the database and the log's public key (`audit.cli`), so it works when the vault does
not, and trusts nothing it says.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vault.cli import audit_proofs, whatif
from vault.cli.output import Format as OutputFormat
from vault.cli.output import FormatOpt as Format
from vault.cli.output import Output, render, write
from vault.cli.remote import DEFAULT_ADDRESS, Address, Token, fail, require_token

audit_app = typer.Typer(
    name="audit",
    no_args_is_help=True,
    add_completion=False,
    help="The compliance officer's audit tools: query, history, export and checkpoint "
    "through the vault (token, audited); verify offline.",
)

DEFAULT_PUBLIC_KEY = Path(".vault-data/keys/audit_signing.pub.pem")


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    html = "html"


class Decision(StrEnum):
    allow = "allow"
    deny = "deny"


Subject = Annotated[str, typer.Option("--subject", help="Only entries about this subject.")]
Actor = Annotated[str, typer.Option("--actor", help="Only this actor's entries.")]
Role = Annotated[str, typer.Option("--role", help="Only entries whose actor held this role.")]
ActionOpt = Annotated[str, typer.Option("--action", help="Only this RPC, e.g. GetSubject.")]
DecisionOpt = Annotated[Decision | None, typer.Option("--decision", help="allow or deny.")]
Purpose = Annotated[str, typer.Option("--purpose", help="Only this purpose.")]
Result = Annotated[
    str, typer.Option("--result", help="Only this result code, e.g. PERMISSION_DENIED.")
]
Since = Annotated[
    str, typer.Option("--since", help="From this time on (ISO 8601; UTC if no offset).")
]
Until = Annotated[str, typer.Option("--until", help="Before this time (ISO 8601).")]
Cursor = Annotated[
    str, typer.Option("--cursor", help="Continue where a previous page ended (it prints it).")
]
NewestFirst = Annotated[
    bool, typer.Option("--newest-first/--oldest-first", help="Order of the entries.")
]
_require_token = require_token


def _time(text: str, option: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        Console(stderr=True).print(f"[red]error:[/red] {option}: not an ISO 8601 time")
        raise typer.Exit(2) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _document(logged: Any) -> dict[str, Any]:
    from vault.web.console import language

    document: dict[str, Any] = {"index": logged.index, **logged.entry.to_dict()}
    document["sentence"] = language.sentence(logged.entry)
    return document


def _show(page: Any, output_format: OutputFormat, title: str, output: Path | None) -> None:
    """A page of entries as an 80-column table (one plain sentence per entry) or JSON;
    the cursor of the next page goes to stderr (table) or into the document (json)."""
    from vault.web.console import language

    if output_format is OutputFormat.json:
        document = {
            "entries": [_document(e) for e in page.entries],
            "next_cursor": page.next_page_token,
        }
        write(json.dumps(document, indent=2, ensure_ascii=False), output)
        return
    table = Table(title=escape(title), box=None, pad_edge=False, expand=True, show_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("UTC", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("what happened", overflow="fold", ratio=1)
    for logged in page.entries:
        e = logged.entry
        table.add_row(
            "…" if logged.index is None else str(logged.index),
            e.time.strftime("%m-%d %H:%M:%S"),
            "[green]allow[/green]" if e.decision == "allow" else "[red bold]DENY[/red bold]",
            escape(language.sentence(e)),
        )
    render(table, output)
    if page.next_page_token:
        Console(stderr=True).print(
            f"more: add --cursor {page.next_page_token}", soft_wrap=True, highlight=False
        )


@audit_app.command("query")
def query_command(
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    subject: Subject = "",
    actor: Actor = "",
    role: Role = "",
    action: ActionOpt = "",
    decision: DecisionOpt = None,
    purpose: Purpose = "",
    result: Result = "",
    since: Since = "",
    until: Until = "",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Per page.")] = 20,
    cursor: Cursor = "",
    newest_first: NewestFirst = True,
    output_format: Format = OutputFormat.table,
    output: Output = None,
) -> None:
    """Entries matching every filter given, newest first, one page at a time."""
    from vault.api.client import VaultClientError
    from vault.api.console_client import ConsoleClient, EntryFilters

    filters = EntryFilters(
        subject_id=subject,
        actor=actor,
        role=role,
        action=action,
        purpose=purpose,
        decision="" if decision is None else decision.value,
        result_code=result,
        since=_time(since, "--since"),
        until=_time(until, "--until"),
    )
    _require_token(token)
    with ConsoleClient(address, token) as client:
        try:
            page = client.query(
                filters, newest_first=newest_first, page_size=limit, page_token=cursor
            )
        except VaultClientError as exc:
            raise fail(exc) from None
    _show(page, output_format, f"Audit entries ({len(page.entries)})", output)


@audit_app.command("history")
def history_command(
    subject_id: Annotated[str, typer.Argument(help="The subject's id.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Per page.")] = 50,
    cursor: Cursor = "",
    newest_first: NewestFirst = True,
    output_format: Format = OutputFormat.table,
    output: Output = None,
) -> None:
    """Who saw or changed this subject's data, when and why (denied attempts too)."""
    from vault.api.client import VaultClientError
    from vault.api.console_client import ConsoleClient

    _require_token(token)
    with ConsoleClient(address, token) as client:
        try:
            page = client.history(
                subject_id, newest_first=newest_first, page_size=limit, page_token=cursor
            )
        except VaultClientError as exc:
            raise fail(exc) from None
    _show(page, output_format, f"Access history of {subject_id} ({len(page.entries)})", output)


@audit_app.command("export")
def export_command(
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    output_format: Annotated[
        ExportFormat, typer.Option("--format", help="jsonl, csv, or a self-contained html report.")
    ] = ExportFormat.jsonl,
    output: Output = None,
    subject: Subject = "",
    actor: Actor = "",
    role: Role = "",
    action: ActionOpt = "",
    decision: DecisionOpt = None,
    purpose: Purpose = "",
    result: Result = "",
    since: Since = "",
    until: Until = "",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")] = None,
) -> None:
    """Export entries matching every filter, oldest first.

    The `id` column holds the leaf index (-1 for an entry not yet integrated).
    """
    import audit
    from vault.api.client import VaultClientError
    from vault.api.console_client import ConsoleClient, EntryFilters

    filters = EntryFilters(
        subject_id=subject,
        actor=actor,
        role=role,
        action=action,
        purpose=purpose,
        decision="" if decision is None else decision.value,
        result_code=result,
        since=_time(since, "--since"),
        until=_time(until, "--until"),
    )
    _require_token(token)
    found: list[audit.LoggedEntry] = []
    with ConsoleClient(address, token) as client:
        try:
            cursor = ""
            while limit is None or len(found) < limit:
                page = client.query(filters, newest_first=False, page_size=1000, page_token=cursor)
                found += [
                    audit.LoggedEntry(-1 if e.index is None else e.index, e.index, e.entry, e.mac)
                    for e in page.entries
                ]
                if page.next_page_token is None:
                    break
                cursor = page.next_page_token
            checkpoint = _checkpoint_line(client)
        except VaultClientError as exc:
            raise fail(exc) from None
    selected = found if limit is None else found[:limit]
    out = sys.stdout if output is None else output.open("w", encoding="utf-8", newline="")
    try:
        if output_format is ExportFormat.jsonl:
            count = audit.write_jsonl(selected, out)
        elif output_format is ExportFormat.csv:
            count = audit.write_csv(selected, out)
        else:
            summary = {name: str(value) for name, value in vars(filters).items() if value}
            summary["Log checkpoint"] = checkpoint
            count = audit.write_html(
                selected,
                out,
                title=f"Access history of subject {subject}" if subject else "Audit log extract",
                generated_at=datetime.now(UTC),
                summary=summary,
            )
    finally:
        if output is not None:
            out.close()
    if output is not None:
        Console(stderr=True).print(f"wrote {count} entries to {escape(str(output))}")


def _checkpoint_line(client: Any) -> str:
    from vault.api.client import VaultClientError

    try:
        head = client.latest_checkpoint()
    except VaultClientError as exc:
        if exc.code != "NOT_FOUND":
            raise
        return "none yet"
    return f"{head.origin} at {head.tree_size} entries, root {head.root_hash.hex()}"


@audit_app.command("checkpoint")
def checkpoint_command(
    address: Address = DEFAULT_ADDRESS,
    token: Token = "",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write it to this file, or into this directory named by tree size.",
        ),
    ] = None,
    output_format: Format = OutputFormat.table,
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The log's Ed25519 public key (PEM).")
    ] = DEFAULT_PUBLIC_KEY,
) -> None:
    """Print the latest signed checkpoint (or save it outside the database).

    Its signature is checked here with the log's public key before it is shown.
    """
    import audit
    from vault.api.client import VaultClientError
    from vault.api.console_client import ConsoleClient

    err = Console(stderr=True)
    _require_token(token)
    with ConsoleClient(address, token) as client:
        try:
            head = client.latest_checkpoint()
        except VaultClientError as exc:
            raise fail(exc) from None
    try:
        verifier = audit.CheckpointVerifier.from_pem(public_key.read_bytes())
        verifier.verify(head.note)
    except OSError:
        err.print(f"[red]error:[/red] cannot read {escape(str(public_key))}")
        raise typer.Exit(2) from None
    except audit.CheckpointError:
        err.print("[red]error:[/red] the checkpoint does not verify with this key")
        raise typer.Exit(1) from None
    if output_format is OutputFormat.json:
        document = {
            "origin": head.origin,
            "tree_size": head.tree_size,
            "root_hash": head.root_hash.hex(),
            "note": head.note,
            "verified_with": str(public_key),
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif output is None:
        sys.stdout.write(head.note)
    if output is None:
        return
    path = output / f"checkpoint-{head.tree_size:020d}.txt" if output.is_dir() else output
    path.write_text(head.note, encoding="utf-8")
    err.print(f"wrote {escape(str(path))}")


def _mount_offline_commands() -> None:
    from audit.cli import erasures_command, verify_command

    audit_app.command(
        "verify",
        help="Offline: check every entry, root, MAC, checkpoint signature and witness "
        "cosignature in a copy of the database with the log's keys; exit 1 naming the "
        "first bad leaf.",
    )(verify_command)
    audit_app.command(
        "erasures",
        help="Offline, after a restore: the erasures to re-apply, taken only from journal "
        "entries that verify against a witness-cosigned checkpoint.",
    )(erasures_command)


_mount_offline_commands()
for _name, _command in audit_proofs.COMMANDS.items():
    audit_app.command(_name)(_command)
for _name, _command in audit_proofs.COMMANDS.items():
    audit_app.command(_name)(_command)


# The what-if commands live in whatif.py (vault.whatif); they belong to this group.
audit_app.command("explain")(whatif.explain_command)
