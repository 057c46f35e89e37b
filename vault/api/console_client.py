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

from customer_vault_client.gen.customervault.v1 import (
    admin_pb2,
    audit_pb2,
    consent_pb2,
    customers_pb2,
    retention_pb2,
    rights_pb2,
)
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

import audit
from vault.api.client import VaultClient, VaultClientError
from vault.api.request_client import MyRequests, RequestInfo, RequestQueue

__all__ = [
    "CheckpointInfo",
    "ConsoleClient",
    "CosignatureInfo",
    "CustomerClient",
    "CustomerSignIn",
    "EntryPage",
    "KAnonymityInfo",
    "LegalHoldInfo",
    "LoggedEntry",
    "NoticeInfo",
    "ProofInfo",
    "PurposeChoice",
    "Receipt",
    "RequestInfo",
    "RetentionReportInfo",
    "RunInfo",
    "ShownField",
    "VaultClientError",
    "VerifyInfo",
    "VerifyStep",
    "redeem_link",
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
class CosignatureInfo:
    """A witness's newest stored cosignature, as the vault reports it (unchecked)."""

    witness: str
    tree_size: int
    root_hash: bytes
    line: str
    cosigned_at: datetime | None


@dataclass(frozen=True)
class CheckpointInfo:
    origin: str
    tree_size: int
    root_hash: bytes
    note: str
    cosignatures: tuple[CosignatureInfo, ...] = ()


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
class RunInfo:
    """A past retention run as the caller's tenant sees it (`tenant_reported` False: a
    run stored before per-tenant reports, its counts unknown here)."""

    run_id: str
    started_at: datetime | None
    finished_at: datetime | None
    interrupted: bool
    tenant_reported: bool
    notified: int
    anonymized: int
    cancelled: int
    held: int
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


def _as_dict(message: object) -> dict[str, object]:
    """A response in its fields' own names (enum values by name, times as RFC 3339)."""
    assert isinstance(message, Message)
    return dict(
        json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    )


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
    return CheckpointInfo(
        message.origin,
        message.tree_size,
        message.root_hash,
        message.note,
        tuple(
            CosignatureInfo(
                c.witness,
                c.tree_size,
                c.root_hash,
                c.line,
                _moment(c.cosign_time, c.HasField("cosign_time")),
            )
            for c in message.witness_cosignatures
        ),
    )


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

    @property
    def requests(self) -> RequestQueue:
        """Customers' data-subject requests: the queue, one request, the decision."""
        return RequestQueue(self._client)

    def _retention(self, method: str, request: object) -> object:
        return self._client.call(self._client.retention, method, request)

    # --- policy what-if and as-of (plain dicts: the page reads names, never protobuf) -

    def simulate(
        self,
        files: dict[str, str],
        *,
        draft_version: str = "",
        since: datetime | None = None,
        fail_on: tuple[str, ...] = (),
    ) -> dict[str, object]:
        """PolicyAdminService.SimulatePolicy, as a dict in the messages' field names."""
        request = admin_pb2.SimulatePolicyRequest(
            draft_files=[admin_pb2.PolicyFile(name=n, content=t) for n, t in files.items()],
            draft_version=draft_version,
            start_time=_timestamp(since) if since else None,
            fail_on=list(fail_on),
        )
        return _as_dict(self._client.call(self._client.admin, "SimulatePolicy", request))

    def policy_versions(self) -> list[dict[str, object]]:
        """PolicyAdminService.ListPolicyVersions: the kept versions, latest first."""
        request = admin_pb2.ListPolicyVersionsRequest()
        reply = self._client.call(self._client.admin, "ListPolicyVersions", request)
        found = _as_dict(reply).get("policy_versions", [])
        return [dict(item) for item in found] if isinstance(found, list) else []

    def explain(self, index: int) -> dict[str, object]:
        """AuditService.ExplainEntry, as a dict in the messages' field names."""
        request = audit_pb2.ExplainEntryRequest(index=index)
        return _as_dict(self._audit("ExplainEntry", request))

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
        assert isinstance(
            response, (audit_pb2.QueryEntriesResponse, audit_pb2.SubjectHistoryResponse)
        )
        return EntryPage(
            tuple(logged_entry(e) for e in response.entries), response.next_page_token or None
        )

    def entry(self, index: int) -> LoggedEntry:
        response = self._audit("GetEntry", audit_pb2.GetEntryRequest(index=index))
        assert isinstance(response, audit_pb2.GetEntryResponse)
        return logged_entry(response.entry)

    def latest_checkpoint(self) -> CheckpointInfo:
        response = self._audit("GetLatestCheckpoint", audit_pb2.GetLatestCheckpointRequest())
        assert isinstance(response, audit_pb2.GetLatestCheckpointResponse)
        return _checkpoint(response.checkpoint)

    def inclusion_proof(self, index: int, tree_size: int) -> ProofInfo:
        request = audit_pb2.GetInclusionProofRequest(index=index, tree_size=tree_size)
        response = self._audit("GetInclusionProof", request)
        assert isinstance(response, audit_pb2.GetInclusionProofResponse)
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
            self._client.audit, "VerifyLogWithProgress", audit_pb2.VerifyLogWithProgressRequest()
        )
        for message in stream:
            assert isinstance(message, audit_pb2.VerifyLogWithProgressResponse)
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
            k_anonymity=_k_info(k) if response.HasField("k_anonymity") else None,
        )

    def retention_runs(self, page_size: int = 10) -> list[RunInfo]:
        """The newest finished retention runs, with the caller's tenant's part of each."""
        request = retention_pb2.ListRetentionRunsRequest(page_size=page_size)
        response = self._retention("ListRetentionRuns", request)
        assert isinstance(response, retention_pb2.ListRetentionRunsResponse)
        return [
            RunInfo(
                r.run_id,
                _moment(r.start_time, r.HasField("start_time")),
                _moment(r.finish_time, r.HasField("finish_time")),
                r.interrupted,
                r.tenant_reported,
                r.notified,
                r.anonymized,
                r.cancelled,
                r.held,
                _k_info(r.k_anonymity) if r.HasField("k_anonymity") else None,
            )
            for r in response.runs
        ]


def _k_info(k: retention_pb2.KAnonymity) -> KAnonymityInfo:
    return KAnonymityInfo(
        k.k, k.records, k.groups, k.min_group_size, k.groups_below_k, k.records_below_k
    )


# --- the privacy center: a customer's own calls ---------------------------------------


@dataclass(frozen=True)
class CustomerSignIn:
    token: str
    subject_id: str
    expires_at: datetime | None


@dataclass(frozen=True)
class ShownField:
    name: str
    value: str
    strategy: str


@dataclass(frozen=True)
class PurposeChoice:
    purpose: str
    legal_basis: str
    granted: bool
    withdrawn: bool
    effective: bool
    blocked_by: str


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    document: str


SELF_VIEW = "self"
SELF_PURPOSE = "data_subject_request"


def self_service_reference() -> str:
    """The case reference a customer's own request cites (data_subject_request needs one):
    `SELF-<date>`, the customer acting for themselves in the privacy center."""
    return f"SELF-{datetime.now(UTC):%Y%m%d}: the customer's own request in the privacy center"


def redeem_link(address: str, code: str, *, ca_file: Path | None = None) -> CustomerSignIn:
    """Exchange a one-time link code for a customer token (the code is the credential)."""
    with VaultClient(address, "", ca_file=ca_file) as client:
        response = client.call(
            client.customers,
            "RedeemCustomerLink",
            customers_pb2.RedeemCustomerLinkRequest(code=code),
        )
    assert isinstance(response, customers_pb2.RedeemCustomerLinkResponse)
    return CustomerSignIn(
        response.token,
        response.subject_id,
        _moment(response.expires_at, response.HasField("expires_at")),
    )


class CustomerClient:
    """What a signed-in customer does, with their own token bound to their subject."""

    def __init__(
        self,
        address: str,
        token: str,
        subject_id: str,
        *,
        notice_version: str,
        ca_file: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._client = VaultClient(address, token, ca_file=ca_file, timeout=timeout)
        self.subject_id = subject_id
        self._notice_version = notice_version

    def __enter__(self) -> CustomerClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.__exit__(None, None, None)

    def _consent(self, method: str, request: object) -> object:
        return self._client.call(self._client.consent, method, request)

    @property
    def requests(self) -> MyRequests:
        """The customer's own rectification, restriction and erasure requests."""
        return MyRequests(self._client, self.subject_id)

    def _source(self, *, gpc: bool = False) -> consent_pb2.ConsentSource:
        return consent_pb2.ConsentSource(
            channel=consent_pb2.CONSENT_CHANNEL_GPC if gpc else consent_pb2.CONSENT_CHANNEL_WEB,
            notice_version=self._notice_version,
        )

    def my_data(self) -> list[ShownField]:
        view = self._client.get(
            self.subject_id, SELF_VIEW, SELF_PURPOSE, justification=self_service_reference()
        )
        return [
            ShownField(name, value.value, value.strategy) for name, value in view.fields.items()
        ]

    def choices(self) -> tuple[list[PurposeChoice], tuple[str, ...]]:
        """Each purpose the customer decides (and each opt-out marker), and the markers
        they opted out of."""
        response = self._consent(
            "GetConsent", consent_pb2.GetConsentRequest(subject_id=self.subject_id)
        )
        assert isinstance(response, consent_pb2.GetConsentResponse)
        return (
            [
                PurposeChoice(
                    p.purpose, p.legal_basis, p.granted, p.withdrawn, p.effective, p.blocked_by
                )
                for p in response.purposes
            ],
            tuple(response.opted_out_markers),
        )

    def grant(self, purpose: str) -> Receipt:
        response = self._consent(
            "GrantConsent",
            consent_pb2.GrantConsentRequest(
                subject_id=self.subject_id, purposes=[purpose], source=self._source()
            ),
        )
        assert isinstance(response, consent_pb2.GrantConsentResponse)
        return Receipt(response.receipt.receipt_id, response.receipt.document)

    def withdraw(self, purpose: str) -> Receipt:
        response = self._consent(
            "WithdrawConsent",
            consent_pb2.WithdrawConsentRequest(
                subject_id=self.subject_id, purposes=[purpose], source=self._source()
            ),
        )
        assert isinstance(response, consent_pb2.WithdrawConsentResponse)
        return Receipt(response.receipt.receipt_id, response.receipt.document)

    def opt_out(self, scopes: list[str], *, gpc: bool = False) -> Receipt:
        response = self._consent(
            "OptOut",
            consent_pb2.OptOutRequest(
                subject_id=self.subject_id, scopes=scopes, source=self._source(gpc=gpc)
            ),
        )
        assert isinstance(response, consent_pb2.OptOutResponse)
        return Receipt(response.receipt.receipt_id, response.receipt.document)

    def history(self, *, limit: int = 100) -> list[audit.AuditEntry]:
        """The customer's own access history, newest first (as the vault shows it to
        them: by team, never by colleague)."""
        response = self._client.call(
            self._client.audit,
            "SubjectHistory",
            audit_pb2.SubjectHistoryRequest(
                subject_id=self.subject_id, page_size=limit, newest_first=True
            ),
        )
        assert isinstance(response, audit_pb2.SubjectHistoryResponse)
        return [logged_entry(e).entry for e in response.entries]

    def dormancy_deadline(self) -> datetime | None:
        """When the customer's account is anonymized unless they are active, or None."""
        response = self._client.call(
            self._client.customers,
            "GetDormancyNotice",
            customers_pb2.GetDormancyNoticeRequest(subject_id=self.subject_id),
        )
        assert isinstance(response, customers_pb2.GetDormancyNoticeResponse)
        return _moment(response.deadline, response.open)

    def keep_account(self) -> None:
        """Activity on the account: closes an open dormancy notice."""
        self._client.record_activity(self.subject_id)

    def download(self) -> tuple[str, str]:
        """The customer's access package: (JSON text, the signed document)."""
        response = self._client.call(
            self._client.rights,
            "ExportSubjectData",
            rights_pb2.ExportSubjectDataRequest(
                subject_id=self.subject_id, reason=self_service_reference()
            ),
        )
        assert isinstance(response, rights_pb2.ExportSubjectDataResponse)
        return response.package_json, response.signed_package

    def receipt(self, receipt_id: str) -> Receipt:
        response = self._consent(
            "GetConsentReceipt",
            consent_pb2.GetConsentReceiptRequest(subject_id=self.subject_id, receipt_id=receipt_id),
        )
        assert isinstance(response, consent_pb2.GetConsentReceiptResponse)
        return Receipt(response.receipt.receipt_id, response.receipt.document)
