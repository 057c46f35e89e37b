"""Crypto-shredding: where a subject's personal data stops existing.

A subject is shredded by dropping its wrapped data key and every sealed field (without
the key the sealed bytes could not be opened anyway) together with the blind indexes
and tokens that could still point at a value. The row stays as a tombstone, because
audit entries and consent receipts name it. Two paths shred, both through here and
both in the caller's write transaction, which also writes the audit entry:

- erasure (`erase`): one subject, compare-and-set on its version, state `erased`;
- anonymization by the retention job (`anonymize`): a batch of subjects still pending
  anonymization and not on hold, state `anonymized`, their times cut to the day.

After the transaction commits, `Database.after_shred` scrubs the freed pages from the
SQLite file and its WAL (docs/operations.md, "Crypto-shredded subjects and backups").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.storage.tables import blind_indexes, subjects, tokens
from vault.subject import SubjectState

DAY_US = 86_400 * 1_000_000
_SHREDDED: dict[str, Any] = {"kek_version": None, "wrapped_dek": None, "fields": None}
"""The columns a shred empties: the wrapped data key and the sealed fields."""


def erase(conn: Connection, subject_id: str, expected_version: int, now_us: int) -> bool:
    """Shred one subject and mark it erased; False (nothing changed) when someone else
    changed the row since `expected_version`."""
    result = conn.execute(
        subjects.update()
        .where(subjects.c.id == subject_id, subjects.c.version == expected_version)
        .values(
            version=expected_version + 1,
            state=SubjectState.ERASED.value,
            updated_at=now_us,
            **_SHREDDED,
        )
    )
    if result.rowcount != 1:
        return False
    delete_links(conn, [subject_id])
    return True


def anonymize(conn: Connection, ids: Sequence[str], now_us: int) -> int:
    """Shred the subjects of `ids` still pending anonymization and not on hold; how many
    were. Their times are cut to the day. The caller deletes their links (`delete_links`)
    once it has checked the count."""
    result = conn.execute(
        subjects.update()
        .where(
            subjects.c.id.in_(list(ids)),
            subjects.c.state == SubjectState.PENDING_ANONYMIZATION.value,
            subjects.c.legal_hold == sa.false(),
        )
        .values(
            state=SubjectState.ANONYMIZED.value,
            version=subjects.c.version + 1,
            updated_at=now_us - now_us % DAY_US,
            created_at=subjects.c.created_at - subjects.c.created_at % DAY_US,
            last_activity_at=subjects.c.last_activity_at - subjects.c.last_activity_at % DAY_US,
            **_SHREDDED,
        )
    )
    return int(result.rowcount)


def delete_links(conn: Connection, ids: Sequence[str]) -> None:
    """Blind indexes and tokens: each one could still point at a value."""
    wanted = list(ids)
    conn.execute(blind_indexes.delete().where(blind_indexes.c.subject_id.in_(wanted)))
    conn.execute(tokens.delete().where(tokens.c.subject_id.in_(wanted)))
