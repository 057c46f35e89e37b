"""The compliance officer's audit tools: query, history, verify, export, checkpoint.

Imports nothing from `vault`. The vault's CLI mounts only `verify` from here, as the one
offline command of `customer-vault audit` (its query, history, export and checkpoint go
through the vault's AuditService with a token: `vault/cli_audit.py`); this app's other
commands serve tooling that has the audit package and a copy of the database only.
Every command reads the database at `--database-url` (or `VAULT_DATABASE_URL`; by
default the embedded SQLite file `.vault-data/vault.db`). Exit codes: 0 success, 1 the
log failed verification or a checkpoint did not verify, 2 bad usage or set-up.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine

from audit import cli_support as support
from audit.checkpoint import Checkpoint, CheckpointVerifier
from audit.cli_tables import (
    entries_table,
    erasures_table,
    history_table,
    print_report,
    stderr,
    stdout,
)
from audit.cosignature import CosignatureVerifier
from audit.cpus import usable_cpus
from audit.errors import AuditError, CheckpointError
from audit.export import write_csv, write_html, write_jsonl
from audit.last_signed import LastSignedFile
from audit.mac import EntryMac
from audit.proofs import cosigned_checkpoint, export_checkpoint
from audit.query import iter_query
from audit.restore import JournalError, witnessed_erasures
from audit.verify import verify_log
from audit.witness.client import WitnessClient

app = typer.Typer(
    name="audit", no_args_is_help=True, add_completion=False, help=__doc__.split("\n")[0]
)


DEFAULT_PUBLIC_KEY = Path(".vault-data/keys/audit_signing.pub.pem")


class Decision(StrEnum):
    """An access decision, as recorded."""

    allow = "allow"
    deny = "deny"


class Format(StrEnum):
    """Export formats."""

    jsonl = "jsonl"
    csv = "csv"
    html = "html"


DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="VAULT_DATABASE_URL",
        show_envvar=True,
        help="SQLAlchemy URL of the vault's database [default: sqlite .vault-data/vault.db].",
    ),
]
PublicKey = Annotated[
    Path, typer.Option("--public-key", help="The log's Ed25519 public key (PEM).")
]
Subject = Annotated[str | None, typer.Option("--subject", help="Only entries about this subject.")]
Actor = Annotated[str | None, typer.Option("--actor", help="Only this actor's entries.")]
Action = Annotated[
    str | None,
    typer.Option(
        "--action",
        help=(
            "Only this action: an RPC name (GetSubject, EraseSubjectData, ...) or a"
            " retention job step (NotifySubject, AnonymizeSubject, CancelNotice);"
            " the catalogue is in docs/architecture.md, 'Audit actions'."
        ),
    ),
]
DecisionOpt = Annotated[Decision | None, typer.Option("--decision", help="allow or deny.")]
Purpose = Annotated[str | None, typer.Option("--purpose", help="Only this purpose.")]
Tenant = Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")]
Since = Annotated[
    str | None, typer.Option("--since", help="From this time on (ISO 8601; UTC if no offset).")
]
Until = Annotated[str | None, typer.Option("--until", help="Before this time (ISO 8601).")]


@app.command("query")
def query_command(
    subject: Subject = None,
    actor: Actor = None,
    action: Action = None,
    decision: DecisionOpt = None,
    purpose: Purpose = None,
    tenant: Tenant = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
    database_url: DatabaseUrl = None,
) -> None:
    """List entries matching every filter given, oldest first."""
    given = _filters(subject, actor, action, decision, purpose, tenant, since, until)
    with _engine(database_url) as engine:
        found = support.take(iter_query(engine, **given), limit + 1)
    stdout().print(entries_table(found, limit))


@app.command("history")
def history_command(
    subject_id: Annotated[str, typer.Argument(help="The subject's id.")],
    tenant: Tenant = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 1000,
    database_url: DatabaseUrl = None,
) -> None:
    """Who saw or changed this subject's data, when, and why (denied attempts too)."""
    given = _filters(subject_id, None, None, None, None, tenant, since, until)
    with _engine(database_url) as engine:
        found = support.take(iter_query(engine, **given), limit + 1)
    stdout().print(history_table(subject_id, found, limit))


@app.command("verify")
def verify_command(
    public_key: PublicKey = DEFAULT_PUBLIC_KEY,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint kept outside the database (repeatable): the log must "
            "contain it and be consistent with it.",
        ),
    ] = None,
    origin: Annotated[
        str | None, typer.Option("--origin", help="Refuse checkpoints of another log.")
    ] = None,
    index_check: Annotated[
        bool,
        typer.Option(
            "--index-check/--no-index-check",
            help="Also check the query columns and subject links against the entries.",
        ),
    ] = True,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes reading and checking the leaves, a chunk at a time "
            "(default: the CPUs this process may use).",
        ),
    ] = None,
    mac_key: Annotated[
        Path | None,
        typer.Option("--mac-key", help="The entry MAC key file: check every entry's MAC."),
    ] = None,
    witness_key: Annotated[
        list[str] | None,
        typer.Option(
            "--witness-key",
            help="A witness's verifier key (repeatable): its cosignatures must verify and "
            "cover the newest checkpoint.",
        ),
    ] = None,
    witness_url: Annotated[
        list[str] | None,
        typer.Option(
            "--witness-url",
            help="Ask this witness for the latest checkpoint it cosigned (repeatable; needs "
            "its --witness-key): the database must hold at least that tree.",
        ),
    ] = None,
    integrator_state: Annotated[
        list[Path] | None,
        typer.Option(
            "--integrator-state",
            help="An integrator's last-checkpoint file (<data-dir>/audit/last-checkpoint), "
            "as a trusted checkpoint (repeatable).",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Check every entry, root, checkpoint signature, and, when given their keys, entry MACs
    and witness cosignatures; exit 1 naming the first bad leaf."""
    verifier = _verifier(public_key, origin)
    trusted = [_trusted(verifier, path) for path in checkpoint or []]
    witnesses = [_witness(vkey) for vkey in witness_key or []]
    trusted += [_state_checkpoint(verifier, path) for path in integrator_state or []]
    mac = None if mac_key is None else _mac(mac_key)
    with _engine(database_url) as engine, _progress() as progress:
        trusted += [
            _witness_latest(verifier, witnesses, url, _log_origin(engine, verifier))
            for url in witness_url or []
        ]
        task = progress.add_task("verifying", total=None)
        report = verify_log(
            engine,
            verifier,
            trusted_checkpoint=trusted,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            check_index=index_check,
            mac=mac,
            witnesses=witnesses,
            workers=usable_cpus() if workers is None else workers,
        )
    print_report(stdout(), report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("erasures")
def erasures_command(
    journal: Annotated[
        list[Path],
        typer.Option("--journal", help="An exported journal (audit export --format jsonl)."),
    ],
    since: Annotated[str, typer.Option("--since", help="The restore point (ISO 8601).")],
    witness_key: Annotated[
        list[str], typer.Option("--witness-key", help="A witness's verifier key (repeatable).")
    ],
    witness_url: Annotated[
        str | None,
        typer.Option("--witness-url", help="Take the witness's latest cosigned checkpoint."),
    ] = None,
    witnessed_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--witnessed-checkpoint", help="Or a cosigned checkpoint kept outside the database."
        ),
    ] = None,
    mac_key: Annotated[
        Path | None, typer.Option("--mac-key", help="Also check each erasure entry's MAC.")
    ] = None,
    public_key: PublicKey = DEFAULT_PUBLIC_KEY,
    database_url: DatabaseUrl = None,
) -> None:
    """After a restore: the erasures to re-apply, only from journal entries proven to be
    in a witnessed checkpoint (exit 1, listing nothing, when the proof fails)."""
    verifier = _verifier(public_key, None)
    witnesses = [_witness(vkey) for vkey in witness_key]
    if (witness_url is None) == (witnessed_checkpoint is None):
        raise _fail("give one of --witness-url and --witnessed-checkpoint")
    start = _filters(None, None, None, None, None, None, since, None)["since"]
    mac = None if mac_key is None else _mac(mac_key)
    lines = _journal_lines(journal)
    with _engine(database_url) as engine:
        if witness_url is not None:
            origin = _log_origin(engine, verifier)
            witnessed = _witness_latest(verifier, witnesses, witness_url, origin)
        elif witnessed_checkpoint is not None:
            witnessed = _cosigned_file(verifier, witnesses, witnessed_checkpoint)
        try:
            found = witnessed_erasures(engine, lines, witnessed, since=start, mac=mac)
        except JournalError as exc:
            raise _fail(str(exc), code=1) from None
    stdout().print(erasures_table(found))


def _journal_lines(paths: list[Path]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        try:
            lines += path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            raise _fail(f"cannot read the journal {path}") from None
    return lines


def _cosigned_file(
    verifier: CheckpointVerifier, witnesses: list[CosignatureVerifier], path: Path
) -> Checkpoint:
    try:
        note = path.read_text(encoding="utf-8")
        checkpoint = verifier.verify(note)
    except (OSError, UnicodeDecodeError):
        raise _fail(f"cannot read {path}") from None
    except CheckpointError as exc:
        raise _fail(f"{path} is not signed by the log: {exc}", code=1) from None
    for witness in witnesses:
        try:
            witness.find(note)
        except CheckpointError:
            continue
        return checkpoint
    raise _fail(f"{path} has no cosignature by a --witness-key", code=1)


@app.command("export")
def export_command(
    output_format: Annotated[
        Format, typer.Option("--format", help="jsonl, csv, or a self-contained html report.")
    ] = Format.jsonl,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write here instead of to stdout.")
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="One subject's access history (a report to attach)."),
    ] = None,
    actor: Actor = None,
    action: Action = None,
    decision: DecisionOpt = None,
    purpose: Purpose = None,
    tenant: Tenant = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Export entries matching every filter given, oldest first."""
    given = _filters(subject, actor, action, decision, purpose, tenant, since, until)
    with _engine(database_url) as engine, _output(output) as out:
        found = iter_query(engine, **given)
        selected = found if limit is None else support.take(found, limit)
        if output_format is Format.jsonl:
            count = write_jsonl(selected, out)
        elif output_format is Format.csv:
            count = write_csv(selected, out)
        else:
            count = write_html(
                selected,
                out,
                title=f"Access history of subject {subject}" if subject else "Audit log extract",
                generated_at=datetime.now(UTC),
                summary=support.report_summary(engine, given),
            )
    if output is not None:
        stderr().print(f"wrote {count} entries to {escape(str(output))}")


@app.command("checkpoint")
def checkpoint_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write it into this directory, named by tree size."),
    ] = None,
    public_key: PublicKey = DEFAULT_PUBLIC_KEY,
    database_url: DatabaseUrl = None,
) -> None:
    """Print the latest signed checkpoint with its witnesses' cosignatures (or save it to
    keep outside the database)."""
    verifier = _verifier(public_key, None)
    with _engine(database_url) as engine:
        note = cosigned_checkpoint(engine)
        if note is None:
            raise _fail("the audit log has no checkpoint yet", code=1)
        try:
            verifier.verify(note)
        except CheckpointError:
            raise _fail("the latest checkpoint does not verify with this key", code=1) from None
        if out is None:
            sys.stdout.write(note)
            return
        if not out.is_dir():
            raise _fail(f"{out} is not a directory")
        path = export_checkpoint(engine, out)
    stderr().print(f"wrote {escape(str(path))}")


def _filters(
    subject: str | None,
    actor: str | None,
    action: str | None,
    decision: Decision | None,
    purpose: str | None,
    tenant: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    try:
        return support.filters(
            subject=subject,
            actor=actor,
            action=action,
            decision=None if decision is None else decision.value,
            purpose=purpose,
            tenant=tenant,
            since=since,
            until=until,
        )
    except support.CliError as exc:
        raise _fail(str(exc)) from None


@contextmanager
def _engine(database_url: str | None) -> Iterator[Engine]:
    try:
        engine = support.open_engine(database_url)
    except support.CliError as exc:
        raise _fail(str(exc)) from None
    try:
        yield engine
    except AuditError as exc:  # messages name fields and positions, never values
        raise _fail(str(exc), code=1) from None
    finally:
        engine.dispose()


def _verifier(public_key: Path, origin: str | None) -> CheckpointVerifier:
    try:
        return support.read_verifier(public_key, origin)
    except support.CliError as exc:
        raise _fail(str(exc)) from None


def _trusted(verifier: CheckpointVerifier, path: Path) -> Checkpoint:
    try:
        return verifier.verify(path.read_bytes())
    except OSError:
        raise _fail(f"cannot read {path}") from None
    except CheckpointError as exc:
        raise _fail(f"checkpoint {path} does not verify: {exc}", code=1) from None


def _witness(vkey: str) -> CosignatureVerifier:
    try:
        return CosignatureVerifier.from_verifier_key(vkey)
    except AuditError as exc:
        raise _fail(f"--witness-key: {exc}") from None


def _mac(path: Path) -> EntryMac:
    try:
        return EntryMac.from_file(path)
    except AuditError as exc:
        raise _fail(f"--mac-key {path}: {exc}") from None


def _state_checkpoint(verifier: CheckpointVerifier, path: Path) -> Checkpoint:
    try:
        last = LastSignedFile(path, verifier).load()
    except AuditError as exc:
        raise _fail(f"--integrator-state {path}: {exc}", code=1) from None
    if last is None:
        raise _fail(f"no integrator state at {path}")
    return last.checkpoint


def _log_origin(engine: Engine, verifier: CheckpointVerifier) -> str:
    """The log's origin: --origin, else the newest stored checkpoint's (signature checked)."""
    if verifier.origin is not None:
        return verifier.origin
    note = cosigned_checkpoint(engine)
    if note is None:
        raise _fail("the audit log has no checkpoint yet", code=1)
    try:
        return verifier.verify(note).origin
    except CheckpointError:
        raise _fail("the newest checkpoint is not signed by this key", code=1) from None


def _witness_latest(
    verifier: CheckpointVerifier, witnesses: list[CosignatureVerifier], url: str, origin: str
) -> Checkpoint:
    """The latest checkpoint a witness cosigned, checked against its configured key."""
    for witness in witnesses:
        try:
            note = WitnessClient(url, witness).latest(origin)
        except AuditError as exc:
            raise _fail(f"--witness-url {url}: {exc}") from None
        if note is None:
            raise _fail(f"--witness-url {url}: the witness has no checkpoint of this log", code=1)
        try:
            witness.find(note)
        except CheckpointError:
            continue
        try:
            return verifier.verify(note)
        except CheckpointError:
            raise _fail(
                f"--witness-url {url}: its checkpoint is not signed by the log", code=1
            ) from None
    raise _fail(f"--witness-url {url}: no cosignature by a --witness-key", code=1)


@contextmanager
def _progress() -> Iterator[Progress]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=stderr(), transient=True) as progress:
        yield progress


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        handle = path.open("w", encoding="utf-8", newline="")
    except OSError:
        raise _fail(f"cannot write {path}") from None
    with handle:
        yield handle


def _fail(message: str, *, code: int = 2) -> typer.Exit:
    stderr().print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)
