"""CustomerAccessService: decode, call customer access, encode. Nothing else lives here."""

from __future__ import annotations

import grpc
from customer_vault_client.gen.customervault.v1 import customers_pb2 as pb
from customer_vault_client.gen.customervault.v1 import customers_pb2_grpc

from vault.api import request_convert
from vault.api.convert import timestamp
from vault.context import require_call
from vault.rights.customer_access import CustomerAccess
from vault.rights.requests import CustomerRequests


class CustomerAccessServicer(customers_pb2_grpc.CustomerAccessServiceServicer):
    """The gRPC face of customer tokens and one-time links."""

    def __init__(self, customers: CustomerAccess, requests: CustomerRequests) -> None:
        self._customers = customers
        self._requests = requests

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

    def CreateDataSubjectRequest(
        self, request: pb.CreateDataSubjectRequestRequest, context: grpc.ServicerContext
    ) -> pb.CreateDataSubjectRequestResponse:
        created = self._requests.create(
            require_call(),
            request.subject_id,
            request_convert.kind_name(request.kind),
            dict(request.proposed_values),
            request.jurisdiction,
        )
        return pb.CreateDataSubjectRequestResponse(request=request_convert.request(created))

    def IssueRequestVerificationCode(
        self, request: pb.IssueRequestVerificationCodeRequest, context: grpc.ServicerContext
    ) -> pb.IssueRequestVerificationCodeResponse:
        issued = self._requests.issue_code(require_call(), request.data_subject_request_id)
        return pb.IssueRequestVerificationCodeResponse(
            code=issued.code, expires_at=timestamp(issued.expires_at)
        )

    def VerifyDataSubjectRequest(
        self, request: pb.VerifyDataSubjectRequestRequest, context: grpc.ServicerContext
    ) -> pb.VerifyDataSubjectRequestResponse:
        verified = self._requests.verify(
            require_call(), request.data_subject_request_id, request.code
        )
        return pb.VerifyDataSubjectRequestResponse(request=request_convert.request(verified))

    def ListOwnDataSubjectRequests(
        self, request: pb.ListOwnDataSubjectRequestsRequest, context: grpc.ServicerContext
    ) -> pb.ListOwnDataSubjectRequestsResponse:
        found, cursor = self._requests.list_own(
            require_call(), request.subject_id, request.page_size, request.page_token
        )
        return pb.ListOwnDataSubjectRequestsResponse(
            requests=[request_convert.request(r) for r in found], next_page_token=cursor
        )

    def CancelDataSubjectRequest(
        self, request: pb.CancelDataSubjectRequestRequest, context: grpc.ServicerContext
    ) -> pb.CancelDataSubjectRequestResponse:
        cancelled = self._requests.cancel(require_call(), request.data_subject_request_id)
        return pb.CancelDataSubjectRequestResponse(request=request_convert.request(cancelled))
