"""Whole-log verification: every leaf, every root, every checkpoint signature.

Trust comes only from signatures: the verifier holds the public key, and optionally a
checkpoint exported earlier. It reads one consistent snapshot of the log and:

1. checks every stored checkpoint's signature, origin, and the size/root beside it;
2. streams the integrated entries in leaf order, in chunks, checking that leaf
   indexes run 0, 1, 2, ... without gaps or duplicates, that each stored leaf hash is
   the hash of the stored canonical bytes, and that each entry's query columns and
   subject links agree with those bytes (`audit.leaf_scan`);
3. recomputes the tree root at every checkpoint size (and the trusted ones) and compares.

Naming the first bad position: a gap, a duplicate, a content/hash mismatch or a
column/link mismatch is exact.
When the attacker also rewrote the leaf hash, or swapped or inserted whole rows, each
row looks fine on its own and only a root betrays it: the prefix up to the last
checkpoint whose root matched is proven intact, so the first bad leaf lies in
`[first_bad_position, bad_range_end)`, exact when checkpoints are one leaf apart and
never wider than the integrator's `checkpoint_interval` when none was deleted.

Stored checkpoints narrow only until a trusted checkpoint disagrees: if history was
rewritten and the integrator then signed over it, later stored checkpoints are
self-consistent forgeries. A trusted mismatch is therefore placed after the last
*trusted* checkpoint that matched (hand several in for a narrower range).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit import leaf_scan, verify_pool
from audit.checkpoint import Checkpoint, CheckpointVerifier
from audit.cosignature import CosignatureVerifier
from audit.errors import CheckpointError, VerifyError
from audit.leaf_scan import (
    LeafProblem,
    LeafReader,
    MacCheck,
    check_leaves,
    first_problem,
    supports_index_check,
)
from audit.mac import EntryMac
from audit.merkle import CompactRange
from audit.tables import TREE_STATE_ID, checkpoints, cosignatures, tree_state
from audit.tables import entries as entries_table

Progress = Callable[[int, int], None]
"""Called with (leaves checked so far, leaves to check) every `PROGRESS_EVERY` leaves or
so, and once all are checked."""

PROGRESS_EVERY = 1 << 16  # the console lists each step; chunks are smaller than this


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verify_log`.

    `size` is the log's tree size (its newest stored checkpoint, `checkpoint`) and
    `entries_checked` the leaves read. On failure, `problem` says what is wrong and
    `first_bad_position` is the first leaf position found bad (None for a problem with
    no position, such as a forged checkpoint); the first bad leaf is known to lie in
    `[first_bad_position, bad_range_end)`. Leaves `[0, verified_size)` are proven by a
    signed root. `pending` entries are appended but not yet in the tree.
    `index_checked` says whether query columns and subject links were checked too.

    `mac_checked` says whether entry MACs were checked (a MAC key was given);
    `mac_legacy` counts the leading entries written before MACs existed, which carry
    none. `witnessed` maps each configured witness to the largest tree size it validly
    cosigned; `latest_cosigned_by` names those that cosigned the newest checkpoint.
    """

    ok: bool
    size: int
    verified_size: int
    checkpoints_checked: int
    pending: int
    entries_checked: int = 0
    index_checked: bool = False
    checkpoint: Checkpoint | None = None
    problem: str | None = None
    first_bad_position: int | None = None
    bad_range_end: int | None = None
    mac_checked: bool = False
    mac_legacy: int = 0
    witnessed: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    latest_cosigned_by: tuple[str, ...] = ()

    def raise_for_failure(self) -> None:
        """Raise `VerifyError` (with the position) unless the log verified."""
        if not self.ok:
            where = "" if self.first_bad_position is None else f" at leaf {self.first_bad_position}"
            raise VerifyError(
                f"audit log verification failed{where}: {self.problem}", self.first_bad_position
            )


class _BadLogError(Exception):
    def __init__(self, problem: str, position: int | None, end: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.position = position
        self.end = end if end is not None or position is None else position + 1


def verify_log(
    engine: Engine,
    verifier: CheckpointVerifier,
    trusted_checkpoint: str | Checkpoint | Iterable[str | Checkpoint] | None = None,
    progress: Progress | None = None,
    *,
    check_index: bool = True,
    mac: EntryMac | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    workers: int = 1,
) -> VerifyReport:
    """Verify the whole log against `verifier` (and checkpoints kept elsewhere).

    A trusted checkpoint is a signed note (its signature is checked here, raising
    `CheckpointError`) or an already verified `Checkpoint`; one or several may be
    given. A log smaller than one, or with a different root at its size, fails: that
    is how truncation and rewritten history are caught. `check_index=False` skips the
    query-column and subject-link checks (the Merkle checks alone run faster).

    With `mac`, every entry from the first one with a MAC on must carry a valid MAC.
    With `witnesses`, every stored cosignature by one of them must verify, each root a
    witness cosigned counts as a trusted checkpoint, and the newest checkpoint must be
    cosigned by every one of them.

    With `workers` above 1, on PostgreSQL or a SQLite file, that many processes read and
    check the leaves, a chunk at a time, each in the same snapshot as this one, and this
    one joins their leaf hashes into the tree (`audit.verify_pool`); a log of fewer than
    `verify_pool.MIN_CHUNKS` chunks, or a database the workers cannot share, is read
    here alone.
    """
    if trusted_checkpoint is None:
        given: list[str | Checkpoint] = []
    elif isinstance(trusted_checkpoint, str | Checkpoint):
        given = [trusted_checkpoint]
    else:
        given = list(trusted_checkpoint)
    trusted = [verifier.verify(item) if isinstance(item, str) else item for item in given]
    with_index = check_index and supports_index_check(engine.dialect.name)
    pool = _pool(engine, workers, with_index=with_index, mac=mac)
    try:
        with verify_pool.consistent_snapshot(engine, pool) as (conn, pool):
            scan = _Scan(
                conn, verifier, trusted, progress, with_index, mac=mac, witnesses=witnesses,
                pool=pool,
            )  # fmt: skip
            try:
                scan.run()
            except _BadLogError as failure:
                return scan.report(failure)
            return scan.report(None)
    finally:
        if pool is not None:
            pool.close()


def _pool(
    engine: Engine, workers: int, *, with_index: bool, mac: EntryMac | None
) -> verify_pool.CheckerPool | None:
    """Worker processes for a log of at least `verify_pool.MIN_CHUNKS` chunks (its size
    read beforehand, only to decide), or None: the leaves are then read here."""
    if workers <= 1 or not verify_pool.can_share(engine):
        return None
    with engine.connect() as conn:
        high = conn.execute(sa.select(sa.func.max(entries_table.c.leaf_index))).scalar()
    if high is None or high + 1 < verify_pool.MIN_CHUNKS * leaf_scan.CHUNK:
        return None
    return verify_pool.CheckerPool.start(engine, workers, with_index=with_index, mac=mac)


class _Scan:
    def __init__(
        self,
        conn: Connection,
        verifier: CheckpointVerifier,
        trusted: list[Checkpoint],
        progress: Progress | None,
        with_index: bool,
        *,
        mac: EntryMac | None = None,
        witnesses: Sequence[CosignatureVerifier] = (),
        pool: verify_pool.CheckerPool | None = None,
    ) -> None:
        self.conn = conn
        self.macs = None if mac is None else MacCheck(mac)
        self.witnesses = {w.name: w for w in witnesses}
        self.witnessed: dict[str, int] = {}
        self.verifier = verifier
        self.trusted = trusted
        self.progress = progress
        self.with_index = with_index  # the query columns and links checked too
        self.pool = pool  # worker processes checking the chunks, or None: this one
        # size -> [(root, trusted?)]: every root the tree must have at that size
        self.targets: dict[int, list[tuple[bytes, bool]]] = {}
        self.latest: Checkpoint | None = None
        self.checked = 0
        self.pending = 0
        self.read = 0
        self.good = 0  # leaves [0, good) are proven by a matching signed root
        self.trusted_good = 0  # ... by a matching trusted root
        self.tree = CompactRange()

    def report(self, failure: _BadLogError | None) -> VerifyReport:
        return VerifyReport(
            ok=failure is None,
            size=0 if self.latest is None else self.latest.size,
            verified_size=self.good,
            checkpoints_checked=self.checked,
            pending=self.pending,
            entries_checked=self.read,
            index_checked=self.with_index,
            checkpoint=self.latest,
            problem=None if failure is None else failure.problem,
            first_bad_position=None if failure is None else failure.position,
            bad_range_end=None if failure is None else failure.end,
            mac_checked=self.macs is not None,
            mac_legacy=0 if self.macs is None else self.macs.legacy,
            witnessed=MappingProxyType(dict(self.witnessed)),
            latest_cosigned_by=tuple(
                sorted(
                    name
                    for name, size in self.witnessed.items()
                    if self.latest is not None and size == self.latest.size
                )
            ),
        )

    def run(self) -> None:
        self._load_checkpoints()
        self.pending = self.conn.execute(
            sa.select(sa.func.count()).where(entries_table.c.leaf_index.is_(None))
        ).scalar_one()
        low, high = self.conn.execute(
            sa.select(
                sa.func.min(entries_table.c.leaf_index), sa.func.max(entries_table.c.leaf_index)
            )
        ).one()
        if low is not None and low < 0:
            raise _BadLogError("an entry has a negative leaf index", 0)
        self._stream(-1 if high is None else high)
        self._check_end()

    def _load_checkpoints(self) -> None:
        rows = self.conn.execute(
            sa.select(checkpoints.c.size, checkpoints.c.root_hash, checkpoints.c.note).order_by(
                checkpoints.c.size
            )
        ).all()
        origins = set()
        for size, root, note in rows:
            try:
                checkpoint = self.verifier.verify(note)
            except CheckpointError:
                raise _BadLogError(
                    f"checkpoint at size {size} has no valid signature", None
                ) from None
            if checkpoint.size != size or checkpoint.root_hash != bytes(root):
                raise _BadLogError(f"checkpoint at size {size} differs from its signed note", None)
            origins.add(checkpoint.origin)
            self.targets.setdefault(size, []).append((checkpoint.root_hash, False))
            self.checked += 1
            self.latest = checkpoint
        for trusted in self.trusted:
            origins.add(trusted.origin)
            self.targets.setdefault(trusted.size, []).append((trusted.root_hash, True))
        if len(origins) > 1:
            raise _BadLogError("checkpoints name different log origins", None)
        origin = next(iter(origins), self.verifier.origin)
        if self.witnesses and origin is not None:
            self._load_cosignatures(origin)

    def _load_cosignatures(self, origin: str) -> None:
        rows = self.conn.execute(
            sa.select(
                cosignatures.c.witness,
                cosignatures.c.size,
                cosignatures.c.root_hash,
                cosignatures.c.line,
            ).order_by(cosignatures.c.size)
        ).all()
        for name, size, root, line in rows:
            witness = self.witnesses.get(name)
            if witness is None:
                continue
            try:
                witness.verify_line(Checkpoint(origin, size, bytes(root)), line)
            except CheckpointError:
                raise _BadLogError(
                    f"cosignature of witness {name} at size {size} does not verify", None
                ) from None
            # A root a witness cosigned is as good as a checkpoint kept outside.
            self.targets.setdefault(size, []).append((bytes(root), True))
            self.witnessed[name] = max(size, self.witnessed.get(name, 0))

    def _stream(self, high: int) -> None:
        """Check leaves [0, high]."""
        sizes = deque(sorted(self.targets))
        self._check_targets(sizes)  # the empty tree, if a checkpoint claims size 0
        reported = 0
        chunks = self._chunks(high + 1)
        try:
            for low, hashes, problem in chunks:
                if not hashes or low != self.read:  # the chunk before ended early
                    raise _BadLogError("leaf is missing", self.read)
                intact = len(hashes) if problem is None else problem.position - low
                # Roots at checkpoints before the first bad leaf are still checked: a
                # bad range found there starts earlier than this leaf.
                self._extend(hashes[:intact], sizes)
                if problem is not None:
                    raise _BadLogError(problem.problem, problem.position)
                self.read += len(hashes)
                if self.progress is not None and (
                    self.read - reported >= PROGRESS_EVERY or self.read > high
                ):
                    reported = self.read
                    self.progress(self.read, high + 1)
        finally:
            chunks.close()

    def _chunks(self, end: int) -> Generator[tuple[int, list[bytes], LeafProblem | None]]:
        """(low, leaf hashes, first problem) of each chunk of leaves [0, end), in order."""
        if self.pool is not None:
            for chunk in self.pool.chunks(end):
                hashes = [chunk.hashes[at : at + 32] for at in range(0, len(chunk.hashes), 32)]
                problem = chunk.problem
                if self.macs is not None and chunk.macs is not None:
                    problem = first_problem(problem, self.macs.sequence(chunk.low, chunk.macs))
                yield chunk.low, hashes, problem
            return
        reader = LeafReader(self.conn, with_index=self.with_index)
        try:
            size = leaf_scan.CHUNK
            for low in range(0, end, size):
                rows = reader(low, min(low + size, end))
                index = reader if self.with_index else None
                yield low, *check_leaves(low, rows, index, self.macs)
        finally:
            reader.close()

    def _extend(self, hashes: list[bytes], sizes: deque[int]) -> None:
        start = self.tree.size
        done = 0
        while sizes and sizes[0] <= start + len(hashes):
            upto = sizes[0] - start
            self.tree.extend(hashes[done:upto])
            done = upto
            self._check_targets(sizes)
        self.tree.extend(hashes[done:])

    def _check_targets(self, sizes: deque[int]) -> None:
        while sizes and sizes[0] == self.tree.size:
            size = sizes.popleft()
            root = self.tree.root()
            for expected, trusted in self.targets[size]:
                if trusted and expected != root:
                    raise _BadLogError(
                        f"leaves do not match the trusted checkpoint at size {size}",
                        self.trusted_good,
                        size,
                    )
            if any(expected != root for expected, _ in self.targets[size]):
                raise _BadLogError(
                    f"leaves do not match the signed root at size {size}", self.good, size
                )
            self.good = size
            if any(trusted for _, trusted in self.targets[size]):
                self.trusted_good = size

    def _check_end(self) -> None:
        leaves = self.read
        size = 0 if self.latest is None else self.latest.size
        largest_trusted = max((trusted.size for trusted in self.trusted), default=0)
        if leaves < largest_trusted:
            raise _BadLogError(
                f"log has {leaves} leaves, fewer than the trusted checkpoint's {largest_trusted}",
                leaves,
            )
        if leaves < size:
            raise _BadLogError(
                f"log has {leaves} leaves, fewer than its checkpoint's {size}", leaves
            )
        if leaves > size:
            raise _BadLogError("leaf is not covered by any signed checkpoint", size, leaves)
        state = self.conn.execute(
            sa.select(tree_state.c.size, tree_state.c.compact_range).where(
                tree_state.c.id == TREE_STATE_ID
            )
        ).one_or_none()
        if state is None or state[0] != leaves or bytes(state[1]) != self.tree.to_bytes():
            raise _BadLogError("stored tree state does not match the leaves", None)
        if self.latest is not None:
            for name in sorted(self.witnesses):
                if self.witnessed.get(name) != self.latest.size:
                    raise _BadLogError(
                        f"the newest checkpoint (size {self.latest.size}) has no valid "
                        f"cosignature from witness {name}",
                        None,
                    )
