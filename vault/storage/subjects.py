"""Subject rows and blind indexes: the repository the record service writes through."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vault.clock import from_micros
from vault.storage.bulk import insert_rows
from vault.storage.fields_blob import StoredFields, decode_fields, encode_fields
from vault.storage.tables import blind_indexes, subjects, tokens
from vault.subject import SubjectMeta, SubjectState

__all__ = ["StoredFields", "SubjectRow", "decode_fields", "encode_fields"]


@dataclass(frozen=True)
class SubjectRow:
    """A subject row as stored: metadata, wrapped data key and sealed fields."""

    meta: SubjectMeta
    kek_version: int | None
    wrapped_dek: bytes | None
    dek_id: int
    fields: StoredFields


def subject_row(r: Any) -> SubjectRow:
    """A `SubjectRow` from a result row carrying the `subjects` columns by name."""
    return _row(r)


def _row(r: Any) -> SubjectRow:
    meta = SubjectMeta(
        id=r.id,
        tenant=r.tenant,
        version=r.version,
        state=SubjectState(r.state),
        created_at=from_micros(r.created_at),
        updated_at=from_micros(r.updated_at),
        last_activity_at=from_micros(r.last_activity_at),
        legal_hold=bool(r.legal_hold),
    )
    return SubjectRow(meta, r.kek_version, r.wrapped_dek, r.dek_id, decode_fields(r.fields))


def insert_subjects(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert prepared subject rows (column name -> value) in one bulk insert."""
    insert_rows(conn, subjects, rows)


def insert_blind_indexes(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert (tenant, field, digest, subject_id, key_version) rows in one bulk insert."""
    insert_rows(conn, blind_indexes, rows)


def get(conn: Connection, subject_id: str, *, for_update: bool = False) -> SubjectRow | None:
    """One subject row, locked for update on PostgreSQL when asked."""
    query = sa.select(subjects).where(subjects.c.id == subject_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = conn.execute(query).first()
    return _row(found) if found is not None else None


def get_many(conn: Connection, subject_ids: Sequence[str]) -> list[SubjectRow]:
    """Rows for the given ids, in the given order (missing ids are skipped)."""
    if not subject_ids:
        return []
    found = {
        r.id: _row(r)
        for r in conn.execute(sa.select(subjects).where(subjects.c.id.in_(subject_ids)))
    }
    return [found[i] for i in subject_ids if i in found]


def update_row(
    conn: Connection, subject_id: str, expected_version: int, values: Mapping[str, Any]
) -> bool:
    """Compare-and-set on the version: False when someone else changed the row first."""
    result = conn.execute(
        subjects.update()
        .where(subjects.c.id == subject_id, subjects.c.version == expected_version)
        .values(**values)
    )
    return result.rowcount == 1


def find_ids_page(
    conn: Connection,
    tenant: str,
    field: str,
    digests: Sequence[tuple[int, bytes]],
    *,
    after: str,
    limit: int,
) -> list[str]:
    """Subject ids whose blind index for `field` equals one of `digests`, each given as
    (key version, digest), one keyset page: at most `limit` ids greater than `after`, in
    order. During a re-index a value is looked up under every version."""
    if not digests:
        return []
    matches = sa.or_(
        *(
            sa.and_(blind_indexes.c.key_version == version, blind_indexes.c.digest == digest)
            for version, digest in digests
        )
    )
    query = (
        sa.select(blind_indexes.c.subject_id)
        .where(
            blind_indexes.c.tenant == tenant,
            blind_indexes.c.field == field,
            matches,
            blind_indexes.c.subject_id > after,
        )
        .distinct()
        .order_by(blind_indexes.c.subject_id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def replace_blind_indexes(
    conn: Connection,
    subject_id: str,
    tenant: str,
    fields: Iterable[str] | None,
    digests: Mapping[str, bytes],
    *,
    key_version: int,
) -> None:
    """Drop the subject's indexes for `fields` (None: all of them) and insert the new
    digests, computed under blind-index key `key_version`."""
    query = blind_indexes.delete().where(blind_indexes.c.subject_id == subject_id)
    if fields is not None:
        names = list(fields)
        if not names:
            return
        query = query.where(blind_indexes.c.field.in_(names))
    conn.execute(query)
    insert_blind_indexes(
        conn,
        [
            {
                "tenant": tenant,
                "field": f,
                "digest": d,
                "subject_id": subject_id,
                "key_version": key_version,
            }
            for f, d in digests.items()
        ],
    )


def tenant_batch(
    conn: Connection, tenant: str, states: Sequence[str], after: str, limit: int
) -> list[SubjectRow]:
    """The next `limit` subjects of a tenant after id `after` (keyset paging: flat memory)."""
    query = (
        sa.select(subjects)
        .where(subjects.c.tenant == tenant, subjects.c.state.in_(states), subjects.c.id > after)
        .order_by(subjects.c.id)
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(query)]


def count_by_kek_version(conn: Connection) -> dict[int | None, int]:
    """How many data keys each KEK version wraps (None: crypto-shredded subjects)."""
    query = sa.select(subjects.c.kek_version, sa.func.count()).group_by(subjects.c.kek_version)
    return {row[0]: row[1] for row in conn.execute(query)}


def stale_wrapped_keys(
    conn: Connection, active_version: int, limit: int
) -> list[tuple[str, int, bytes]]:
    """(id, kek_version, wrapped_dek) of subjects whose data key is not under `active_version`."""
    query = (
        sa.select(subjects.c.id, subjects.c.kek_version, subjects.c.wrapped_dek)
        .where(subjects.c.kek_version.is_not(None), subjects.c.kek_version != active_version)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [(i, v, w) for i, v, w in conn.execute(query)]


def set_wrapped_key(
    conn: Connection, subject_id: str, old_version: int, new_version: int, wrapped: bytes
) -> bool:
    """Store a re-wrapped data key unless the row changed meanwhile (e.g. was erased)."""
    result = conn.execute(
        subjects.update()
        .where(subjects.c.id == subject_id, subjects.c.kek_version == old_version)
        .values(kek_version=new_version, wrapped_dek=wrapped)
    )
    return result.rowcount == 1


def count_blind_indexes_by_version(conn: Connection) -> dict[int, int]:
    """How many stored digests each blind-index key version made."""
    query = sa.select(blind_indexes.c.key_version, sa.func.count()).group_by(
        blind_indexes.c.key_version
    )
    return {row[0]: row[1] for row in conn.execute(query)}


def subjects_to_reindex(
    conn: Connection, versions: Collection[int], after: str, limit: int
) -> list[str]:
    """Ids after `after` (in id order, at most `limit`) of subjects with a digest under
    one of `versions`; one index range per version (key_version, subject_id)."""
    found: set[str] = set()
    for version in versions:
        query = (
            sa.select(blind_indexes.c.subject_id)
            .where(blind_indexes.c.key_version == version, blind_indexes.c.subject_id > after)
            .order_by(blind_indexes.c.subject_id)
            .limit(limit)
        )
        found.update(conn.execute(query).scalars())
    return sorted(found)[:limit]


def lock_subjects(conn: Connection, subject_ids: Sequence[str]) -> list[SubjectRow]:
    """Rows for `subject_ids`, locked for update on PostgreSQL; rows another transaction
    holds are skipped (SKIP LOCKED) and left for a later batch."""
    if not subject_ids:
        return []
    query = sa.select(subjects).where(subjects.c.id.in_(subject_ids)).order_by(subjects.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [_row(r) for r in conn.execute(query)]


def subjects_after(conn: Connection, after: str, limit: int) -> list[SubjectRow]:
    """The next `limit` subjects with sealed fields after id `after`, in id order, locked
    for update on PostgreSQL (rows another transaction holds are skipped)."""
    query = (
        sa.select(subjects)
        .where(subjects.c.id > after, subjects.c.fields.is_not(None))
        .order_by(subjects.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [_row(r) for r in conn.execute(query)]


def set_fields(conn: Connection, subject_id: str, version: int, blob: bytes) -> bool:
    """Store a re-sealed fields blob unless the subject changed meanwhile (its version
    is not bumped: the values are the same)."""
    result = conn.execute(
        subjects.update()
        .where(subjects.c.id == subject_id, subjects.c.version == version)
        .values(fields=blob)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class TokenRow:
    """What a reversible token stands for: one field of one subject."""

    subject_id: str
    field: str
    kind: str


def insert_token(
    conn: Connection,
    *,
    tenant: str,
    token: str,
    subject_id: str,
    field: str,
    kind: str,
    now_us: int,
    key_version: int = 1,
) -> None:
    """Record a token minted under token-key `key_version`; recording the same
    deterministic token twice is a no-op."""
    key = (tokens.c.tenant == tenant, tokens.c.token == token, tokens.c.subject_id == subject_id)
    if conn.execute(sa.select(tokens.c.token).where(*key)).first() is not None:
        return
    conn.execute(
        tokens.insert().values(
            tenant=tenant,
            token=token,
            subject_id=subject_id,
            field=field,
            kind=kind,
            created_at=now_us,
            key_version=key_version,
        )
    )


def find_token(
    conn: Connection, tenant: str, token: str, key_versions: Collection[int] | None = None
) -> list[TokenRow]:
    """The subjects and field a token of `tenant` stands for (several for a shared value);
    with `key_versions`, only tokens minted under one of those token-key versions."""
    query = (
        sa.select(tokens.c.subject_id, tokens.c.field, tokens.c.kind)
        .where(tokens.c.tenant == tenant, tokens.c.token == token)
        .order_by(tokens.c.subject_id)
    )
    if key_versions is not None:
        query = query.where(tokens.c.key_version.in_(list(key_versions)))
    return [TokenRow(r.subject_id, r.field, r.kind) for r in conn.execute(query)]


def delete_tokens(conn: Connection, subject_id: str, fields: Iterable[str] | None = None) -> None:
    """Forget the subject's tokens (all of them, or those of `fields`)."""
    query = tokens.delete().where(tokens.c.subject_id == subject_id)
    if fields is not None:
        query = query.where(tokens.c.field.in_(list(fields)))
    conn.execute(query)


def count_tokens_by_version(conn: Connection) -> dict[int, int]:
    """How many recorded tokens each token-key version minted."""
    query = sa.select(tokens.c.key_version, sa.func.count()).group_by(tokens.c.key_version)
    return {row[0]: row[1] for row in conn.execute(query)}


def delete_tokens_of_version(conn: Connection, key_version: int) -> int:
    """Forget every token minted under `key_version`; returns how many."""
    result = conn.execute(tokens.delete().where(tokens.c.key_version == key_version))
    return int(result.rowcount)
