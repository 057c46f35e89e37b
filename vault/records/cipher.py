"""Turning normalized values into stored rows and back: the only place records meet crypto."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vault import telemetry
from vault.clock import from_micros
from vault.crypto import (
    FieldProvenance,
    FieldSealer,
    KeyRing,
    WrappedDataKey,
    new_subject_id,
)
from vault.errors import DecryptionError, FailedPreconditionError
from vault.storage.fields_blob import StoredFields, encode_fields, encode_written_together
from vault.storage.subjects import SubjectRow
from vault.subject import FieldValue, StoredField, SubjectMeta, SubjectState

_PROPOSAL = "request:"
"""The sealed name of a request's proposal (never a dictionary field's name)."""


def _as_written(value: str) -> str:
    return value


@dataclass(frozen=True)
class PreparedSubject:
    """A new subject ready to insert: its row and its blind-index rows."""

    subject_id: str
    row: dict[str, Any]
    index_rows: list[dict[str, Any]]

    def meta(self, tenant: str, now: datetime) -> SubjectMeta:
        return SubjectMeta(
            id=self.subject_id,
            tenant=tenant,
            version=1,
            state=SubjectState.ACTIVE,
            created_at=now,
            updated_at=now,
            last_activity_at=now,
            legal_hold=False,
        )


class RecordCipher:
    """Seals, opens and indexes a subject's fields with its own data key."""

    def __init__(self, keyring: KeyRing, searchable: Mapping[str, Callable[[str], str]]) -> None:
        """`searchable`: each searchable field and its comparison form
        (`DataDictionary.index_forms`), which its blind index is computed over."""
        self._keyring = keyring
        self._searchable = frozenset(searchable)
        self._forms = dict(searchable)

    def prepare_new(
        self, tenant: str, writer: str, values: Mapping[str, str], now_us: int
    ) -> PreparedSubject:
        """A fresh subject: random id, new data key, every value sealed and indexed."""
        subject_id = new_subject_id()
        with telemetry.span("crypto.seal", **{"customer_vault.fields": len(values)}):
            dek, wrapped = self._keyring.new_data_key()
            sealer = self._keyring.sealer(dek, tenant, subject_id)
            sealed = sealer.seal_new(values, FieldProvenance(1, writer, now_us))
            tag = sealer.seal_new_field_set(sealed)
            blob = encode_written_together(sealed, writer, now_us, 1, tag)
            index_rows = self.index_rows(tenant, subject_id, values)
        row = {
            "id": subject_id,
            "tenant": tenant,
            "version": 1,
            "state": SubjectState.ACTIVE.value,
            "created_at": now_us,
            "updated_at": now_us,
            "last_activity_at": now_us,
            "legal_hold": False,
            "kek_version": wrapped.kek_version,
            "wrapped_dek": wrapped.blob,
            "dek_id": 1,
            "fields": blob,
        }
        return PreparedSubject(subject_id, row, index_rows)

    def index_rows(
        self, tenant: str, subject_id: str, values: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Blind-index rows for the searchable `values`, under the active key version."""
        version, digests = self.index_digests(tenant, values)
        return [
            {
                "tenant": tenant,
                "field": name,
                "digest": digest,
                "subject_id": subject_id,
                "key_version": version,
            }
            for name, digest in digests.items()
        ]

    def index_digests(self, tenant: str, values: Mapping[str, str]) -> tuple[int, dict[str, bytes]]:
        """The active blind-index key version and the digests of the searchable `values`
        under it (one indexer for all, so a rotation mid-call cannot mix versions)."""
        indexer = self._keyring.blind_indexer()
        digests = {
            name: indexer.compute(tenant, name, self._forms[name](value))
            for name, value in values.items()
            if name in self._searchable
        }
        return indexer.version, digests

    def index_version(self) -> int:
        """The active blind-index key version (new digests are made under it)."""
        return self._keyring.blind_indexer().version

    def index_versions(self) -> tuple[int, ...]:
        """Every blind-index key version present, ascending."""
        return self._keyring.blind_index_versions()

    def search_digests(self, tenant: str, field: str, normalized: str) -> list[tuple[int, bytes]]:
        """(key version, digest) of a searched value under every blind-index key version
        present, the active one first: during a re-index a subject may still be indexed
        under the old version.

        Digests are over the field's comparison form. A digest stored before that form
        existed (a national id indexed with its separators) is also found through the
        searched value as written, under each version, until the re-index that follows
        a blind-index rotation replaces it (docs/operations.md, "Key rotation")."""
        compared = self._forms.get(field, _as_written)(normalized)
        forms = [compared] if compared == normalized else [compared, normalized]
        active = self._keyring.blind_indexer()
        found = [(active.version, active.compute(tenant, field, form)) for form in forms]
        for version in self._keyring.blind_index_versions():
            if version != active.version:
                indexer = self._keyring.blind_indexer(version)
                found += [(version, indexer.compute(tenant, field, form)) for form in forms]
        return found

    def reindex(self, row: SubjectRow) -> tuple[int, dict[str, bytes]]:
        """The subject's searchable fields re-indexed under the active key version (their
        values decrypted for it); errors as `open`."""
        opened = self.open(row, [n for n in row.fields if n in self._searchable])
        return self.index_digests(row.meta.tenant, {n: v.value for n, v in opened.items()})

    def is_searchable(self, field: str) -> bool:
        return field in self._searchable

    def forget_key(self, row: SubjectRow) -> None:
        """Drop the subject's data key from the key ring's cache (it is being shredded)."""
        self.forget_wrapped(row.kek_version, row.wrapped_dek)

    def forget_wrapped(self, kek_version: int | None, wrapped_dek: bytes | None) -> None:
        """Drop a data key from the key ring's cache, by its wrapped form."""
        if wrapped_dek is not None and kek_version is not None:
            self._keyring.forget(WrappedDataKey(kek_version, wrapped_dek))

    def _dek(self, row: SubjectRow) -> bytes:
        return self._unwrap(row.kek_version, row.wrapped_dek)

    def _unwrap(self, kek_version: int | None, wrapped_dek: bytes | None) -> bytes:
        if wrapped_dek is None or kek_version is None:
            raise FailedPreconditionError("subject has no personal data left")
        return self._keyring.unwrap(WrappedDataKey(kek_version, wrapped_dek))

    def open_values(
        self,
        tenant: str,
        subject_id: str,
        key: tuple[int | None, bytes | None, int],
        fields: StoredFields,
        names: Iterable[str],
    ) -> dict[str, str]:
        """The named fields' values alone, for bulk work that needs no provenance (the
        retention job reads thousands of subjects a batch). `key` is the row's
        (kek_version, wrapped_dek, dek_id); errors as `open`."""
        wanted = [n for n in names if n in fields]
        if not wanted:
            return {}
        kek_version, wrapped_dek, dek_id = key
        dek = self._unwrap(kek_version, wrapped_dek)
        sealer = self._keyring.sealer(dek, tenant, subject_id, dek_id)
        _check_field_set(sealer, fields)
        return {name: _open(sealer, name, fields[name]).decode() for name in wanted}

    def open(self, row: SubjectRow, names: Iterable[str]) -> dict[str, FieldValue]:
        """Decrypt the named fields the subject has (absent ones are skipped).

        `DecryptionError` if any named value, or the set of the subject's fields and
        their versions, is not as the vault sealed it (moved, rolled back, provenance
        edited).
        """
        wanted = [n for n in names if n in row.fields]
        if not wanted:
            return {}
        with telemetry.span("crypto.open", **{"customer_vault.fields": len(wanted)}):
            sealer = self._keyring.sealer(self._dek(row), row.meta.tenant, row.meta.id, row.dek_id)
            _check_field_set(sealer, row.fields)
            opened = {}
            for name in wanted:
                stored = row.fields[name]
                opened[name] = FieldValue(
                    _open(sealer, name, stored).decode(),
                    stored.written_by,
                    from_micros(stored.written_at),
                )
        return opened

    def sealed_update(
        self,
        row: SubjectRow,
        values: Mapping[str, str],
        cleared: Iterable[str],
        *,
        writer: str,
        now_us: int,
        new_version: int,
    ) -> bytes:
        """The fields blob after setting `values` and clearing `cleared`, written by
        `writer` as subject version `new_version`, under the subject's data key.

        The stored set is checked first, so an update never re-tags a rolled-back value;
        values still in format 1 are re-sealed in format 2 with their own provenance.
        """
        with telemetry.span("crypto.seal", **{"customer_vault.fields": len(values)}):
            sealer = self._keyring.sealer(self._dek(row), row.meta.tenant, row.meta.id, row.dek_id)
            _check_field_set(sealer, row.fields)
            fields = {
                name: _upgraded(sealer, name, stored, row.meta.version)
                for name, stored in row.fields.items()
            }
            fields.update(_sealed(sealer, values, FieldProvenance(new_version, writer, now_us)))
            for name in cleared:
                fields.pop(name, None)
            versions = {name: f.version or new_version for name, f in fields.items()}
            return encode_fields(fields, sealer.seal_field_set(versions))

    def seal_proposal(
        self, row: SubjectRow, request_id: str, values: Mapping[str, str], *, by: str, at_us: int
    ) -> bytes:
        """A data-subject request's proposed values (canonical JSON), sealed under the
        subject's data key and bound to the request id, its author and its time: an
        erasure shreds them with the rest."""
        sealer = self._keyring.sealer(self._dek(row), row.meta.tenant, row.meta.id, row.dek_id)
        plain = json.dumps(dict(values), sort_keys=True, ensure_ascii=False).encode()
        return sealer.seal(_PROPOSAL + request_id, plain, FieldProvenance(1, by, at_us))

    def open_proposal(
        self, row: SubjectRow, request_id: str, sealed: bytes, *, by: str, at_us: int
    ) -> dict[str, str]:
        """The values `seal_proposal` sealed; `DecryptionError` if anything differs."""
        sealer = self._keyring.sealer(self._dek(row), row.meta.tenant, row.meta.id, row.dek_id)
        opened = json.loads(
            sealer.open(_PROPOSAL + request_id, sealed, FieldProvenance(1, by, at_us))
        )
        return {str(k): str(v) for k, v in opened.items()}

    def upgraded_blob(self, row: SubjectRow) -> bytes | None:
        """The subject's fields blob with every format-1 value re-sealed in format 2
        (as the subject's current version, with its own writer and time) and a field-set
        tag; None when there is nothing to upgrade. Errors as `open`."""
        if row.fields.tag is not None or not row.fields:
            return None
        sealer = self._keyring.sealer(self._dek(row), row.meta.tenant, row.meta.id, row.dek_id)
        _check_field_set(sealer, row.fields)
        fields = {
            name: _upgraded(sealer, name, stored, row.meta.version)
            for name, stored in row.fields.items()
        }
        versions = dict.fromkeys(fields, row.meta.version)
        return encode_fields(fields, sealer.seal_field_set(versions))


def _sealed(
    sealer: FieldSealer, values: Mapping[str, str], provenance: FieldProvenance
) -> dict[str, StoredField]:
    return {
        name: StoredField(
            sealer.seal(name, value.encode(), provenance),
            provenance.written_by,
            provenance.written_at,
            provenance.version,
        )
        for name, value in values.items()
    }


def _provenance(stored: StoredField) -> FieldProvenance | None:
    if stored.version is None:
        return None
    return FieldProvenance(stored.version, stored.written_by, stored.written_at)


def _open(sealer: FieldSealer, name: str, stored: StoredField) -> bytes:
    return sealer.open(name, stored.sealed, _provenance(stored))


def _check_field_set(sealer: FieldSealer, fields: StoredFields) -> None:
    """A format-2 blob: every value has a version and the tag covers them all. A
    format-1 blob: no value has one (a format-2 value never opens without it)."""
    if fields.tag is None:
        if any(v is not None for v in fields.versions.values()):
            raise DecryptionError
        return
    versions = {}
    for name, version in fields.versions.items():
        if version is None:
            raise DecryptionError
        versions[name] = version
    sealer.check_field_set(versions, fields.tag)


def _upgraded(sealer: FieldSealer, name: str, stored: StoredField, version: int) -> StoredField:
    """`stored` in format 2 (a format-1 value re-sealed, as subject version `version`)."""
    if stored.version is not None:
        return stored
    provenance = FieldProvenance(version, stored.written_by, stored.written_at)
    sealed = sealer.seal(name, sealer.open(name, stored.sealed), provenance)
    return StoredField(sealed, stored.written_by, stored.written_at, version)
