"""AuditService: the compliance officer's window on the audit log, over gRPC.

Queries are scoped to the caller's tenant; proofs and checkpoints cover the whole log
(they hold hashes only). Reading needs `audit:read`, verifying `audit:verify`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import grpc
from customer_vault_client.gen.customervault.v1 import audit_pb2 as pb
from customer_vault_client.gen.customervault.v1 import audit_pb2_grpc
from google.protobuf import timestamp_pb2
from sqlalchemy.engine import Engine

import audit
from audit.query import MAX_PAGE_SIZE
from audit.witness import WitnessClient, WitnessUnavailableError
from vault.access.guard import authorize
from vault.api.convert import timestamp, when
from vault.api.whatif_messages import explanation_message
from vault.context import require_call
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from vault.policy import Action, PolicyEngine
from vault.whatif.service import WhatIfService

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def entry_message(logged: audit.LoggedEntry) -> pb.AuditEntry:
    e = logged.entry
    return pb.AuditEntry(
        index=-1 if logged.leaf_index is None else logged.leaf_index,
        time=_timestamp(e.time),
        actor=e.actor,
        roles=list(e.actor_roles),
        tenant=e.tenant,
        action=e.action,
        subject_ids=list(e.subject_ids),
        field_names=list(e.field_names),
        purpose=e.purpose,
        justification=e.justification,
        decision=e.decision,
        reason=e.reason,
        policy_version=e.policy_version,
        consent_version=e.consent_version,
        result_code=e.result_code,
        request_id=e.request_id,
        trace_id=e.trace_id,
        caller_address=e.caller_address,
        extra=dict(e.extra),
        mac=logged.mac or b"",
    )


def _as_the_subject_sees_it(entry: pb.AuditEntry, own: str) -> None:
    """A customer's own history names which team (roles), what, for which purpose and
    when; not which colleague, from where, other subjects, or internal references."""
    if not entry.actor.startswith("customer:"):
        entry.actor = ""
    del entry.subject_ids[:]
    entry.subject_ids.append(own)
    entry.justification = ""
    entry.caller_address = ""
    entry.reason = ""
    entry.extra.clear()


def _page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidArgumentError([FieldViolation("page_size", f"between 0 and {MAX_PAGE_SIZE}")])
    return value or DEFAULT_PAGE_SIZE


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """The gRPC face of `audit/`."""

    def __init__(
        self,
        engine: Engine,
        policy: PolicyEngine,
        verifier: audit.CheckpointVerifier,
        *,
        mac: audit.EntryMac | None = None,
        witnesses: Sequence[WitnessClient] = (),
        whatif: WhatIfService | None = None,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._verifier = verifier
        self._mac = mac
        self._witnesses = tuple(witnesses)
        self._whatif = whatif

    def _page(
        self, tenant: str, page_size: int, page_token: str, **filters: object
    ) -> pb.QueryEntriesResponse:
        try:
            page = audit.query(
                self._engine,
                tenant=tenant,
                page_size=_page_size(page_size),
                page_token=page_token or None,
                **filters,  # type: ignore[arg-type]
            )
        except audit.PageTokenError:
            raise InvalidArgumentError(
                [FieldViolation("page_token", "not a token for this query")]
            ) from None
        except ValueError:
            raise InvalidArgumentError([FieldViolation("filter", "invalid filter")]) from None
        return pb.QueryEntriesResponse(
            entries=[entry_message(e) for e in page.entries],
            next_page_token=page.next_page_token or "",
        )

    def QueryEntries(
        self, request: pb.QueryEntriesRequest, context: grpc.ServicerContext
    ) -> pb.QueryEntriesResponse:
        call = require_call()
        principal = authorize(self._policy, call, Action.AUDIT_READ)
        f = request.filter
        if f.subject_id:
            call.subject_ids = [f.subject_id]
        return self._page(
            principal.tenant,
            request.page_size,
            request.page_token,
            subject_id=f.subject_id or None,
            actor=f.actor or None,
            action=f.action or None,
            decision=f.decision or None,
            purpose=f.purpose or None,
            role=f.role or None,
            result_code=f.result_code or None,
            since=when(f.since, f.HasField("since"), "filter.since"),
            until=when(f.until, f.HasField("until"), "filter.until"),
            newest_first=request.newest_first,
        )

    def GetEntry(
        self, request: pb.GetEntryRequest, context: grpc.ServicerContext
    ) -> pb.GetEntryResponse:
        call = require_call()
        principal = authorize(self._policy, call, Action.AUDIT_READ)
        if request.index < 0:
            raise InvalidArgumentError([FieldViolation("index", "must not be negative")])
        found = audit.entry_at(self._engine, request.index, tenant=principal.tenant)
        if found is None:
            raise NotFoundError("no entry of this tenant at that index")
        return pb.GetEntryResponse(entry=entry_message(found))

    def ExplainEntry(
        self, request: pb.ExplainEntryRequest, context: grpc.ServicerContext
    ) -> pb.ExplainEntryResponse:
        if self._whatif is None:
            raise FailedPreconditionError("entry explanation is not served by this process")
        explanation = self._whatif.explain(require_call(), request.index)
        return explanation_message(explanation, entry_message(explanation.logged))

    def SubjectHistory(
        self, request: pb.SubjectHistoryRequest, context: grpc.ServicerContext
    ) -> pb.SubjectHistoryResponse:
        call = require_call()
        own = call.require_principal().subject
        action = Action.AUDIT_READ if own is None else Action.AUDIT_READ_OWN
        principal = authorize(self._policy, call, action)
        if not request.subject_id:
            raise InvalidArgumentError([FieldViolation("subject_id", "required")])
        call.subject_ids = [request.subject_id]
        if own is not None and request.subject_id != own:
            call.deny("customer bound to another subject")
            raise NotFoundError("subject not found")
        page = self._page(
            principal.tenant,
            request.page_size,
            request.page_token,
            subject_id=request.subject_id,
            newest_first=request.newest_first,
        )
        if own is not None:
            for entry in page.entries:
                _as_the_subject_sees_it(entry, own)
        return pb.SubjectHistoryResponse(entries=page.entries, next_page_token=page.next_page_token)

    def _checkpoint(self, note: str | None) -> pb.Checkpoint:
        if note is None:
            raise NotFoundError("the audit log has no checkpoint yet")
        head = self._verifier.verify(note)
        return pb.Checkpoint(
            origin=head.origin, tree_size=head.size, root_hash=head.root_hash, note=note
        )

    def GetLatestCheckpoint(
        self, request: pb.GetLatestCheckpointRequest, context: grpc.ServicerContext
    ) -> pb.GetLatestCheckpointResponse:
        authorize(self._policy, require_call(), Action.AUDIT_READ)
        checkpoint = self._checkpoint(audit.latest_checkpoint(self._engine))
        checkpoint.witness_cosignatures.extend(
            pb.WitnessCosignature(
                witness=c.witness,
                tree_size=c.size,
                root_hash=c.root_hash,
                line=c.line,
                cosign_time=timestamp(datetime.fromtimestamp(c.cosigned_at, UTC)),
            )
            for c in audit.newest_cosignatures(self._engine)
        )
        return pb.GetLatestCheckpointResponse(checkpoint=checkpoint)

    def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> pb.GetInclusionProofResponse:
        authorize(self._policy, require_call(), Action.AUDIT_READ)
        if not 0 <= request.index < request.tree_size:
            raise InvalidArgumentError([FieldViolation("index", "must be below tree_size")])
        try:
            hashes = audit.inclusion_proof(self._engine, request.index, request.tree_size)
            leaf = audit.leaf_hash_at(self._engine, request.index)
        except (audit.ProofError, audit.VerifyError) as exc:
            raise FailedPreconditionError(str(exc)) from None
        return pb.GetInclusionProofResponse(
            index=request.index, tree_size=request.tree_size, leaf_hash=leaf, hashes=hashes
        )

    def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> pb.GetConsistencyProofResponse:
        authorize(self._policy, require_call(), Action.AUDIT_READ)
        if not 0 < request.first_size <= request.second_size:
            raise InvalidArgumentError(
                [FieldViolation("first_size", "must be positive and at most second_size")]
            )
        try:
            hashes = audit.consistency_proof(self._engine, request.first_size, request.second_size)
        except (audit.ProofError, audit.VerifyError) as exc:
            raise FailedPreconditionError(str(exc)) from None
        return pb.GetConsistencyProofResponse(
            first_size=request.first_size, second_size=request.second_size, hashes=hashes
        )

    def VerifyLog(
        self, request: pb.VerifyLogRequest, context: grpc.ServicerContext
    ) -> pb.VerifyLogResponse:
        call = require_call()
        authorize(self._policy, call, Action.AUDIT_VERIFY)
        trusted: list[str | audit.Checkpoint] = [
            *([request.trusted_checkpoint] if request.trusted_checkpoint else []),
            *witnessed_latest(self._witnesses, self._verifier),
        ]
        try:
            report = audit.verify_log(
                self._engine,
                self._verifier,
                trusted,
                mac=self._mac,
                witnesses=[w.verifier for w in self._witnesses],
            )
        except audit.CheckpointError:
            raise _untrusted_checkpoint() from None
        return self._verified(report)

    def VerifyLogWithProgress(
        self, request: pb.VerifyLogWithProgressRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.VerifyLogWithProgressResponse]:
        call = require_call()
        authorize(self._policy, call, Action.AUDIT_VERIFY)
        # verify_log reports progress through a callback; it runs in a thread of its own
        # and hands each step over a queue, so this generator can stream them.
        steps: queue.Queue[tuple[int, int] | None] = queue.Queue()
        outcome: dict[str, object] = {}
        trusted: list[str | audit.Checkpoint] = [
            *([request.trusted_checkpoint] if request.trusted_checkpoint else []),
            *witnessed_latest(self._witnesses, self._verifier),
        ]

        def run() -> None:
            try:
                outcome["report"] = audit.verify_log(
                    self._engine,
                    self._verifier,
                    trusted,
                    mac=self._mac,
                    witnesses=[w.verifier for w in self._witnesses],
                    progress=lambda done, total: steps.put((done, total)),
                )
            except Exception as exc:  # noqa: BLE001 - re-raised in the RPC's thread
                outcome["error"] = exc
            finally:
                steps.put(None)

        worker = threading.Thread(target=run, name="verify-log", daemon=True)
        worker.start()
        while (step := steps.get()) is not None:
            yield pb.VerifyLogWithProgressResponse(checked=step[0], total=step[1])
        worker.join()
        error = outcome.get("error")
        if isinstance(error, audit.CheckpointError):
            raise _untrusted_checkpoint()
        if isinstance(error, Exception):
            raise error
        report = outcome["report"]
        assert isinstance(report, audit.VerifyReport)
        yield pb.VerifyLogWithProgressResponse(
            checked=report.verified_size, total=report.size, result=self._verified(report)
        )

    def _verified(self, report: audit.VerifyReport) -> pb.VerifyLogResponse:
        require_call().extra = {"verified": str(report.ok).lower(), "size": str(report.size)}
        latest = audit.latest_checkpoint(self._engine)
        return pb.VerifyLogResponse(
            ok=report.ok,
            entries_checked=report.verified_size,
            first_bad_index=-1 if report.first_bad_position is None else report.first_bad_position,
            problem=report.problem or "",
            checkpoint=self._checkpoint(latest) if latest and report.ok else None,
            cosigned_by=list(report.latest_cosigned_by),
            macs_checked=report.mac_checked,
            entries_without_mac=report.mac_legacy,
        )


def _untrusted_checkpoint() -> InvalidArgumentError:
    return InvalidArgumentError(
        [FieldViolation("trusted_checkpoint", "not a checkpoint signed by this log")]
    )


def witnessed_latest(
    witnesses: Sequence[WitnessClient], verifier: audit.CheckpointVerifier
) -> list[audit.Checkpoint]:
    """Each reachable witness's latest checkpoint of this log, its cosignature checked:
    the database must hold at least that tree (a rewound database does not). A witness
    that cannot be reached adds nothing here; the stored cosignatures are still checked."""
    found = []
    for witness in witnesses:
        # The vault names its checkpoint key after the log's origin.
        origin = verifier.origin or verifier.key_name
        if origin is None:
            break
        try:
            note = witness.latest(origin)
            if note is not None:
                witness.verifier.find(note)
                found.append(verifier.verify(note))
        except (WitnessUnavailableError, audit.CheckpointError):
            log.warning("witness %s: latest checkpoint unavailable for verification", witness.name)
    return found
