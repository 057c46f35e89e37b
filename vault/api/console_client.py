"""The compliance console's way to the vault: typed calls made with the person's own token.

The web console (`vault.web`) never imports grpc or generated code; it calls this class,
which answers with plain values (`audit.AuditEntry` for entries) and raises
`VaultClientError` with the gRPC code name when the vault refuses. Each call carries the
signed-in person's bearer token, so the vault authorizes and audits it as that person.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from google.protobuf import timestamp_pb2

import audit
from vault.api.client import VaultClient, VaultClientError
from vault.api.gen.customervault.v1 import audit_pb2, retention_pb2

__all__ = [
    "CheckpointInfo",
    "ConsoleClient",
    "EntryPage",
    "KAnonymityInfo",
    "LegalHoldInfo",
    "LoggedEntry",
    "NoticeInfo",
    "ProofInfo",
    "RetentionReportInfo",
    "VaultClientError",
    "VerifyInfo",
    "VerifyStep",
]


@dataclass(frozen=True)
class LoggedEntry:
    """An audit entry as the vault returned it; `index` is None until it is integrated."""

    index: int | None
    entry: audit.AuditEntry
    mac: bytes | None = None


@dataclass(frozen=True)
class EntryPage:
    entries: tuple[LoggedEntry, ...]
    next_page_token: str | None


@dataclass(frozen=True)
class CheckpointInfo:
    origin: str
    tree_size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True)
class ProofInfo:
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]


@dataclass(frozen=True)
class VerifyInfo:
    ok: bool
    entries_checked: int
    first_bad_index: int | None
    problem: str
    checkpoint: CheckpointInfo | None


@dataclass(frozen=True)
class VerifyStep:
    checked: int
    total: int
    result: VerifyInfo | None


@dataclass(frozen=True)
class NoticeInfo:
    notice_id: str
    subject_id: str
    notified_at: datetime | None
    deadline: datetime | None
    acknowledged: bool


@dataclass(frozen=True)
class LegalHoldInfo:
    subject_id: str
    reason: str
    set_by: str
    set_at: datetime | None


@dataclass(frozen=True)
class KAnonymityInfo:
    k: int
    records: int
    groups: int
    min_group_size: int
    groups_below_k: int
    records_below_k: int


@dataclass(frozen=True)
class RetentionReportInfo:
    as_of: datetime | None
    to_notify: int
    to_anonymize: int
    held: int
    cancelled_since_last_run: int
    k_anonymity: KAnonymityInfo | None


@dataclass(frozen=True)
class EntryFilters:
    """What QueryEntries filters on; empty strings and None mean "any"."""

    subject_id: str = ""
    actor: str = ""
    role: str = ""
    action: str = ""
    purpose: str = ""
    decision: str = ""
    result_code: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment.astimezone(UTC))
    return ts


def _moment(ts: timestamp_pb2.Timestamp, present: bool = True) -> datetime | None:
    if not present:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def logged_entry(message: audit_pb2.AuditEntry) -> LoggedEntry:
    """The vault's entry message as an `audit.AuditEntry` (whose canonical bytes are the
    ones the log's leaf hash covers, so a proof can be checked against them)."""
    entry = audit.AuditEntry(
        time=message.time.ToDatetime(tzinfo=UTC),
        actor=message.actor,
        actor_roles=tuple(message.roles),
        tenant=message.tenant,
        action=message.action,
        subject_ids=tuple(message.subject_ids),
        field_names=tuple(message.field_names),
        purpose=message.purpose,
        justification=message.justification,
        decision=message.decision,  # type: ignore[arg-type]
        reason=message.reason,
        policy_version=message.policy_version,
        consent_version=message.consent_version,
        result_code=message.result_code,
        request_id=message.request_id,
        trace_id=message.trace_id,
        caller_address=message.caller_address,
        extra=dict(message.extra),
    )
    return LoggedEntry(None if message.index < 0 else message.index, entry, message.mac or None)


def _verify_info(response: audit_pb2.VerifyLogResponse) -> VerifyInfo:
    return VerifyInfo(
        ok=response.ok,
        entries_checked=response.entries_checked,
        first_bad_index=None if response.first_bad_index < 0 else response.first_bad_index,
        problem=response.problem,
        checkpoint=_checkpoint(response.checkpoint) if response.HasField("checkpoint") else None,
    )


def _checkpoint(message: audit_pb2.Checkpoint) -> CheckpointInfo:
    return CheckpointInfo(message.origin, message.tree_size, message.root_hash, message.note)


class ConsoleClient:
    """AuditService and RetentionService calls for one person (their bearer token)."""

    def __init__(
        self,
        address: str,
        token: str,
        *,
        ca_file: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._client = VaultClient(address, token, ca_file=ca_file, timeout=timeout)

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.__exit__(None, None, None)

    def _audit(self, method: str, request: object) -> object:
        return self._client.call(self._client.audit, method, request)

    def _retention(self, method: str, request: object) -> object:
        return self._client.call(self._client.retention, method, request)

    # --- audit ------------------------------------------------------------------------

    def query(
        self,
        filters: EntryFilters,
        *,
        newest_first: bool = True,
        page_size: int = 50,
        page_token: str = "",
    ) -> EntryPage:
        request = audit_pb2.QueryEntriesRequest(
            filter=audit_pb2.EntryFilter(
                subject_id=filters.subject_id,
                actor=filters.actor,
                role=filters.role,
                action=filters.action,
                purpose=filters.purpose,
                decision=filters.decision,
                result_code=filters.result_code,
                since=None if filters.since is None else _timestamp(filters.since),
                until=None if filters.until is None else _timestamp(filters.until),
            ),
            page_size=page_size,
            page_token=page_token,
            newest_first=newest_first,
        )
        return self._page(self._audit("QueryEntries", request))

    def history(
        self,
        subject_id: str,
        *,
        newest_first: bool = True,
        page_size: int = 100,
        page_token: str = "",
    ) -> EntryPage:
        request = audit_pb2.SubjectHistoryRequest(
            subject_id=subject_id,
            page_size=page_size,
            page_token=page_token,
            newest_first=newest_first,
        )
        return self._page(self._audit("SubjectHistory", request))

    @staticmethod
    def _page(response: object) -> EntryPage:
        assert isinstance(response, audit_pb2.QueryEntriesResponse)
        return EntryPage(
            tuple(logged_entry(e) for e in response.entries), response.next_page_token or None
        )

    def entry(self, index: int) -> LoggedEntry:
        response = self._audit("GetEntry", audit_pb2.GetEntryRequest(index=index))
        assert isinstance(response, audit_pb2.AuditEntry)
        return logged_entry(response)

    def latest_checkpoint(self) -> CheckpointInfo:
        response = self._audit("GetLatestCheckpoint", audit_pb2.GetLatestCheckpointRequest())
        assert isinstance(response, audit_pb2.Checkpoint)
        return _checkpoint(response)

    def inclusion_proof(self, index: int, tree_size: int) -> ProofInfo:
        request = audit_pb2.GetInclusionProofRequest(index=index, tree_size=tree_size)
        response = self._audit("GetInclusionProof", request)
        assert isinstance(response, audit_pb2.InclusionProof)
        return ProofInfo(
            response.index, response.tree_size, response.leaf_hash, tuple(response.hashes)
        )

    def verify_log(self) -> VerifyInfo:
        response = self._audit("VerifyLog", audit_pb2.VerifyLogRequest())
        assert isinstance(response, audit_pb2.VerifyLogResponse)
        return _verify_info(response)

    def verify_log_with_progress(self) -> Iterator[VerifyStep]:
        """The verification as it goes: steps with `checked`/`total`, the last one with
        its `result`. Raises `VaultClientError` (at the first step for a refusal)."""
        stream = self._client.stream(
            self._client.audit, "VerifyLogWithProgress", audit_pb2.VerifyLogRequest()
        )
        for message in stream:
            assert isinstance(message, audit_pb2.VerifyLogProgress)
            result = _verify_info(message.result) if message.HasField("result") else None
            yield VerifyStep(message.checked, message.total, result)

    # --- retention --------------------------------------------------------------------

    def notices(
        self, *, include_acknowledged: bool = True, page_size: int = 100
    ) -> list[NoticeInfo]:
        request = retention_pb2.ListNoticesRequest(
            include_acknowledged=include_acknowledged, page_size=page_size
        )
        response = self._retention("ListNotices", request)
        assert isinstance(response, retention_pb2.ListNoticesResponse)
        return [
            NoticeInfo(
                n.notice_id,
                n.subject_id,
                _moment(n.notified_at, n.HasField("notified_at")),
                _moment(n.deadline, n.HasField("deadline")),
                n.acknowledged,
            )
            for n in response.notices
        ]

    def legal_holds(self, *, page_size: int = 100) -> list[LegalHoldInfo]:
        response = self._retention(
            "ListLegalHolds", retention_pb2.ListLegalHoldsRequest(page_size=page_size)
        )
        assert isinstance(response, retention_pb2.ListLegalHoldsResponse)
        return [
            LegalHoldInfo(h.subject_id, h.reason, h.set_by, _moment(h.set_at, h.HasField("set_at")))
            for h in response.holds
        ]

    def set_legal_hold(self, subject_id: str, reason: str) -> bool:
        """Place a hold; True when it cancelled an open notice."""
        request = retention_pb2.SetLegalHoldRequest(subject_id=subject_id, reason=reason)
        response = self._retention("SetLegalHold", request)
        assert isinstance(response, retention_pb2.SetLegalHoldResponse)
        return response.cancelled_notice

    def clear_legal_hold(self, subject_id: str, reason: str) -> None:
        request = retention_pb2.ClearLegalHoldRequest(subject_id=subject_id, reason=reason)
        self._retention("ClearLegalHold", request)

    def retention_report(self) -> RetentionReportInfo:
        response = self._retention("GetRetentionReport", retention_pb2.GetRetentionReportRequest())
        assert isinstance(response, retention_pb2.GetRetentionReportResponse)
        k = response.k_anonymity
        return RetentionReportInfo(
            as_of=_moment(response.as_of, response.HasField("as_of")),
            to_notify=response.to_notify,
            to_anonymize=response.to_anonymize,
            held=response.held,
            cancelled_since_last_run=response.cancelled_since_last_run,
            k_anonymity=KAnonymityInfo(
                k.k, k.records, k.groups, k.min_group_size, k.groups_below_k, k.records_below_k
            )
            if response.HasField("k_anonymity")
            else None,
        )
