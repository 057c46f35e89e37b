"""`customer-vault retention ...`: the one-shot retention run (e.g. a Kubernetes CronJob),
local on the database; and the calls to a running vault (`retention_remote`)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from vault.cli import retention_remote
from vault.cli.options import DatabaseUrl, DataDir, settings
from vault.cli.output import Format, FormatOpt
from vault.errors import VaultError

if TYPE_CHECKING:
    from vault.retention.job import RetentionJob
    from vault.retention.report import RetentionReport

retention_app = typer.Typer(
    no_args_is_help=True, help="Dormant accounts: notices, legal holds and anonymization."
)
for _name, _command in retention_remote.COMMANDS.items():
    retention_app.command(_name)(_command)
console = Console()
err = Console(stderr=True)

EXIT_INTERRUPTED = 3


@retention_app.command("run")
def run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what a run would do now.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    policies_dir: Annotated[Path | None, typer.Option(help="Policy folder.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Subjects per transaction.")] = None,
    fmt: FormatOpt = Format.table,
    as_json: Annotated[
        bool, typer.Option("--json", hidden=True, help="Deprecated: --format json.")
    ] = False,
) -> None:
    """Run the retention job once: notices for dormant subjects, then anonymization of
    those whose notice has run out. Exits 0 when another runner holds the lock, and 3
    when stopped by SIGTERM (the next run carries on where this one stopped)."""
    from vault.app import VaultApp

    as_json = as_json or fmt is Format.json

    cfg = settings(
        data_dir=data_dir,
        database_url=database_url,
        policies_dir=policies_dir,
        retention_batch_size=batch_size,
    )
    try:
        app = VaultApp.open(cfg)
    except VaultError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    try:
        if dry_run:
            report = app.retention_job.plan()
        else:
            report = _run_with_progress(app.retention_job, show=not as_json)
    except VaultError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None
    finally:
        app.close()
    if as_json:
        print(report.to_json())
    else:
        _show(report)
    raise typer.Exit(EXIT_INTERRUPTED if report.interrupted else 0)


def _run_with_progress(job: RetentionJob, *, show: bool) -> RetentionReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from vault.retention.report import Outcome

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    plan = job.plan()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, disable=not show) as progress:
        bars = {
            Outcome.NOTIFIED: progress.add_task("notices", total=plan.count(Outcome.NOTIFIED)),
            Outcome.ANONYMIZED: progress.add_task(
                "anonymization", total=plan.count(Outcome.ANONYMIZED)
            ),
        }

        def advance(outcome: Outcome, count: int) -> None:
            task = bars[outcome]
            progress.advance(task, count)
            # Due notices can outnumber the plan (a zero-day notice, a concurrent run).
            current = progress.tasks[task]
            if current.total is not None and current.completed > current.total:
                progress.update(task, total=current.completed)

        return job.run(progress=advance, stop=stop)


def _show(report: RetentionReport) -> None:
    from rich.table import Table

    from vault.retention.report import Outcome

    if report.skipped:
        console.print(f"[yellow]skipped:[/yellow] {report.skipped}")
        return
    what = "dry run: what a run would do now" if report.dry_run else "run"
    console.print(f"retention {what} ({report.run_id})")
    table = Table("outcome", "subjects")
    for outcome in Outcome:
        table.add_row(outcome.value, str(report.count(outcome)))
    console.print(table)
    if report.without_attributes:
        console.print(
            f"{report.without_attributes} anonymized without generalized attributes "
            "(their data key could not be used)"
        )
    if report.held_subjects:
        shown = ", ".join(report.held_subjects[:10])
        more = len(report.held_subjects) - 10
        console.print(f"held: {shown}{f' and {more} more listed' if more > 0 else ''}")
    k = report.k_anonymity
    console.print(
        f"k-anonymity of {k.records} anonymized records: {k.groups} groups, smallest "
        f"{k.min_group_size}; {k.groups_below_k} groups ({k.records_below_k} records) "
        f"below k={k.k}"
    )
    console.print(f"duration {report.duration_seconds:.2f}s")
    if report.interrupted:
        console.print("[yellow]interrupted:[/yellow] the next run carries on from here")
