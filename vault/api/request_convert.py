"""Data-subject requests <-> protobuf messages. No logic beyond the mapping."""

from __future__ import annotations

from customer_vault_client.gen.customervault.v1 import requests_pb2 as pb
from customer_vault_client.gen.customervault.v1 import rights_pb2

from vault.api.convert import timestamp
from vault.rights.request_base import RequestView
from vault.rights.request_states import RequestKind, RequestState

_KIND_TO_PB = {
    RequestKind.RECTIFICATION: pb.DATA_SUBJECT_REQUEST_KIND_RECTIFICATION,
    RequestKind.RESTRICTION: pb.DATA_SUBJECT_REQUEST_KIND_RESTRICTION,
    RequestKind.ERASURE: pb.DATA_SUBJECT_REQUEST_KIND_ERASURE,
}
KIND_FROM_PB: dict[int, str] = {int(v): k.value for k, v in _KIND_TO_PB.items()}

_STATE_TO_PB = {
    RequestState.AWAITING_VERIFICATION: pb.DATA_SUBJECT_REQUEST_STATE_AWAITING_VERIFICATION,
    RequestState.PENDING_DECISION: pb.DATA_SUBJECT_REQUEST_STATE_PENDING_DECISION,
    RequestState.FULFILLED: pb.DATA_SUBJECT_REQUEST_STATE_FULFILLED,
    RequestState.REJECTED: pb.DATA_SUBJECT_REQUEST_STATE_REJECTED,
    RequestState.CANCELLED: pb.DATA_SUBJECT_REQUEST_STATE_CANCELLED,
    RequestState.EXPIRED: pb.DATA_SUBJECT_REQUEST_STATE_EXPIRED,
}
STATE_FROM_PB: dict[int, str] = {int(v): k.value for k, v in _STATE_TO_PB.items()}

APPROVE = rights_pb2.DATA_SUBJECT_REQUEST_DECISION_APPROVE
REJECT = rights_pb2.DATA_SUBJECT_REQUEST_DECISION_REJECT


def kind_name(value: int) -> str:
    """The domain's name of a kind ("" for an unknown one: the domain refuses it)."""
    return KIND_FROM_PB.get(value, "")


def state_names(values: list[int]) -> list[str]:
    """The domain's names of states to filter by (an unknown one stays unknown)."""
    return [STATE_FROM_PB.get(v, f"unknown-{v}") for v in values]


def request(view: RequestView) -> pb.DataSubjectRequest:
    message = pb.DataSubjectRequest(
        request_id=view.id,
        subject_id=view.subject_id,
        kind=_KIND_TO_PB[view.kind],
        state=_STATE_TO_PB[view.state],
        jurisdiction=view.jurisdiction,
        regulation=view.regulation,
        create_time=timestamp(view.created_at),
        deadline=timestamp(view.deadline_at),
        decided_by=view.decided_by,
        decision_reason=view.decision_reason,
        proposed_values=dict(view.proposed),
        proposed_fields=list(view.proposed_fields),
    )
    if view.verified_at is not None:
        message.verify_time.CopyFrom(timestamp(view.verified_at))
    if view.decided_at is not None:
        message.decide_time.CopyFrom(timestamp(view.decided_at))
    return message
