"""Domain objects <-> protobuf messages. No logic beyond the mapping."""

from __future__ import annotations

from datetime import UTC, datetime

from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from google.protobuf import timestamp_pb2

from vault.errors import FieldViolation, InvalidArgumentError
from vault.records.rendering import DisclosedField, Disclosure, SubjectView
from vault.subject import SubjectMeta, SubjectState

_STATE_TO_PB = {
    SubjectState.ACTIVE: pb.SUBJECT_STATE_ACTIVE,
    SubjectState.RESTRICTED: pb.SUBJECT_STATE_RESTRICTED,
    SubjectState.PENDING_ANONYMIZATION: pb.SUBJECT_STATE_PENDING_ANONYMIZATION,
    SubjectState.ANONYMIZED: pb.SUBJECT_STATE_ANONYMIZED,
    SubjectState.ERASED: pb.SUBJECT_STATE_ERASED,
}
STATE_FROM_PB: dict[int, SubjectState] = {int(v): k for k, v in _STATE_TO_PB.items()}

_DISCLOSURE_TO_PB = {
    Disclosure.CLEAR: pb.DISCLOSURE_CLEAR,
    Disclosure.MASKED: pb.DISCLOSURE_MASKED,
    Disclosure.PSEUDONYMIZED: pb.DISCLOSURE_PSEUDONYMIZED,
    Disclosure.TOKENIZED: pb.DISCLOSURE_TOKENIZED,
    Disclosure.GENERALIZED: pb.DISCLOSURE_GENERALIZED,
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the Timestamp's own limit


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """`Timestamp.FromDatetime` (a naive moment counts as UTC) by integer arithmetic:
    protobuf's own goes through a struct_time and timegm, several times slower."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    if not 0 <= seconds <= _MAX_SECONDS:  # before 1970 or past 9999: protobuf's checks
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(moment)
        return ts
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=delta.microseconds * 1000)


def when(ts: timestamp_pb2.Timestamp, present: bool, field: str) -> datetime | None:
    """The moment a request names, or None; out-of-range seconds or nanos are bad input."""
    if not present:
        return None
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except ValueError as e:
        raise InvalidArgumentError([FieldViolation(field, "not a valid timestamp")]) from e


def meta(m: SubjectMeta) -> pb.SubjectMeta:
    return pb.SubjectMeta(
        subject_id=m.id,
        tenant=m.tenant,
        version=m.version,
        state=_STATE_TO_PB[m.state],
        created_at=timestamp(m.created_at),
        updated_at=timestamp(m.updated_at),
        last_activity_at=timestamp(m.last_activity_at),
        legal_hold=m.legal_hold,
    )


def view(v: SubjectView) -> pb.SubjectView:
    # Fields written together share their provenance: one Provenance message each.
    provenances: dict[tuple[str, datetime], pb.Provenance] = {}
    return pb.SubjectView(
        meta=meta(v.meta),
        view=v.view,
        fields={name: field_value(f, provenances) for name, f in v.fields.items()},
        withheld=[pb.WithheldField(field=n, reason=r) for n, r in sorted(v.withheld.items())],
    )


def field_value(
    f: DisclosedField, provenances: dict[tuple[str, datetime], pb.Provenance] | None = None
) -> pb.FieldValue:
    key = (f.written_by, f.written_at)
    provenance = None if provenances is None else provenances.get(key)
    if provenance is None:
        provenance = pb.Provenance(written_by=f.written_by, written_at=timestamp(f.written_at))
        if provenances is not None:
            provenances[key] = provenance
    return pb.FieldValue(
        value=f.value,
        disclosure=_DISCLOSURE_TO_PB[f.disclosure],
        strategy=f.strategy,
        provenance=provenance,
    )
