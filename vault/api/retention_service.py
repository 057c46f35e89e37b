"""RetentionService: decode, call one `vault.retention.service` method, encode."""

from __future__ import annotations

import grpc
from customer_vault_client.gen.customervault.v1 import retention_pb2 as pb
from customer_vault_client.gen.customervault.v1 import retention_pb2_grpc

from vault.api.convert import timestamp
from vault.clock import from_micros
from vault.context import require_call
from vault.retention.report import KAnonymity, Outcome
from vault.retention.runs import PastRun
from vault.retention.service import RetentionService
from vault.storage.notices import LegalHold, Notice


def _notice(n: Notice) -> pb.RetentionNotice:
    message = pb.RetentionNotice(
        notice_id=n.id,
        subject_id=n.subject_id,
        notified_at=timestamp(from_micros(n.created_at)),
        deadline=timestamp(from_micros(n.deadline_at)),
        acknowledged=n.acknowledged_at is not None,
    )
    if n.acknowledged_at is not None:
        message.acknowledged_at.CopyFrom(timestamp(from_micros(n.acknowledged_at)))
    return message


def _k(k: KAnonymity) -> pb.KAnonymity:
    return pb.KAnonymity(
        k=k.k,
        records=k.records,
        groups=k.groups,
        min_group_size=k.min_group_size,
        groups_below_k=k.groups_below_k,
        records_below_k=k.records_below_k,
    )


def _run(r: PastRun) -> pb.RetentionRun:
    message = pb.RetentionRun(
        run_id=r.run_id,
        start_time=timestamp(from_micros(r.started_at)),
        finish_time=timestamp(from_micros(r.finished_at)),
        interrupted=r.interrupted,
        tenant_reported=r.part is not None,
    )
    if r.part is not None:
        counts = r.part.counts
        message.notified = counts.get(Outcome.NOTIFIED.value, 0)
        message.anonymized = counts.get(Outcome.ANONYMIZED.value, 0)
        message.cancelled = counts.get(Outcome.CANCELLED.value, 0)
        message.held = counts.get(Outcome.HELD.value, 0)
        message.k_anonymity.CopyFrom(_k(r.part.k_anonymity))
    return message


def _hold(h: LegalHold) -> pb.LegalHold:
    return pb.LegalHold(
        subject_id=h.subject_id,
        reason=h.reason,
        set_by=h.set_by,
        set_at=timestamp(from_micros(h.set_at)),
    )


class RetentionServicer(retention_pb2_grpc.RetentionServiceServicer):
    """The gRPC face of retention."""

    def __init__(self, service: RetentionService) -> None:
        self._service = service

    def ListNotices(
        self, request: pb.ListNoticesRequest, context: grpc.ServicerContext
    ) -> pb.ListNoticesResponse:
        page, token = self._service.list_notices(
            require_call(),
            include_acknowledged=request.include_acknowledged,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListNoticesResponse(notices=[_notice(n) for n in page], next_page_token=token)

    def AcknowledgeNotice(
        self, request: pb.AcknowledgeNoticeRequest, context: grpc.ServicerContext
    ) -> pb.AcknowledgeNoticeResponse:
        notice = self._service.acknowledge(require_call(), request.notice_id)
        return pb.AcknowledgeNoticeResponse(notice=_notice(notice))

    def SetLegalHold(
        self, request: pb.SetLegalHoldRequest, context: grpc.ServicerContext
    ) -> pb.SetLegalHoldResponse:
        result = self._service.set_hold(require_call(), request.subject_id, request.reason)
        return pb.SetLegalHoldResponse(
            hold=_hold(result.hold), cancelled_notice=result.cancelled_notice
        )

    def ClearLegalHold(
        self, request: pb.ClearLegalHoldRequest, context: grpc.ServicerContext
    ) -> pb.ClearLegalHoldResponse:
        self._service.clear_hold(require_call(), request.subject_id, request.reason)
        return pb.ClearLegalHoldResponse()

    def ListLegalHolds(
        self, request: pb.ListLegalHoldsRequest, context: grpc.ServicerContext
    ) -> pb.ListLegalHoldsResponse:
        page, token = self._service.list_holds(
            require_call(), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListLegalHoldsResponse(holds=[_hold(h) for h in page], next_page_token=token)

    def GetRetentionReport(
        self, request: pb.GetRetentionReportRequest, context: grpc.ServicerContext
    ) -> pb.GetRetentionReportResponse:
        report = self._service.report(require_call())
        return pb.GetRetentionReportResponse(
            as_of=timestamp(report.started_at),
            to_notify=report.count(Outcome.NOTIFIED),
            to_anonymize=report.count(Outcome.ANONYMIZED),
            held=report.count(Outcome.HELD),
            cancelled_since_last_run=report.count(Outcome.CANCELLED),
            held_subject_ids=report.held_subjects,
            k_anonymity=_k(report.k_anonymity),
        )

    def ListRetentionRuns(
        self, request: pb.ListRetentionRunsRequest, context: grpc.ServicerContext
    ) -> pb.ListRetentionRunsResponse:
        page, token = self._service.list_runs(
            require_call(), page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListRetentionRunsResponse(runs=[_run(r) for r in page], next_page_token=token)
