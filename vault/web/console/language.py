"""Audit entries and policy lines in plain language.

"agent-7 (support agent) read the support view of sub_… for support: allowed by
'support agents may read the support view for support'". Everything here works on
identifiers and codes only (entries hold no personal data); unknown actions and rules
fall back to their raw names rather than guess.
"""

from __future__ import annotations

from collections.abc import Sequence

import audit

ROLE_NAMES = {
    "support_agent": ("support agent", "support agents"),
    "support_lead": ("support lead", "support leads"),
    "dpo": ("data protection officer", "data protection officers"),
    "compliance_officer": ("compliance officer", "compliance officers"),
    "admin": ("administrator", "administrators"),
    "service": ("internal service", "internal services"),
    "marketing": ("marketing", "marketing staff"),
    "analyst": ("analyst", "analysts"),
    "fraud_analyst": ("fraud analyst", "fraud analysts"),
    "notifier": ("notification service", "notification services"),
    "system": ("the vault itself", "the vault itself"),
}

# Permission verbs, for rules: "<role plural> may <verb> <resource>".
PERMISSION_VERBS = {
    "subjects:read": "read",
    "subjects:find": "search through",
    "subjects:export": "export",
    "subjects:create": "create customers",
    "subjects:update": "change customers",
    "subjects:erase": "erase customers",
    "subjects:reveal": "reveal",
    "subjects:*": "do anything with customers",
    "fields:clear": "see in clear",
    "fields:masked": "see masked",
    "fields:*": "see in any form",
    "activity:record": "record customer activity",
    "tokens:tokenize": "tokenize fields",
    "tokens:deterministic": "mint deterministic tokens (join keys) of",
    "tokens:detokenize": "reverse tokens of",
    "tokens:*": "use tokens",
    "consent:read": "read consent",
    "consent:write": "record consent",
    "rights:*": "carry out data-subject requests",
    "audit:read": "read the audit log",
    "audit:verify": "verify the audit log",
    "keys:admin": "administer keys",
    "policy:admin": "administer the policy",
    "retention:admin": "administer retention",
    "retention:legal_hold": "set and lift legal holds",
}

# What an RPC did, in the past tense; "{view}" and "{fields}" are filled in when known.
ACTION_PHRASES = {
    "GetSubject": "read the {view} view of {subjects}",
    "FindSubjects": "searched customers through the {view} view",
    "CreateSubject": "created {subjects}",
    "BatchCreateSubjects": "created customers in a batch",
    "UpdateSubject": "changed {fields} of {subjects}",
    "EraseSubject": "erased {subjects}",
    "RecordActivity": "recorded activity of {subjects}",
    "ExportView": "exported the {view} view of every customer",
    "RevealField": "revealed {fields} of {subjects}",
    "Tokenize": "tokenized {fields} of {subjects}",
    "Detokenize": "reversed a token of {subjects}",
    "ExportSubjectData": "exported all data of {subjects}",
    "RectifySubjectData": "rectified {fields} of {subjects}",
    "RestrictProcessing": "restricted processing of {subjects}",
    "LiftRestriction": "lifted the restriction on {subjects}",
    "EraseSubjectData": "erased {subjects}",
    "QueryEntries": "searched the audit log",
    "SubjectHistory": "read the audit history of {subjects}",
    "GetEntry": "opened an audit entry",
    "GetLatestCheckpoint": "read the latest audit checkpoint",
    "GetInclusionProof": "asked for an inclusion proof",
    "GetConsistencyProof": "asked for a consistency proof",
    "VerifyLog": "verified the audit log",
    "GrantConsent": "recorded consent of {subjects}",
    "WithdrawConsent": "recorded a consent withdrawal of {subjects}",
    "GetConsent": "read the consent of {subjects}",
    "NotifySubject": "sent a dormancy notice for {subjects}",
    "CancelNotice": "cancelled the dormancy notice of {subjects}",
    "AnonymizeSubject": "anonymized {subjects}",
    "SetLegalHold": "placed a legal hold on {subjects}",
    "ClearLegalHold": "lifted the legal hold on {subjects}",
    "ListLegalHolds": "listed legal holds",
    "ListNotices": "listed dormancy notices",
    "GetRetentionReport": "read the retention report",
    "ReloadPolicy": "reloaded the policy",
    "CheckPolicy": "asked what the policy decides",
    "GetPolicyStatus": "read the policy status",
}

DISCLOSURE_ACTIONS = frozenset(
    {"GetSubject", "FindSubjects", "ExportView", "RevealField", "Detokenize", "ExportSubjectData"}
)


def role_name(role: str) -> str:
    return ROLE_NAMES.get(role, (role.replace("_", " "), ""))[0]


def _role_plural(role: str) -> str:
    if role == "*":
        return "everyone"
    plural = ROLE_NAMES.get(role, ("", ""))[1]
    return plural or role.replace("_", " ") + "s"


def short_subject(subject_id: str) -> str:
    return subject_id if len(subject_id) <= 12 else subject_id[:10] + "…"


def _resource(resource: str) -> str:
    if resource in ("", "*"):
        return ""
    kind, _, name = resource.partition(":")
    if kind == "view":
        return f"the {name} view"
    if kind == "class":
        return "fields of every class" if name == "*" else f"{name} fields"
    return resource


def rule_in_words(rule: str) -> str | None:
    """A Casbin policy line ("p, support_agent, *, subjects:read, view:support, support,
    0, *, allow") as a sentence; None when `rule` is not such a line."""
    parts = [p.strip() for p in rule.split(",")]
    if len(parts) != 9 or parts[0] != "p":
        return None
    _, role, tenant, action, resource, purpose, clearance, department, effect = parts
    verb = PERMISSION_VERBS.get(action, action)
    words = [_role_plural(role), "may" if effect == "allow" else "may never", verb]
    target = _resource(resource)
    if target:
        words.append(target)
    if purpose not in ("", "*"):
        words.append(f"for {purpose.replace('_', ' ')}")
    if clearance not in ("", "0"):
        words.append(f"with clearance {clearance} or more")
    if department not in ("", "*"):
        words.append(f"in the {department} department")
    if tenant not in ("", "*"):
        words.append(f"in tenant {tenant}")
    return " ".join(words)


def _list(names: Sequence[str], limit: int = 3) -> str:
    shown = list(names[:limit])
    if len(names) > limit:
        shown.append(f"{len(names) - limit} more")
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def outcome(entry: audit.AuditEntry) -> str:
    """ "allowed by '…'" or "denied: …", from the decision and the rule it names."""
    words = rule_in_words(entry.reason)
    if entry.decision == audit.ALLOW:
        if words:
            return f"allowed by '{words}'"
        return f"allowed ({entry.reason})" if entry.reason else "allowed"
    if entry.reason == "default-deny":
        return "denied: no policy line allows it"
    if words:
        return f"denied by '{words}'"
    return f"denied ({entry.reason})" if entry.reason else "denied"


def sentence(entry: audit.AuditEntry) -> str:
    """The whole entry in one sentence (roles in words, subject ids shortened)."""
    roles = ", ".join(role_name(r) for r in entry.actor_roles)
    who = f"{entry.actor} ({roles})" if roles else entry.actor
    subjects = (
        _list([short_subject(s) for s in entry.subject_ids]) if entry.subject_ids else "a customer"
    )
    fields = _list(list(entry.field_names)) if entry.field_names else "fields"
    phrase = ACTION_PHRASES.get(entry.action, f"called {entry.action}")
    did = phrase.format(view=entry.extra.get("view", "?"), subjects=subjects, fields=fields)
    if "{subjects}" not in phrase and entry.subject_ids:
        did += f" ({subjects})"
    text = f"{who} {did}"
    if entry.purpose:
        text += f" for {entry.purpose.replace('_', ' ')}"
    text += f": {outcome(entry)}"
    if entry.result_code and entry.result_code not in ("OK", "PERMISSION_DENIED"):
        text += f"; the call ended {entry.result_code}"
    return text
