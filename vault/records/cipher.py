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
from vault.storage.subjects import SubjectRow, encode_fields
from vault.subject import FieldValue, StoredField, SubjectMeta, SubjectState


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

    def __init__(self, keyring: KeyRing, searchable: Iterable[str]) -> None:
        self._keyring = keyring
        self._indexer = keyring.blind_indexer()
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
        return [
            {
                "tenant": tenant,
                "field": name,
                "digest": self._indexer.compute(tenant, name, value),
                "subject_id": subject_id,
            }
            for name, value in values.items()
            if name in self._searchable
        ]

    def digest(self, tenant: str, field: str, normalized: str) -> bytes:
        return self._indexer.compute(tenant, field, normalized)

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
