"""RightsService: decode, call one data-subject right, encode. Nothing else lives here."""

from __future__ import annotations

import grpc
from customer_vault_client.gen.customervault.v1 import rights_pb2 as pb
from customer_vault_client.gen.customervault.v1 import rights_pb2_grpc

from vault.api import convert, request_convert
from vault.context import require_call
from vault.errors import FieldViolation, InvalidArgumentError
from vault.rights.request_decisions import RequestDecisions
from vault.rights.service import RightsService


class RightsServicer(rights_pb2_grpc.RightsServiceServicer):
    """The gRPC face of the data-subject rights."""

    def __init__(self, rights: RightsService, decisions: RequestDecisions) -> None:
        self._rights = rights
        self._decisions = decisions

    def ExportSubjectData(
        self, request: pb.ExportSubjectDataRequest, context: grpc.ServicerContext
    ) -> pb.ExportSubjectDataResponse:
        package = self._rights.access(require_call(), request.subject_id, request.reason)
        return pb.ExportSubjectDataResponse(
            package_json=package.json, signed_package=package.signed
        )

    def RectifySubjectData(
        self, request: pb.RectifySubjectDataRequest, context: grpc.ServicerContext
    ) -> pb.RectifySubjectDataResponse:
        meta = self._rights.rectify(
            require_call(),
            request.subject_id,
            expected_version=request.expected_version,
            set_fields=dict(request.set_fields),
            clear_fields=list(request.clear_fields),
            reason=request.reason,
        )
        return pb.RectifySubjectDataResponse(subject=convert.meta(meta))

    def RestrictProcessing(
        self, request: pb.RestrictProcessingRequest, context: grpc.ServicerContext
    ) -> pb.RestrictProcessingResponse:
        meta = self._rights.restrict(require_call(), request.subject_id, request.reason)
        return pb.RestrictProcessingResponse(subject=convert.meta(meta))

    def LiftRestriction(
        self, request: pb.LiftRestrictionRequest, context: grpc.ServicerContext
    ) -> pb.LiftRestrictionResponse:
        meta = self._rights.lift_restriction(require_call(), request.subject_id, request.reason)
        return pb.LiftRestrictionResponse(subject=convert.meta(meta))

    def EraseSubjectData(
        self, request: pb.EraseSubjectDataRequest, context: grpc.ServicerContext
    ) -> pb.EraseSubjectDataResponse:
        meta = self._rights.erase(require_call(), request.subject_id, request.reason)
        return pb.EraseSubjectDataResponse(subject=convert.meta(meta))

    def ListDataSubjectRequests(
        self, request: pb.ListDataSubjectRequestsRequest, context: grpc.ServicerContext
    ) -> pb.ListDataSubjectRequestsResponse:
        found, token = self._decisions.queue(
            require_call(),
            request_convert.state_names(list(request.states)),
            request.page_size,
            request.page_token,
        )
        return pb.ListDataSubjectRequestsResponse(
            requests=[request_convert.request(r) for r in found], next_page_token=token
        )

    def GetDataSubjectRequest(
        self, request: pb.GetDataSubjectRequestRequest, context: grpc.ServicerContext
    ) -> pb.GetDataSubjectRequestResponse:
        found = self._decisions.get(require_call(), request.data_subject_request_id)
        return pb.GetDataSubjectRequestResponse(request=request_convert.request(found))

    def DecideDataSubjectRequest(
        self, request: pb.DecideDataSubjectRequestRequest, context: grpc.ServicerContext
    ) -> pb.DecideDataSubjectRequestResponse:
        if request.decision not in (request_convert.APPROVE, request_convert.REJECT):
            raise InvalidArgumentError([FieldViolation("decision", "approve or reject")])
        decided = self._decisions.decide(
            require_call(),
            request.data_subject_request_id,
            request.decision == request_convert.APPROVE,
            request.reason,
        )
        return pb.DecideDataSubjectRequestResponse(request=request_convert.request(decided))
