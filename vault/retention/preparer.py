"""Preparing anonymization batches ahead of the write, in this process or in a child.

SQLite has one writer, and a run's critical path is the job's write transactions. The
per-subject work of a batch (read and decode the kept fields, unwrap the data key, open
and generalize, draw pseudonyms, build and encode the audit entries) needs no lock, so
for a large run a child process does it for batch n+1 while this process writes batch n.
A thread cannot: sqlite3 gives up the GIL for every row it steps, and a thread running
Python beside it makes each of those steps wait for the GIL (measured: no faster than
doing both in turn; docs/performance-journal/2026-11-24-anonymization-a-million.md).

The child also checkpoints the WAL while it waits, so the pages the writer commits are
copied into the database on the other core instead of in the writer's commit.

The child is given the settings and the data dictionary, loads the keys itself, opens
its own connections (reads and checkpoints only), and sends back only what the write
needs: notice ids, subject versions, generalized records and encoded audit entries;
nothing personal crosses the pipe but the generalized attributes the job keeps anyway.
It exits when the pipe closes, so a job that dies (even by `kill -9`) leaves no child.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from vault import key_custody
from vault.clock import from_micros, to_micros
from vault.config import Settings
from vault.errors import UnavailableError
from vault.fields.dictionary import DataDictionary
from vault.records.cipher import RecordCipher
from vault.retention.anonymizer import Anonymizer
from vault.retention.batches import Prepared, RetentionBatchRunner
from vault.storage.db import Database, create_engine

PreparedBatch = tuple[list[str], dict[str, Prepared]]
"""The notice ids a batch read (in order) and what was prepared for them."""

_CHILD_START_TIMEOUT = 60.0


class Preparer(Protocol):
    """Prepares one batch at a time: `request` starts it, `result` waits for it."""

    def request(self, now: datetime, at: datetime, run_id: str, exclude: Sequence[str]) -> None:
        """Read up to one batch of due notices (leaving out `exclude`) and prepare it,
        audit entries stamped `at`."""

    def result(self) -> PreparedBatch:
        """The batch last requested."""


class InProcessPreparer:
    """Does the work when `result` is called, in turn with the writes (small runs)."""

    def __init__(self, batches: RetentionBatchRunner) -> None:
        self._batches = batches
        self._pending: tuple[datetime, datetime, str, Sequence[str]] | None = None

    def request(self, now: datetime, at: datetime, run_id: str, exclude: Sequence[str]) -> None:
        self._pending = (now, at, run_id, exclude)

    def result(self) -> PreparedBatch:
        if self._pending is None:
            raise RuntimeError("no batch was requested")
        now, at, run_id, exclude = self._pending
        self._pending = None
        return prepare_batch(self._batches, now, at, run_id, exclude)


def prepare_batch(
    batches: RetentionBatchRunner, now: datetime, at: datetime, run_id: str, exclude: Sequence[str]
) -> PreparedBatch:
    due = batches.read_due(now, exclude)
    return [d.notice_id for d in due], batches.prepare(due, now, run_id, at)


@dataclass(frozen=True)
class ChildPreparerSetup:
    """What the vault gives a child to build its `RetentionBatchRunner` from (the job adds its rules
    version and batch size), picklable. The child loads the keys from where the settings
    say, as the vault did; settings given the key document itself (`VAULT_MASTER_KEYS`)
    carry it over the socket pair between the job and its own child, which also inherits
    the job's environment."""

    settings: Settings
    dictionary: DataDictionary


class ChildPreparer:
    """A child process preparing batches; a context manager that starts and stops it.

    The child is a fresh interpreter running this module (`python -m`), not a fork of a
    process running gRPC and other threads, nor multiprocessing's spawn, which would
    re-run the parent's main script; the two talk over a socket pair, pickled."""

    def __init__(self, recipe: ChildPreparerSetup, *, rules_version: str, batch_size: int) -> None:
        self._recipe = recipe
        self._rules_version = rules_version
        self._batch_size = batch_size
        self._pipe: Pipe | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ChildPreparer:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            env = dict(os.environ)
            # The vault's own import path first, whether installed or run from a checkout.
            source = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
            command = [sys.executable, "-m", __name__, str(theirs.fileno())]
            self._process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
                command, pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL
            )
            self._pipe = Pipe(ours.detach())
        try:
            self._pipe.send((self._recipe, self._rules_version, self._batch_size))
            self._receive(_CHILD_START_TIMEOUT)  # "ready", or the error it failed with
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pipe is not None:
            self._pipe.close()
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def request(self, now: datetime, at: datetime, run_id: str, exclude: Sequence[str]) -> None:
        assert self._pipe is not None, "use ChildPreparer as a context manager"
        self._pipe.send((to_micros(now), to_micros(at), run_id, list(exclude)))

    def result(self) -> PreparedBatch:
        batch: PreparedBatch = self._receive(None)
        return batch

    def _receive(self, timeout: float | None) -> Any:
        assert self._pipe is not None, "use ChildPreparer as a context manager"
        try:
            if timeout is not None and not self._pipe.poll(timeout):
                raise UnavailableError("the retention preparer did not start")
            kind, value = self._pipe.recv()
        except (EOFError, OSError) as exc:
            raise UnavailableError("the retention preparer stopped") from exc
        if kind == "error":
            raise value
        return value


def _serve(pipe: Pipe) -> None:
    """The child: build, say ready, then prepare batches until the pipe closes.

    It ignores SIGINT and SIGTERM: sent to the whole process group (Ctrl-C in a
    terminal) they are the job's to handle; it stops between batches and closes the
    pipe, and the child then ends. Killing the child alone fails the run
    (`UnavailableError`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        batches, checkpoint = _build(*pipe.recv())
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        _send_error(pipe, exc)
        return
    pipe.send(("ok", "ready"))
    while True:
        try:
            now_us, at_us, run_id, exclude = pipe.recv()
        except (EOFError, OSError):
            return  # the job finished, or died
        try:
            batch = prepare_batch(batches, from_micros(now_us), from_micros(at_us), run_id, exclude)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            _send_error(pipe, exc)
            continue
        try:
            pipe.send(("ok", batch))
        except (EOFError, OSError):
            return
        checkpoint()


def _send_error(pipe: Pipe, exc: BaseException) -> None:
    """The exception as raised, if it pickles; else its type's name (never its text:
    a driver's may quote values)."""
    try:
        pickle.dumps(exc)
        error: BaseException = exc
    except Exception:  # noqa: BLE001 - any pickling failure
        error = UnavailableError(f"the retention preparer failed ({type(exc).__name__})")
    with suppress(EOFError, OSError):
        pipe.send(("error", error))


class _TimeFromParent:
    """The child has no clock of its own: every entry is stamped with the time sent."""

    def now(self) -> datetime:
        raise RuntimeError("the retention preparer stamps entries with the parent's time")


def _build(
    recipe: ChildPreparerSetup, rules_version: str, batch_size: int
) -> tuple[RetentionBatchRunner, Callable[[], None]]:
    settings = recipe.settings
    keyring = key_custody.keyring_for(settings)
    sealing = RecordCipher(keyring, recipe.dictionary.index_forms)
    engine = create_engine(
        settings.resolved_database_url,
        pool_size=1,
        lock_timeout=settings.db_lock_timeout_seconds,
    )
    batches = RetentionBatchRunner(
        db=Database(engine),
        anonymizer=Anonymizer(sealing, recipe.dictionary),
        clock=_TimeFromParent(),
        rules_version=rules_version,
        batch_size=batch_size,
    )

    def checkpoint() -> None:
        if engine.dialect.name != "sqlite":
            return
        # PASSIVE copies what it can without waiting for (or blocking) the writer. On the
        # driver's connection, outside any transaction (SQLAlchemy would begin one). A
        # checkpoint that fails is left to the job's own (CHILD_CHECKPOINT_PAGES).
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception:  # noqa: BLE001, S110 - best effort, see above
            pass
        finally:
            raw.close()

    return batches, checkpoint


if __name__ == "__main__":
    _serve(Pipe(int(sys.argv[1])))
