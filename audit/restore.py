"""After a restore: which erasures to re-apply, taken only from entries a witness vouches for.

A restored database lacks the entries written after its restore point; the exported
journal (`audit export --format jsonl`, kept outside the database) has them. Re-applying
an erasure because a journal line says so would let anyone who can edit that file (or
the database) erase or resurrect whom they like. So the journal's entries are only
believed once the leaves they make, together with the restored database's own, hash to
the root of a checkpoint a configured witness cosigned; with the MAC key, each erasure
entry's MAC must verify too. Entries beyond that checkpoint (not yet witnessed) are not
listed, and are counted, so the operator knows what is left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.checkpoint import Checkpoint
from audit.db import snapshot
from audit.entry import AuditEntry
from audit.errors import AuditError, InvalidEntryError
from audit.mac import EntryMac, leaf_data
from audit.merkle import CompactRange, leaf_hash
from audit.tables import entries as entries_table

ERASURE_ACTIONS = ("EraseSubject", "EraseSubjectData", "AnonymizeSubject")
_CHUNK = 1 << 16


class JournalError(AuditError):
    """The journal and the restored database do not make the witnessed tree."""


@dataclass(frozen=True)
class Erasure:
    """One erasure to re-apply: proven part of the witnessed tree."""

    leaf_index: int
    time: datetime
    action: str
    tenant: str
    subject_id: str


@dataclass(frozen=True)
class ErasureList:
    """What `witnessed_erasures` found: the erasures, and what it had to leave out."""

    erasures: tuple[Erasure, ...]
    witnessed_size: int
    unwitnessed: int  # journal entries beyond the witnessed checkpoint (or pending)


@dataclass(frozen=True)
class _JournalEntry:
    entry: AuditEntry
    data: bytes
    mac: bytes | None


def _parse_journal(lines: Iterable[str]) -> tuple[dict[int, _JournalEntry], int]:
    found: dict[int, _JournalEntry] = {}
    pending = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record: dict[str, Any] = json.loads(line)
            index = record.pop("leaf_index")
            record.pop("id", None)
            mac_hex = record.pop("mac", None)
            entry = AuditEntry.from_dict(record)
            mac = None if mac_hex is None else bytes.fromhex(mac_hex)
        except (ValueError, KeyError, TypeError, InvalidEntryError):
            raise JournalError(f"journal line {number} is not an exported audit entry") from None
        if index is None:
            pending += 1
            continue
        if not isinstance(index, int) or index < 0 or index in found:
            raise JournalError(f"journal line {number} has a bad or repeated leaf index")
        found[index] = _JournalEntry(entry, entry.canonical_bytes(), mac)
    return found, pending


def witnessed_erasures(
    engine: Engine,
    journal: Iterable[str],
    witnessed: Checkpoint,
    *,
    since: datetime,
    mac: EntryMac | None = None,
) -> ErasureList:
    """The successful erasures at or after `since` in the journal, once the journal and the
    database's leaves are proven to make `witnessed` (a checkpoint whose cosignature the
    caller checked). Raises `JournalError` when they do not, naming the first gap."""
    found, pending = _parse_journal(journal)
    tree = CompactRange()
    with snapshot(engine) as conn:
        for low in range(0, witnessed.size, _CHUNK):
            high = min(low + _CHUNK, witnessed.size)
            stored = dict(
                conn.execute(
                    sa.select(entries_table.c.leaf_index, entries_table.c.leaf_hash).where(
                        entries_table.c.leaf_index >= low, entries_table.c.leaf_index < high
                    )
                ).all()
            )
            hashes = []
            for index in range(low, high):
                item = found.get(index)
                if item is not None:
                    hashes.append(leaf_hash(leaf_data(item.data, item.mac)))
                elif index in stored:
                    hashes.append(bytes(stored[index]))
                else:
                    raise JournalError(f"leaf {index} is in neither the journal nor the database")
            tree.extend(hashes)
    if tree.root() != witnessed.root_hash:
        raise JournalError(
            "the journal and the database do not make the witnessed tree: nothing in the "
            "journal can be trusted"
        )
    erasures = []
    for index in sorted(i for i in found if i < witnessed.size):
        item = found[index]
        e = item.entry
        if e.action not in ERASURE_ACTIONS or e.result_code != "OK" or e.time < since:
            continue
        if mac is not None and not mac.is_valid(item.data, item.mac):
            raise JournalError(f"the erasure entry at leaf {index} has no valid MAC")
        erasures += [Erasure(index, e.time, e.action, e.tenant, s) for s in e.subject_ids]
    beyond = sum(1 for i in found if i >= witnessed.size) + pending
    return ErasureList(tuple(erasures), witnessed.size, beyond)
