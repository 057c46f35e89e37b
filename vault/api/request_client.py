"""The web pages' way to data-subject requests: typed calls with the person's own token.

`RequestQueue` is the console's (the DPO's queue, one request, the decision);
`MyRequests` the privacy center's (a customer's own requests). Both answer with plain
`RequestInfo` values and raise `VaultClientError` when the vault refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from customer_vault_client.gen.customervault.v1 import customers_pb2, requests_pb2, rights_pb2
from google.protobuf import timestamp_pb2

from vault.api.client import VaultClient
from vault.api.request_convert import KIND_FROM_PB, STATE_FROM_PB

_KIND_TO_PB = {name: number for number, name in KIND_FROM_PB.items()}
_STATE_TO_PB = {name: number for number, name in STATE_FROM_PB.items()}
OPEN_STATES = ("awaiting_verification", "pending_decision")
_OWN_PAGE = 100
"""ListOwnDataSubjectRequests' largest page."""


@dataclass(frozen=True)
class RequestInfo:
    """One request as the caller may see it; `kind` and `state` are the domain's names."""

    request_id: str
    subject_id: str
    kind: str
    state: str
    jurisdiction: str
    regulation: str
    created_at: datetime | None
    deadline: datetime | None
    verified_at: datetime | None
    decided_at: datetime | None
    decided_by: str
    reason: str
    proposed: dict[str, str] = field(default_factory=dict)
    fields: tuple[str, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def overdue(self, now: datetime) -> bool:
        """Open past its statutory deadline."""
        return self.is_open and self.deadline is not None and self.deadline < now


def _moment(message: object, name: str) -> datetime | None:
    if not message.HasField(name):  # type: ignore[attr-defined]
        return None
    ts: timestamp_pb2.Timestamp = getattr(message, name)
    return ts.ToDatetime(tzinfo=UTC)


def request_info(message: requests_pb2.DataSubjectRequest) -> RequestInfo:
    return RequestInfo(
        request_id=message.request_id,
        subject_id=message.subject_id,
        kind=KIND_FROM_PB.get(message.kind, ""),
        state=STATE_FROM_PB.get(message.state, ""),
        jurisdiction=message.jurisdiction,
        regulation=message.regulation,
        created_at=_moment(message, "create_time"),
        deadline=_moment(message, "deadline"),
        verified_at=_moment(message, "verify_time"),
        decided_at=_moment(message, "decide_time"),
        decided_by=message.decided_by,
        reason=message.decision_reason,
        proposed=dict(message.proposed_values),
        fields=tuple(message.proposed_fields),
    )


class RequestQueue:
    """The DPO's side, through the RightsService."""

    def __init__(self, client: VaultClient) -> None:
        self._client = client

    def page(
        self, states: tuple[str, ...] = (), *, page_size: int = 50, page_token: str = ""
    ) -> tuple[list[RequestInfo], str]:
        response = self._client.call(
            self._client.rights,
            "ListDataSubjectRequests",
            rights_pb2.ListDataSubjectRequestsRequest(
                states=cast(Any, [_STATE_TO_PB[s] for s in states if s in _STATE_TO_PB]),
                page_size=page_size,
                page_token=page_token,
            ),
        )
        return [request_info(r) for r in response.requests], response.next_page_token

    def get(self, request_id: str) -> RequestInfo:
        response = self._client.call(
            self._client.rights,
            "GetDataSubjectRequest",
            rights_pb2.GetDataSubjectRequestRequest(data_subject_request_id=request_id),
        )
        return request_info(response.request)

    def decide(self, request_id: str, *, approve: bool, reason: str) -> RequestInfo:
        decision = (
            rights_pb2.DATA_SUBJECT_REQUEST_DECISION_APPROVE
            if approve
            else rights_pb2.DATA_SUBJECT_REQUEST_DECISION_REJECT
        )
        response = self._client.call(
            self._client.rights,
            "DecideDataSubjectRequest",
            rights_pb2.DecideDataSubjectRequestRequest(
                data_subject_request_id=request_id, decision=decision, reason=reason
            ),
        )
        return request_info(response.request)


class MyRequests:
    """A customer's own requests, through the CustomerAccessService."""

    def __init__(self, client: VaultClient, subject_id: str) -> None:
        self._client = client
        self._subject_id = subject_id

    def _call(self, method: str, request: object) -> requests_pb2.DataSubjectRequest:
        response = self._client.call(self._client.customers, method, request)
        return response.request  # type: ignore[no-any-return]

    def list(self) -> list[RequestInfo]:
        """Every request of the customer's, newest first (every page)."""
        found: list[RequestInfo] = []
        token = ""
        while True:
            response = self._client.call(
                self._client.customers,
                "ListOwnDataSubjectRequests",
                customers_pb2.ListOwnDataSubjectRequestsRequest(
                    subject_id=self._subject_id, page_size=_OWN_PAGE, page_token=token
                ),
            )
            found += [request_info(r) for r in response.requests]
            token = response.next_page_token
            if not token:
                return found

    def ask(self, kind: str, proposed: dict[str, str] | None = None) -> RequestInfo:
        request = customers_pb2.CreateDataSubjectRequestRequest(
            subject_id=self._subject_id,
            kind=cast(Any, _KIND_TO_PB.get(kind, 0)),
            proposed_values=proposed or {},
        )
        return request_info(self._call("CreateDataSubjectRequest", request))

    def verify(self, request_id: str, code: str) -> RequestInfo:
        request = customers_pb2.VerifyDataSubjectRequestRequest(
            data_subject_request_id=request_id, code=code
        )
        return request_info(self._call("VerifyDataSubjectRequest", request))

    def cancel(self, request_id: str) -> RequestInfo:
        request = customers_pb2.CancelDataSubjectRequestRequest(data_subject_request_id=request_id)
        return request_info(self._call("CancelDataSubjectRequest", request))
