"""Turning normalized values into stored rows and back: the only place records meet crypto."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vault import telemetry
from vault.clock import from_micros
from vault.crypto import KeyRing, WrappedDataKey, new_subject_id
from vault.errors import FailedPreconditionError
from vault.records.models import FieldValue, StoredField, SubjectMeta, SubjectState
from vault.storage.subjects import SubjectRow, encode_fields


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


class SubjectSealing:
    """Seals, opens and indexes a subject's fields with its own data key."""

    def __init__(self, keyring: KeyRing, searchable: Iterable[str]) -> None:
        self._keyring = keyring
        self._searchable = frozenset(searchable)

    def prepare_new(
        self, tenant: str, writer: str, values: Mapping[str, str], now_us: int
    ) -> PreparedSubject:
        """A fresh subject: random id, new data key, every value sealed and indexed."""
        subject_id = new_subject_id()
        with telemetry.span("crypto.seal", **{"customervault.fields": len(values)}):
            dek, wrapped = self._keyring.new_data_key()
            sealer = self._keyring.sealer(dek, tenant, subject_id)
            stored = {
                name: StoredField(sealer.seal(name, value.encode()), writer, now_us)
                for name, value in values.items()
            }
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
            "fields": encode_fields(stored),
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
            name: indexer.compute(tenant, name, value)
            for name, value in values.items()
            if name in self._searchable
        }
        return indexer.version, digests

    def index_version(self) -> int:
        """The active blind-index key version (new digests are made under it)."""
        return self._keyring.blind_indexer().version

    def search_digests(self, tenant: str, field: str, normalized: str) -> list[tuple[int, bytes]]:
        """(key version, digest) of a searched value under every blind-index key version
        present, the active one first: during a re-index a subject may still be indexed
        under the old version."""
        active = self._keyring.blind_indexer()
        found = [(active.version, active.compute(tenant, field, normalized))]
        for version in self._keyring.blind_index_versions():
            if version != active.version:
                indexer = self._keyring.blind_indexer(version)
                found.append((version, indexer.compute(tenant, field, normalized)))
        return found

    def reindex(self, row: SubjectRow) -> tuple[int, dict[str, bytes]]:
        """The subject's searchable fields re-indexed under the active key version (their
        values decrypted for it); errors as `open`."""
        opened = self.open(row, [n for n in row.fields if n in self._searchable])
        return self.index_digests(row.meta.tenant, {n: v.value for n, v in opened.items()})

    def is_searchable(self, field: str) -> bool:
        return field in self._searchable

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
        fields: Mapping[str, StoredField],
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
        return {name: sealer.open(name, fields[name].sealed).decode() for name in wanted}

    def open(self, row: SubjectRow, names: Iterable[str]) -> dict[str, FieldValue]:
        """Decrypt the named fields the subject has (absent ones are skipped)."""
        wanted = [n for n in names if n in row.fields]
        if not wanted:
            return {}
        with telemetry.span("crypto.open", **{"customervault.fields": len(wanted)}):
            sealer = self._keyring.sealer(self._dek(row), row.meta.tenant, row.meta.id, row.dek_id)
            opened = {}
            for name in wanted:
                stored = row.fields[name]
                opened[name] = FieldValue(
                    sealer.open(name, stored.sealed).decode(),
                    stored.written_by,
                    from_micros(stored.written_at),
                )
        return opened

    def reseal(
        self, row: SubjectRow, values: Mapping[str, str], writer: str, now_us: int
    ) -> dict[str, StoredField]:
        """Sealed versions of `values` under the subject's existing data key."""
        with telemetry.span("crypto.seal", **{"customervault.fields": len(values)}):
            sealer = self._keyring.sealer(self._dek(row), row.meta.tenant, row.meta.id, row.dek_id)
            return {
                name: StoredField(sealer.seal(name, value.encode()), writer, now_us)
                for name, value in values.items()
            }
