"""VaultService: decode, call one domain method, encode. Nothing else lives here."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc

from vault.api import convert
from vault.api.errors import MAX_VIOLATIONS, rich_status
from vault.context import require_call
from vault.errors import FieldViolation, InvalidArgumentError
from vault.records.disclosure import Disclosed, DisclosureService, TokenKind
from vault.records.reader import RecordReader
from vault.records.service import RecordService
from vault.subject import SubjectState

_TOKEN_KIND = {
    pb.TOKEN_KIND_DETERMINISTIC: TokenKind.DETERMINISTIC,
    pb.TOKEN_KIND_RANDOM: TokenKind.RANDOM,
}
_TOKEN_KIND_TO_PB = {v: k for k, v in _TOKEN_KIND.items()}
# ActivityKind values this server knows. Proto3 enums are open: a client built from a
# newer or edited .proto can send any number, which is refused rather than recorded.
# ACTIVITY_KIND_UNSPECIFIED (not said) is accepted, as older clients send it.
_ACTIVITY_KINDS = frozenset(pb.ActivityKind.values())


def _states(values: list[int]) -> list[SubjectState]:
    states = []
    for value in values:
        state = convert.STATE_FROM_PB.get(value)
        if state is None:
            raise InvalidArgumentError([FieldViolation("states", "unknown subject state")])
        states.append(state)
    return states


class VaultServicer(vault_pb2_grpc.VaultServiceServicer):
    """The gRPC face of the record services."""

    def __init__(
        self,
        records: RecordService,
        reader: RecordReader,
        disclosures: DisclosureService,
        max_violations: int = MAX_VIOLATIONS,
    ) -> None:
        self._records = records
        self._reader = reader
        self._disclosures = disclosures
        self._max_violations = max_violations

    def CreateSubject(
        self, request: pb.CreateSubjectRequest, context: grpc.ServicerContext
    ) -> pb.CreateSubjectResponse:
        created = self._records.create(require_call(), dict(request.fields))
        return pb.CreateSubjectResponse(subject=convert.meta(created))

    def BatchCreateSubjects(
        self, request: pb.BatchCreateSubjectsRequest, context: grpc.ServicerContext
    ) -> pb.BatchCreateSubjectsResponse:
        call = require_call()
        results = self._records.batch_create(
            call,
            [dict(item.fields) for item in request.items],
            all_or_nothing=request.all_or_nothing,
        )
        out = []
        for r in results:
            if r.error is None:
                out.append(pb.BatchItemResult(index=r.index, subject_id=r.subject_id))
            else:
                out.append(
                    pb.BatchItemResult(
                        index=r.index,
                        error=rich_status(r.error, call.request_id, self._max_violations),
                    )
                )
        created = sum(1 for r in results if r.error is None)
        return pb.BatchCreateSubjectsResponse(
            results=out, created=created, failed=len(results) - created
        )

    def GetSubject(
        self, request: pb.GetSubjectRequest, context: grpc.ServicerContext
    ) -> pb.GetSubjectResponse:
        rendered = self._reader.get(
            require_call(), request.subject_id, request.view, request.purpose, request.justification
        )
        return pb.GetSubjectResponse(subject=convert.view(rendered))

    def UpdateSubject(
        self, request: pb.UpdateSubjectRequest, context: grpc.ServicerContext
    ) -> pb.UpdateSubjectResponse:
        updated = self._records.update(
            require_call(),
            request.subject_id,
            expected_version=request.expected_version,
            set_fields=dict(request.set_fields),
            clear_fields=list(request.clear_fields),
            reason=request.reason,
        )
        return pb.UpdateSubjectResponse(subject=convert.meta(updated))

    def FindSubjects(
        self, request: pb.FindSubjectsRequest, context: grpc.ServicerContext
    ) -> pb.FindSubjectsResponse:
        found = self._reader.find(
            require_call(),
            request.field,
            request.value,
            request.view,
            request.purpose,
            justification=request.justification,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.FindSubjectsResponse(
            subjects=[convert.view(v) for v in found.subjects],
            next_page_token=found.next_page_token,
        )

    def EraseSubject(
        self, request: pb.EraseSubjectRequest, context: grpc.ServicerContext
    ) -> pb.EraseSubjectResponse:
        erased = self._records.erase(require_call(), request.subject_id, request.reason)
        return pb.EraseSubjectResponse(subject=convert.meta(erased))

    def RecordActivity(
        self, request: pb.RecordActivityRequest, context: grpc.ServicerContext
    ) -> pb.RecordActivityResponse:
        if request.kind not in _ACTIVITY_KINDS:
            raise InvalidArgumentError([FieldViolation("kind", "unknown activity kind")])
        occurred = convert.when(request.occurred_at, request.HasField("occurred_at"), "occurred_at")
        meta = self._records.record_activity(require_call(), request.subject_id, occurred)
        return pb.RecordActivityResponse(subject=convert.meta(meta))

    def ExportView(
        self, request: pb.ExportViewRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExportViewResponse]:
        states = _states(list(request.states))
        exported = self._reader.export(
            require_call(),
            request.view,
            request.purpose,
            states,
            request.justification,
            after=request.resume_token,
        )
        for rendered in exported:
            # The cursor is the subject id; the runner seals it into an opaque token.
            yield pb.ExportViewResponse(
                subject=convert.view(rendered), resume_token=rendered.meta.id
            )

    def RevealField(
        self, request: pb.RevealFieldRequest, context: grpc.ServicerContext
    ) -> pb.RevealFieldResponse:
        shown = self._disclosures.reveal(
            require_call(),
            request.subject_id,
            request.field,
            request.purpose,
            request.justification,
        )
        return pb.RevealFieldResponse(
            subject_id=shown.meta.id, field=shown.field, value=_field_value(shown)
        )

    def Tokenize(
        self, request: pb.TokenizeRequest, context: grpc.ServicerContext
    ) -> pb.TokenizeResponse:
        kind = _TOKEN_KIND.get(request.kind)
        if kind is None:
            raise InvalidArgumentError([FieldViolation("kind", "must be deterministic or random")])
        token = self._disclosures.tokenize(
            require_call(),
            request.subject_id,
            request.field,
            kind,
            purpose=request.purpose,
            justification=request.justification,
        )
        return pb.TokenizeResponse(token=token, kind=_TOKEN_KIND_TO_PB[kind])

    def Detokenize(
        self, request: pb.DetokenizeRequest, context: grpc.ServicerContext
    ) -> pb.DetokenizeResponse:
        shown = self._disclosures.detokenize(
            require_call(), request.token, request.purpose, request.justification
        )
        return pb.DetokenizeResponse(
            subject_id=shown.meta.id, field=shown.field, value=_field_value(shown)
        )


def _field_value(shown: Disclosed) -> pb.FieldValue:
    return convert.field_value(shown.value)
