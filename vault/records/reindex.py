"""The online re-index that follows a blind-index key rotation.

`keys rotate-blind-index` adds a new blind-index secret version and makes it active:
new and changed values are indexed under it at once, and searches look a value up under
every version still present (`RecordCipher.search_digests`). This job moves the
existing digests: batch by batch, in id order, it opens each subject's searchable
fields and replaces all its digests with ones under the active version. It keeps no
state but a cursor: stopped at any point, it resumes where digests are still stale.
Once no digest uses an old version, `keys retire-blind-index` removes it, and digests
of that version (in a copy of the database, dead PostgreSQL tuples, WAL or a backup)
can no longer be linked to any value or to any later subject.

`upgrade_seals` is the same kind of pass for sealed values written in format 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vault.errors import DecryptionError
from vault.records.cipher import RecordCipher
from vault.storage import subjects as repo
from vault.storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReindexBatch:
    """What one batch did; `last_id` is where the next one starts ("" when none is left)."""

    reindexed: int
    dropped: int  # subjects without a data key: their stale digests are deleted
    failed: int  # subjects whose fields do not open (tampered): left as they are
    last_id: str


class Reindexer:
    """Re-indexes blind indexes under the active key version, `batch_size` subjects per
    write transaction (rows another PostgreSQL transaction holds are skipped)."""

    def __init__(self, db: Database, sealing: RecordCipher, batch_size: int) -> None:
        self._db = db
        self._sealing = sealing
        self._batch_size = batch_size
        self._after = ""

    def batch(self, after: str = "") -> ReindexBatch:
        """Re-index the next subjects after id `after` that have a stale digest."""
        active = self._sealing.index_version()
        # Only versions still in the key document can have digests: retirement refuses
        # while any remains. With one version (the usual case) there is no query at all.
        stale = [v for v in self._sealing.index_versions() if v != active]
        if not stale:
            return ReindexBatch(0, 0, 0, "")
        reindexed = dropped = failed = 0
        with self._db.write() as conn:
            ids = repo.subjects_to_reindex(conn, stale, after, self._batch_size)
            for row in repo.lock_subjects(conn, ids):
                if row.wrapped_dek is None:
                    repo.replace_blind_indexes(
                        conn, row.meta.id, row.meta.tenant, None, {}, key_version=active
                    )
                    dropped += 1
                    continue
                try:
                    version, digests = self._sealing.reindex(row)
                except DecryptionError:
                    log.warning("re-index: subject %s does not open; left as it is", row.meta.id)
                    failed += 1
                    continue
                repo.replace_blind_indexes(
                    conn, row.meta.id, row.meta.tenant, None, digests, key_version=version
                )
                reindexed += 1
        return ReindexBatch(reindexed, dropped, failed, ids[-1] if ids else "")

    def run_once(self) -> bool:
        """One batch from where the last one stopped (for a `PeriodicTask`): True while
        more may follow; at the end the cursor goes back to the start for the next pass."""
        done = self.batch(self._after)
        self._after = done.last_id
        if done.reindexed or done.dropped:
            log.info("re-indexed %d subjects", done.reindexed + done.dropped)
        return bool(done.last_id)


@dataclass(frozen=True)
class UpgradeBatch:
    """What one seal-upgrade batch did; `last_id` as for `ReindexBatch`."""

    upgraded: int
    failed: int  # subjects whose fields do not open (tampered): left as they are
    last_id: str


def upgrade_seals(db: Database, sealing: RecordCipher, after: str, limit: int) -> UpgradeBatch:
    """Re-seal in format 2 the format-1 values of the next `limit` subjects after id
    `after` (`keys upgrade-seals`): binds their versions and writers and gives them a
    field-set tag without waiting for their next update. Resumable like the re-index;
    a subject updated meanwhile is left to its update, which upgrades it too."""
    upgraded = failed = 0
    with db.write() as conn:
        rows = repo.subjects_after(conn, after, limit)
        for row in rows:
            try:
                blob = sealing.upgraded_blob(row)
            except DecryptionError:
                log.warning("seal upgrade: subject %s does not open; left as it is", row.meta.id)
                failed += 1
                continue
            if blob is not None and repo.set_fields(conn, row.meta.id, row.meta.version, blob):
                upgraded += 1
    return UpgradeBatch(upgraded, failed, rows[-1].meta.id if rows else "")
