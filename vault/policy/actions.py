"""What a caller asks to do, and the resources a policy line can name."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """Every operation the policy decides, named `area:verb` as in the policy lines."""

    SUBJECT_CREATE = "subjects:create"
    SUBJECT_READ = "subjects:read"
    SUBJECT_UPDATE = "subjects:update"
    SUBJECT_FIND = "subjects:find"
    SUBJECT_ERASE = "subjects:erase"
    SUBJECT_REVEAL = "subjects:reveal"
    SUBJECT_EXPORT = "subjects:export"
    ACTIVITY_RECORD = "activity:record"
    TOKENIZE = "tokens:tokenize"
    TOKENIZE_DETERMINISTIC = "tokens:deterministic"
    DETOKENIZE = "tokens:detokenize"
    FIELD_CLEAR = "fields:clear"
    FIELD_MASKED = "fields:masked"
    AUDIT_READ = "audit:read"
    AUDIT_VERIFY = "audit:verify"
    AUDIT_READ_OWN = "audit:read_own"
    CONSENT_WRITE = "consent:write"
    CONSENT_READ = "consent:read"
    RIGHTS_ACCESS = "rights:access"
    RIGHTS_RECTIFY = "rights:rectify"
    RIGHTS_RESTRICT = "rights:restrict"
    RIGHTS_ERASE = "rights:erase"
    RETENTION_ADMIN = "retention:admin"
    LEGAL_HOLD = "retention:legal_hold"
    KEYS_ADMIN = "keys:admin"
    POLICY_ADMIN = "policy:admin"
    POLICY_SIMULATE = "policy:simulate"
    CUSTOMER_ISSUE = "customers:issue"
    NOTICE_READ = "retention:notice"
    REQUEST_SUBMIT = "requests:submit"
    REQUEST_READ_OWN = "requests:read_own"
    REQUEST_READ = "requests:read"
    REQUEST_DECIDE = "requests:decide"
    EVENTS_READ = "events:read"

    @property
    def needs_purpose(self) -> bool:
        """Reads of personal data must name why (DESIGN §3)."""
        return self in _PURPOSE_REQUIRED


_PURPOSE_REQUIRED = frozenset(
    {
        Action.SUBJECT_READ,
        Action.SUBJECT_FIND,
        Action.SUBJECT_EXPORT,
        Action.SUBJECT_REVEAL,
        Action.TOKENIZE,
        Action.TOKENIZE_DETERMINISTIC,
        Action.DETOKENIZE,
        Action.FIELD_CLEAR,
        Action.FIELD_MASKED,
    }
)

SENSITIVITY_CLASSES = ("public", "internal", "confidential", "restricted")
"""The data dictionary's sensitivity classes, least to most sensitive."""

CLASS_PREFIX = "class:"
VIEW_PREFIX = "view:"
ANY = "*"


def class_resource(sensitivity: str) -> str:
    """The resource a policy line names for fields of one sensitivity class."""
    return CLASS_PREFIX + sensitivity


def view_resource(view: str) -> str:
    """The resource a policy line names for using one masked view."""
    return VIEW_PREFIX + view
