"""RightsService: decode, call one data-subject right, encode. Nothing else lives here."""

from __future__ import annotations

import grpc

from vault.api import convert
from vault.api.gen.customervault.v1 import rights_pb2 as pb
from vault.api.gen.customervault.v1 import rights_pb2_grpc
from vault.context import require_call
from vault.rights.service import RightsService


class RightsServicer(rights_pb2_grpc.RightsServiceServicer):
    """The gRPC face of the data-subject rights."""

    def __init__(self, rights: RightsService) -> None:
        self._rights = rights

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
