"""Subjects' fields blobs from JSON (format 2) to binary (format 3).

Revision ID: fields_blob_binary
Revises: 0001
Create Date: 2026-12-06

The blob's layout is in `vault.storage.fields_blob`. Only the container changes: every
sealed value, its provenance and the field-set tag are copied byte for byte, so no key
is needed and nothing is re-encrypted. Format-1 blobs (no versions, no tag: older than
format 2) are left as they are; the vault still reads them and re-seals them on the
subject's next write, as before. The vault reads formats 2 and 3 alike, so a row this
revision has not reached yet (or one restored from an older backup) still opens.
The downgrade converts format 3 back to format 2, which the code before this revision
reads. A branch of its own off 0001, which created the `fields` column.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from vault.errors import DecryptionError
from vault.storage.fields_blob import (
    BINARY,
    JSON_FORMAT,
    blob_format,
    decode_fields,
    encode_fields,
    encode_json,
)

revision = "fields_blob_binary"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 1_000
_subjects = sa.table("subjects", sa.column("id", sa.String), sa.column("fields", sa.LargeBinary))


def _convert(source: int, encode: Callable[[bytes], bytes]) -> None:
    """Rewrite every blob of format `source` with `encode`, a keyset page at a time."""
    conn = op.get_bind()
    after = ""
    while True:
        page = conn.execute(
            sa.select(_subjects.c.id, _subjects.c.fields)
            .where(_subjects.c.id > after, _subjects.c.fields.is_not(None))
            .order_by(_subjects.c.id)
            .limit(_BATCH)
        ).all()
        if not page:
            return
        changed = []
        for subject_id, blob in page:
            converted = _converted(bytes(blob), source, encode) if blob else None
            if converted is not None:
                changed.append({"row_id": subject_id, "blob": converted})
        if changed:
            conn.execute(
                _subjects.update()
                .where(_subjects.c.id == sa.bindparam("row_id"))
                .values(fields=sa.bindparam("blob")),
                changed,
            )
        after = page[-1][0]


def _converted(blob: bytes, source: int, encode: Callable[[bytes], bytes]) -> bytes | None:
    """`blob` re-encoded when it is of format `source`; None when it is not, or when it
    does not decode (edited by hand: it is left as it is and refused when read, as
    before)."""
    try:
        return encode(blob) if blob_format(blob) == source else None
    except DecryptionError:
        return None


def _to_binary(blob: bytes) -> bytes:
    fields = decode_fields(blob)
    return encode_fields(fields, fields.tag)


def _to_json(blob: bytes) -> bytes:
    fields = decode_fields(blob)
    return encode_json(fields, fields.tag)


def upgrade() -> None:
    _convert(JSON_FORMAT, _to_binary)


def downgrade() -> None:
    _convert(BINARY, _to_json)
