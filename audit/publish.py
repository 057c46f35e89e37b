"""Publishing checkpoints to witnesses, and keeping their cosignatures.

After each new checkpoint (and every `interval` seconds), the newest stored checkpoint
goes to every configured witness with a consistency proof from the size that witness
last cosigned (learned from its 409 answers). A cosignature that verifies against the
witness's configured key is stored in `audit_cosignatures`. A witness that is down is
retried with exponential back-off; reads and writes of the vault never wait for it.

Integrity alarms (`on_alarm`, then that witness is left alone until restart):
- the witness refuses our consistency proof (422): our tree does not extend what it saw;
- it cosigned a different root at our size (409 at our own size): a fork;
- it has seen a larger tree than the database holds: the database was rewound or
  truncated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.checkpoint import Checkpoint, CheckpointVerifier
from audit.errors import ProofError, VerifyError
from audit.proofs import consistency_proof, latest_checkpoint
from audit.tables import TREE_STATE_ID, checkpoints, cosignatures, tree_state
from audit.witness.client import (
    Conflict,
    WitnessClient,
    WitnessRefusedError,
    WitnessUnavailableError,
)

log = logging.getLogger(__name__)

OnAlarm = Callable[[str], None]


@dataclass
class _Progress:
    client: WitnessClient
    known_size: int = 0  # the witness's latest size, as far as we know
    cosigned_size: int = 0  # the largest size we hold its cosignature for
    failures: int = 0
    next_attempt: float = 0.0
    alarm: str | None = None
    last_error: str = field(default="")


class Publisher:
    """Sends the newest checkpoint to each witness and stores the cosignatures."""

    def __init__(
        self,
        engine: Engine,
        witnesses: Sequence[WitnessClient],
        verifier: CheckpointVerifier,
        *,
        on_alarm: OnAlarm | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self._engine = engine
        self._verifier = verifier
        self._on_alarm = on_alarm
        self._monotonic = monotonic
        self._base = backoff_base
        self._max = backoff_max
        self._progress = [_Progress(client) for client in witnesses]
        self._lock = threading.Lock()
        self._loaded = False

    def lag(self) -> dict[str, int]:
        """Per witness: leaves of the newest checkpoint not yet covered by its cosignature
        (from the stored cosignatures, so whichever replica published counts)."""
        note = latest_checkpoint(self._engine)
        size = 0 if note is None else self._verifier.verify(note).size
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(cosignatures.c.witness, sa.func.max(cosignatures.c.size)).group_by(
                    cosignatures.c.witness
                )
            ).all()
        cosigned = {str(name): int(top) for name, top in rows}
        return {
            p.client.name: max(0, size - cosigned.get(p.client.name, 0)) for p in self._progress
        }

    def alarms(self) -> dict[str, str]:
        """Witnesses whose answers showed the log inconsistent, with the problem."""
        return {p.client.name: p.alarm for p in self._progress if p.alarm is not None}

    def publish(self) -> None:
        """One round: the newest checkpoint to every witness that is due."""
        with self._lock:
            if not self._loaded:
                self._load_cosigned()
            note = latest_checkpoint(self._engine)
            if note is None:
                return
            checkpoint = self._verifier.verify(note)
            now = self._monotonic()
            for progress in self._progress:
                if progress.alarm is None and progress.next_attempt <= now:
                    self._publish_to(progress, note, checkpoint)

    def _load_cosigned(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(cosignatures.c.witness, sa.func.max(cosignatures.c.size)).group_by(
                    cosignatures.c.witness
                )
            ).all()
        sizes = {str(name): int(size) for name, size in rows}
        for progress in self._progress:
            progress.cosigned_size = sizes.get(progress.client.name, 0)
            progress.known_size = progress.cosigned_size
        self._loaded = True

    def _publish_to(self, progress: _Progress, note: str, checkpoint: Checkpoint) -> None:
        if progress.cosigned_size >= checkpoint.size and progress.known_size == checkpoint.size:
            return
        try:
            self._exchange(progress, note, checkpoint)
        except WitnessUnavailableError as exc:
            self._back_off(progress, str(exc))
        except WitnessRefusedError as exc:
            if exc.status == 422:
                self._alarm(
                    progress,
                    f"witness {progress.client.name} refused the tree at size "
                    f"{checkpoint.size}: not consistent with what it cosigned before",
                )
            else:
                self._back_off(progress, str(exc))
        except (ProofError, VerifyError) as exc:
            self._alarm(
                progress, f"cannot prove consistency for witness {progress.client.name}: {exc}"
            )
        else:
            progress.failures = 0
            progress.last_error = ""

    def _exchange(self, progress: _Progress, note: str, checkpoint: Checkpoint) -> None:
        old = progress.known_size
        for _attempt in range(3):
            if old > checkpoint.size:
                self._witness_ahead(progress, old)
                return
            proof = (
                []
                if old in (0, checkpoint.size)
                else consistency_proof(self._engine, old, checkpoint.size)
            )
            answer = progress.client.add_checkpoint(old, proof, note, checkpoint)
            if isinstance(answer, Conflict):
                if answer.size == old == checkpoint.size:
                    self._alarm(
                        progress,
                        f"witness {progress.client.name} cosigned a different "
                        f"root at size {old}: the log forked",
                    )
                    return
                old = progress.known_size = answer.size
                continue
            self._store(progress.client.name, checkpoint, answer.line, answer.timestamp)
            progress.known_size = progress.cosigned_size = checkpoint.size
            return
        raise WitnessUnavailableError("witness kept answering with conflicts")

    def _witness_ahead(self, progress: _Progress, size: int) -> None:
        with self._engine.connect() as conn:
            stored = conn.execute(
                sa.select(tree_state.c.size).where(tree_state.c.id == TREE_STATE_ID)
            ).scalar_one()
        if size > stored:
            self._alarm(
                progress,
                f"witness {progress.client.name} has seen {size} leaves; the "
                f"database holds {stored}: the log was rewound or truncated",
            )
        # Otherwise another replica published a newer checkpoint: nothing to do now.

    def _store(self, witness: str, checkpoint: Checkpoint, line: str, timestamp: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(cosignatures).where(
                    cosignatures.c.witness == witness, cosignatures.c.size == checkpoint.size
                )
            )
            conn.execute(
                sa.insert(cosignatures).values(
                    witness=witness,
                    size=checkpoint.size,
                    root_hash=checkpoint.root_hash,
                    line=line,
                    cosigned_at=timestamp,
                )
            )
            # Keep one per stored checkpoint, and this newest one.
            conn.execute(
                sa.delete(cosignatures).where(
                    cosignatures.c.witness == witness,
                    cosignatures.c.size < checkpoint.size,
                    cosignatures.c.size.not_in(sa.select(checkpoints.c.size)),
                )
            )

    def _back_off(self, progress: _Progress, problem: str) -> None:
        delay = min(self._max, self._base * 2**progress.failures)
        progress.failures += 1
        progress.next_attempt = self._monotonic() + delay
        if problem != progress.last_error:
            log.warning(
                "audit witness %s: %s; retrying in %.0f s", progress.client.name, problem, delay
            )
        progress.last_error = problem

    def _alarm(self, progress: _Progress, problem: str) -> None:
        progress.alarm = problem
        log.error("audit witness ALARM: %s", problem)
        if self._on_alarm is not None:
            self._on_alarm(problem)


class PublisherThread:
    """Runs `publisher.publish` after each new checkpoint and every `interval` seconds."""

    def __init__(self, publisher: Publisher, *, interval: float = 1.0) -> None:
        self.publisher = publisher
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, _checkpoint: Checkpoint | None = None) -> None:
        """A new checkpoint was signed: publish soon."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("publisher thread already started")
        self._thread = threading.Thread(target=self._run, name="audit-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.publisher.publish()
            # Must outlive database outages and odd witness answers; next round retries.
            except Exception as exc:  # noqa: BLE001
                log.error("audit publishing failed: %s", type(exc).__name__)  # noqa: TRY400
            self._wake.wait(self._interval)
            self._wake.clear()
