"""`AuditLog`: the one object a host service holds to write its audit trail.

It owns the group-commit writer and the integrator thread; the vault builds one per
process (`vault.app.VaultApp.audit_log`) and appends through it. Work that prepares
entries in other processes (the retention job's batches) writes them with the module
functions `encode` and `append_encoded_in` inside its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy.engine import Connection, Engine

from audit.append import append_in
from audit.checkpoint import Checkpoint, CheckpointSigner
from audit.entry import AuditEntry
from audit.errors import AuditUnavailableError
from audit.integrator import Clock, Integrator, IntegratorThread, OnRefusal, utc_now
from audit.last_signed import LastSignedFile
from audit.mac import EntryMac
from audit.writer import GroupCommitWriter, PendingAppend


class AuditLog:
    """Appends entries and, when given a signer, keeps the Merkle tree integrated.

    Changes: `append_in(conn, entries)` inside the change's own transaction. Reads:
    `append(entry)`, a group-committed durable write that raises
    `AuditUnavailableError` when it cannot be made, so the read can fail closed.
    Every process may run an integrator; they take turns under the log's lock.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        signer: CheckpointSigner | None = None,
        origin: str | None = None,
        integrate_interval: float = 1.0,
        max_batch: int = 1000,
        checkpoint_interval: int = 1024,
        now: Clock = utc_now,
    ) -> None:
        if (signer is None) != (origin is None):
            raise ValueError("signer and origin go together")
        self.engine = engine
        self._max_batch = max_batch
        self._interval = integrate_interval
        self._checkpoint_interval = checkpoint_interval
        self._now = now
        self.integrator = (
            None
            if signer is None or origin is None
            else Integrator(
                engine, signer, origin, checkpoint_interval=checkpoint_interval, now=now
            )
        )
        self._writer: GroupCommitWriter | None = None
        self._integrator_thread: IntegratorThread | None = None

    def start(self) -> None:
        """Start the group-commit writer and, with a signer, the integrator thread."""
        if self._writer is not None:
            raise RuntimeError("audit log already started")
        self._writer = GroupCommitWriter(self.engine, max_batch=self._max_batch)
        if self.integrator is not None:
            self._integrator_thread = IntegratorThread(self.integrator, interval=self._interval)
            self._integrator_thread.start()

    def start_integrating(
        self,
        signer: CheckpointSigner,
        origin: str,
        *,
        interval: float | None = None,
        last_signed: LastSignedFile | None = None,
        mac: EntryMac | None = None,
        on_refusal: OnRefusal | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
    ) -> None:
        """Start the integrator thread of a log opened without a signer (a host that
        appends before it reads its signing key, as the vault does at start-up).

        `last_signed`, `mac`: see `Integrator`; `on_refusal(problem)` is called once if
        it refuses a rewritten tree, `on_checkpoint(checkpoint)` after each new one.
        """
        if self._integrator_thread is not None:
            raise RuntimeError("audit log already integrating")
        self.integrator = Integrator(
            self.engine,
            signer,
            origin,
            checkpoint_interval=self._checkpoint_interval,
            now=self._now,
            last_signed=last_signed,
            mac=mac,
        )
        self._integrator_thread = IntegratorThread(
            self.integrator,
            interval=self._interval if interval is None else interval,
            on_refusal=on_refusal,
            on_checkpoint=on_checkpoint,
        )
        self._integrator_thread.start()

    def append_in(self, conn: Connection, entries: Iterable[AuditEntry]) -> list[int]:
        """Insert entries in the caller's open transaction; see `audit.writer.append_in`."""
        return append_in(conn, entries)

    def append(self, entry: AuditEntry, *, timeout: float | None = 10.0) -> int:
        """Durably write one entry through group commit; returns its id."""
        if self._writer is None:
            raise AuditUnavailableError("audit log is not started")
        return self._writer.append(entry, timeout=timeout)

    def submit(self, entry: AuditEntry) -> PendingAppend:
        """Hand one entry to group commit without waiting (`GroupCommitWriter.submit`)."""
        if self._writer is None:
            raise AuditUnavailableError("audit log is not started")
        return self._writer.submit(entry)

    def close(self) -> None:
        """Flush pending appends, integrate once more, and stop the threads."""
        if self._writer is not None:
            self._writer.close()
        if self._integrator_thread is not None:
            self._integrator_thread.stop()
