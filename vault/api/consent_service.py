"""ConsentService: decode, call the consent domain, encode. Nothing else lives here."""

from __future__ import annotations

from datetime import datetime

import grpc
from customer_vault_client.gen.customervault.v1 import consent_pb2 as pb
from customer_vault_client.gen.customervault.v1 import consent_pb2_grpc

from vault.api.convert import timestamp, when
from vault.consent.checks import ConsentRequest
from vault.consent.models import Channel, ConsentAction, ConsentChange, ConsentEvent
from vault.consent.service import ConsentService
from vault.context import require_call

_CHANNEL = {
    pb.CONSENT_CHANNEL_WEB: Channel.WEB,
    pb.CONSENT_CHANNEL_APP: Channel.APP,
    pb.CONSENT_CHANNEL_CALL_CENTRE: Channel.CALL_CENTRE,
    pb.CONSENT_CHANNEL_API: Channel.API,
    pb.CONSENT_CHANNEL_GPC: Channel.GPC,
}
_CHANNEL_TO_PB = {v: k for k, v in _CHANNEL.items()}
_ACTION_TO_PB = {
    ConsentAction.GRANT: pb.CONSENT_ACTION_GRANT,
    ConsentAction.WITHDRAW: pb.CONSENT_ACTION_WITHDRAW,
}


def _request(
    subject_id: str,
    purposes: list[str],
    source: pb.ConsentSource,
    *,
    expires_at: datetime | None = None,
    receipt_id: str = "",
) -> ConsentRequest:
    return ConsentRequest(
        subject_id=subject_id,
        purposes=purposes,
        channel=_CHANNEL.get(source.channel),
        notice_version=source.notice_version,
        evidence_ref=source.evidence_ref,
        jurisdiction=source.jurisdiction,
        expires_at=expires_at,
        receipt_id=receipt_id,
    )


def event_message(event: ConsentEvent) -> pb.ConsentEvent:
    return pb.ConsentEvent(
        sequence=event.id,
        subject_id=event.subject_id,
        purpose=event.purpose,
        action=_ACTION_TO_PB[event.action],
        recorded_at=timestamp(event.recorded_at),
        expires_at=timestamp(event.expires_at) if event.expires_at else None,
        source=pb.ConsentSource(
            channel=_CHANNEL_TO_PB[event.channel],
            notice_version=event.notice_version,
            evidence_ref=event.evidence_ref,
            jurisdiction=event.jurisdiction,
        ),
        receipt_id=event.receipt_id,
        recorded_by=event.actor,
    )


def _change(
    change: ConsentChange,
) -> tuple[str, list[pb.ConsentEvent], pb.ConsentReceipt]:
    return (
        change.consent_version,
        [event_message(e) for e in change.events],
        pb.ConsentReceipt(receipt_id=change.receipt_id, document=change.receipt_document),
    )


class ConsentServicer(consent_pb2_grpc.ConsentServiceServicer):
    """The gRPC face of the consent ledger."""

    def __init__(self, consent: ConsentService) -> None:
        self._consent = consent

    def GrantConsent(
        self, request: pb.GrantConsentRequest, context: grpc.ServicerContext
    ) -> pb.GrantConsentResponse:
        expires = when(request.expires_at, request.HasField("expires_at"), "expires_at")
        asked = _request(
            request.subject_id, list(request.purposes), request.source, expires_at=expires
        )
        version, events, receipt = _change(self._consent.grant(require_call(), asked))
        return pb.GrantConsentResponse(consent_version=version, events=events, receipt=receipt)

    def WithdrawConsent(
        self, request: pb.WithdrawConsentRequest, context: grpc.ServicerContext
    ) -> pb.WithdrawConsentResponse:
        asked = _request(
            request.subject_id,
            list(request.purposes),
            request.source,
            receipt_id=request.receipt_id,
        )
        version, events, receipt = _change(self._consent.withdraw(require_call(), asked))
        return pb.WithdrawConsentResponse(consent_version=version, events=events, receipt=receipt)

    def OptOut(self, request: pb.OptOutRequest, context: grpc.ServicerContext) -> pb.OptOutResponse:
        asked = _request(request.subject_id, list(request.scopes), request.source)
        version, events, receipt = _change(self._consent.opt_out(require_call(), asked))
        return pb.OptOutResponse(consent_version=version, events=events, receipt=receipt)

    def GetConsent(
        self, request: pb.GetConsentRequest, context: grpc.ServicerContext
    ) -> pb.GetConsentResponse:
        at = when(request.at, request.HasField("at"), "at")
        status = self._consent.status(require_call(), request.subject_id, at)
        return pb.GetConsentResponse(
            subject_id=status.subject_id,
            at=timestamp(status.at),
            consent_version=status.consent_version,
            purposes=[
                pb.PurposeConsent(
                    purpose=p.purpose,
                    granted=p.granted,
                    withdrawn=p.withdrawn,
                    expires_at=timestamp(p.expires_at) if p.expires_at else None,
                    effective=p.effective,
                    blocked_by=p.blocked_by,
                    legal_basis=p.legal_basis,
                )
                for p in status.purposes
            ],
            opted_out_markers=list(status.opted_out_markers),
        )

    def ListConsentEvents(
        self, request: pb.ListConsentEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListConsentEventsResponse:
        events, cursor = self._consent.history(
            require_call(),
            request.subject_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListConsentEventsResponse(
            events=[event_message(e) for e in events], next_page_token=cursor
        )

    def GetConsentReceipt(
        self, request: pb.GetConsentReceiptRequest, context: grpc.ServicerContext
    ) -> pb.GetConsentReceiptResponse:
        document = self._consent.receipt(require_call(), request.subject_id, request.receipt_id)
        return pb.GetConsentReceiptResponse(
            receipt=pb.ConsentReceipt(receipt_id=request.receipt_id, document=document)
        )
