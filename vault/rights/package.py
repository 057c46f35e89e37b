"""The access package: everything the vault holds about one subject, as one JSON document.

Machine-readable (GDPR art. 15 and 20, PIPL art. 45, CCPA "right to know"): every
field in clear text with its provenance, the consent ledger and the receipts issued,
and the subject's access history from the audit log (who saw or changed the data,
when, for which purpose and with what outcome).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import audit
from vault.consent.models import ConsentEvent, SubjectConsent
from vault.subject import FieldValue, SubjectMeta

FORMAT = "customervault.access-package/v1"


def build_package(
    *,
    generated_at: datetime,
    controller: str,
    meta: SubjectMeta,
    fields: Mapping[str, FieldValue],
    consent: SubjectConsent,
    events: Sequence[ConsentEvent],
    receipts: Sequence[str],
    history: Sequence[audit.LoggedEntry],
    unauthenticated_omitted: int = 0,
    for_customer: bool = False,
) -> str:
    """The package as JSON text (keys sorted, so two exports of the same data are equal)."""
    document: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": generated_at.isoformat(),
        "controller": controller,
        "subject": _subject(meta),
        "fields": {
            name: {
                "value": value.value,
                "written_by": value.written_by,
                "written_at": value.written_at.isoformat(),
            }
            for name, value in sorted(fields.items())
        },
        "consent": {
            "version": consent.version,
            "consented_purposes": sorted(consent.consented),
            "opted_out": sorted(consent.opted_out),
            "events": [_event(e) for e in events],
            "receipts": [json.loads(r) for r in receipts],
        },
        "access_history": [_access(e, for_customer) for e in history],
    }
    if unauthenticated_omitted:
        # Audit entries that failed their MAC check: not written by the vault.
        document["access_history_entries_omitted"] = unauthenticated_omitted
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


def _subject(meta: SubjectMeta) -> dict[str, Any]:
    return {
        "subject_id": meta.id,
        "tenant": meta.tenant,
        "state": meta.state.value,
        "version": meta.version,
        "legal_hold": meta.legal_hold,
        "created_at": meta.created_at.isoformat(),
        "updated_at": meta.updated_at.isoformat(),
        "last_activity_at": meta.last_activity_at.isoformat(),
    }


def _event(event: ConsentEvent) -> dict[str, Any]:
    return {
        "sequence": event.id,
        "purpose": event.purpose,
        "action": event.action.value,
        "recorded_at": event.recorded_at.isoformat(),
        "expires_at": event.expires_at.isoformat() if event.expires_at else None,
        "channel": event.channel.value,
        "notice_version": event.notice_version,
        "evidence_ref": event.evidence_ref,
        "jurisdiction": event.jurisdiction,
        "receipt_id": event.receipt_id,
        "recorded_by": event.actor,
    }


def _access(logged: audit.LoggedEntry, for_customer: bool) -> dict[str, Any]:
    """One history entry. For the customer's own download: which team (roles), never which
    colleague, and no internal case references."""
    entry = logged.entry
    own = entry.actor.startswith("customer:")
    return {
        "time": entry.time.isoformat(),
        "actor": entry.actor if own or not for_customer else "",
        "actor_roles": list(entry.actor_roles),
        "action": entry.action,
        "fields": list(entry.field_names),
        "purpose": entry.purpose,
        "justification": "" if for_customer else entry.justification,
        "decision": entry.decision,
        "result": entry.result_code,
        "request_id": entry.request_id,
    }
