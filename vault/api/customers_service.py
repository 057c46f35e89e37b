"""CustomerAccessService: decode, call customer access, encode. Nothing else lives here."""

from __future__ import annotations

import grpc

from vault.api.convert import timestamp
from vault.api.gen.customervault.v1 import customers_pb2 as pb
from vault.api.gen.customervault.v1 import customers_pb2_grpc
from vault.context import require_call
from vault.rights.customer_access import CustomerAccess


class CustomerAccessServicer(customers_pb2_grpc.CustomerAccessServiceServicer):
    """The gRPC face of customer tokens and one-time links."""

    def __init__(self, customers: CustomerAccess) -> None:
        self._customers = customers

    def IssueCustomerToken(
        self, request: pb.IssueCustomerTokenRequest, context: grpc.ServicerContext
    ) -> pb.IssueCustomerTokenResponse:
        issued = self._customers.issue_token(
            require_call(), request.subject_id, request.ttl_seconds
        )
        return pb.IssueCustomerTokenResponse(
            token=issued.token, expires_at=timestamp(issued.expires_at)
        )

    def CreateCustomerLink(
        self, request: pb.CreateCustomerLinkRequest, context: grpc.ServicerContext
    ) -> pb.CreateCustomerLinkResponse:
        link = self._customers.create_link(require_call(), request.subject_id, request.ttl_seconds)
        return pb.CreateCustomerLinkResponse(code=link.code, expires_at=timestamp(link.expires_at))

    def RedeemCustomerLink(
        self, request: pb.RedeemCustomerLinkRequest, context: grpc.ServicerContext
    ) -> pb.RedeemCustomerLinkResponse:
        issued = self._customers.redeem_link(require_call(), request.code)
        return pb.RedeemCustomerLinkResponse(
            token=issued.token,
            expires_at=timestamp(issued.expires_at),
            subject_id=issued.subject_id,
        )

    def GetDormancyNotice(
        self, request: pb.GetDormancyNoticeRequest, context: grpc.ServicerContext
    ) -> pb.GetDormancyNoticeResponse:
        deadline = self._customers.dormancy_notice(require_call(), request.subject_id)
        if deadline is None:
            return pb.GetDormancyNoticeResponse(open=False)
        return pb.GetDormancyNoticeResponse(open=True, deadline=timestamp(deadline))
