"""Simulation reports and entry explanations as protobuf messages (PolicyAdminService
.SimulatePolicy, .ListPolicyVersions and AuditService.ExplainEntry)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from customer_vault_client.gen.customervault.v1 import admin_pb2, audit_pb2
from google.protobuf import timestamp_pb2

from vault.storage.policy_versions import StoredVersion
from vault.whatif.changes import ChangeKind
from vault.whatif.explain import Explanation, Outcome
from vault.whatif.simulate import Simulation

KINDS = {
    ChangeKind.ALLOW_TO_DENY: admin_pb2.CHANGE_KIND_ALLOW_TO_DENY,
    ChangeKind.DENY_TO_ALLOW: admin_pb2.CHANGE_KIND_DENY_TO_ALLOW,
    ChangeKind.WIDENED: admin_pb2.CHANGE_KIND_WIDENED,
    ChangeKind.NARROWED: admin_pb2.CHANGE_KIND_NARROWED,
    ChangeKind.CHANGED: admin_pb2.CHANGE_KIND_CHANGED,
}


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def simulation_message(result: Simulation) -> admin_pb2.SimulatePolicyResponse:
    """The report of `policy simulate`."""
    reply = admin_pb2.SimulatePolicyResponse(
        base_version=result.base_version,
        draft_version=result.draft_version,
        matrix_cells=result.matrix.cells,
        failed_checks=list(result.failed),
    )
    replay = result.replay
    if replay is not None:
        reply.replay.CopyFrom(
            admin_pb2.ReplaySummary(
                entries_scanned=replay.scanned,
                entries_replayed=replay.replayed,
                entries_without_question=replay.without_question,
                entries_unknown_version=replay.unknown_version,
                entries_changed=replay.changed,
                distinct_questions=replay.distinct_questions,
            )
        )
        for group in replay.groups:
            key = group.key
            reply.groups.append(
                admin_pb2.ChangeGroup(
                    kind=KINDS[key.kind],
                    roles=key.roles,
                    action=key.action,
                    purpose=key.purpose,
                    sensitivity=key.sensitivity,
                    entry_count=group.count,
                    causes=sorted(group.causes),
                    resources=sorted(group.resources),
                    fields=sorted(group.fields),
                    examples=[
                        admin_pb2.ChangeExample(
                            leaf_index=e.leaf_index, subject_ids=list(e.subject_ids)
                        )
                        for e in group.examples
                    ],
                )
            )
    for change in result.matrix.changes:
        reply.matrix_changes.append(
            admin_pb2.MatrixChange(
                role=change.role,
                action=change.action,
                purpose=change.purpose,
                resource=change.resource,
                before=change.before,
                after=change.after,
                kind=KINDS[change.kind],
            )
        )
    return reply


def versions_message(
    versions: Sequence[StoredVersion], in_force: str, next_cursor: str = ""
) -> admin_pb2.ListPolicyVersionsResponse:
    """A page of the kept policy versions (the cursor is sealed by the runner)."""
    return admin_pb2.ListPolicyVersionsResponse(
        next_page_token=next_cursor,
        policy_versions=[
            admin_pb2.PolicyVersion(
                version=v.version,
                first_serve_time=_timestamp(v.first_served),
                last_serve_time=_timestamp(v.last_served),
                in_force=v.version == in_force,
            )
            for v in versions
        ],
    )


def _decision(outcome: Outcome) -> audit_pb2.ReplayedDecision:
    return audit_pb2.ReplayedDecision(
        policy_version=outcome.policy_version,
        allowed=outcome.allowed,
        rule=outcome.rule,
        reason=outcome.reason,
        subject_rule=outcome.subject_rule,
        consent_version=outcome.consent_version,
        outcome=outcome.word,
    )


def explanation_message(
    explanation: Explanation, entry: audit_pb2.AuditEntry
) -> audit_pb2.ExplainEntryResponse:
    """The answer of `audit explain`."""
    reply = audit_pb2.ExplainEntryResponse(
        entry=entry,
        agrees=explanation.agrees,
        verdict=explanation.verdict,
        note=explanation.note,
        same_now=explanation.same_now,
    )
    question = explanation.question
    if question is not None:
        reply.policy_action = question.action.value
        reply.policy_resource = question.resource
    if explanation.then is not None:
        reply.then.CopyFrom(_decision(explanation.then))
    if explanation.now is not None:
        reply.now.CopyFrom(_decision(explanation.now))
    event = explanation.consent_event
    if event is not None:
        relied = audit_pb2.ReliedConsentEvent(
            event_id=event.id,
            purpose=event.purpose,
            action=event.action.value,
            record_time=_timestamp(event.recorded_at),
            receipt_id=event.receipt_id,
        )
        if event.expires_at is not None:
            relied.expire_time.CopyFrom(_timestamp(event.expires_at))
        reply.consent_event.CopyFrom(relied)
    return reply
