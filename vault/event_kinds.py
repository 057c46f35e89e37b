"""The kinds of events the vault offers the organization's systems (the outbox), and
the rule that keeps their facts free of personal data.

An event says that something happened to a subject: its kind, the subject's random id,
the time, and a few facts. Facts are non-personal by construction: a key from
`FACT_KEYS`, and a value made only of letters, digits and `_ - . : + ,` (purpose names,
states, codes, ids, ISO dates and times), at most `MAX_FACT_LENGTH` characters. Free
text (a name, an address, a reason typed by a person, an e-mail address) cannot pass:
`check_facts` refuses it, so a caller that tried would fail its own transaction rather
than publish it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum


class EventKind(StrEnum):
    """What happened (stored as its value; the API names it `EVENT_KIND_<NAME>`)."""

    CONSENT_GRANTED = "consent_granted"
    """Consent to purposes (or the lifting of an opt-out marker) was recorded."""
    CONSENT_WITHDRAWN = "consent_withdrawn"
    """Consent to purposes was withdrawn."""
    CONSENT_OPTED_OUT = "consent_opted_out"
    """An opt-out was recorded (fact `channel` is `gpc` for a Global Privacy Control
    signal)."""
    DORMANCY_NOTICE_CREATED = "dormancy_notice_created"
    """A dormancy notice was opened: the subject is anonymized at fact `deadline` unless
    it is active before."""
    SUBJECT_ANONYMIZED = "subject_anonymized"
    """A due notice's subject was anonymized by the retention job."""
    REQUEST_STATE_CHANGED = "request_state_changed"
    """A data-subject request moved to a new state (facts `request_id`, `request_type`,
    `state`, optionally `previous_state`, `deadline`, `reason_code`)."""


FACT_KEYS = frozenset(
    {
        # consent
        "purposes",
        "channel",
        "notice_version",
        "jurisdiction",
        "receipt_id",
        "consent_version",
        # retention
        "notice_id",
        "deadline",
        "rule",
        "run_id",
        # data-subject requests
        "request_id",
        "request_type",
        "state",
        "previous_state",
        "reason_code",
    }
)
"""The only keys a fact may have; a new kind of fact is added here, reviewed."""

MAX_FACT_LENGTH = 2048
MAX_FACTS = 16
_VALUE = re.compile(r"[A-Za-z0-9_\-.:+,]*")


def check_facts(facts: Mapping[str, str]) -> dict[str, str]:
    """The facts as stored, or ValueError (TypeError for a value not a string) naming
    the key refused, never the value."""
    if len(facts) > MAX_FACTS:
        raise ValueError(f"at most {MAX_FACTS} facts")
    checked: dict[str, str] = {}
    for key, value in facts.items():
        if key not in FACT_KEYS:
            raise ValueError(f"fact {key!r} is not a declared event fact")
        if not isinstance(value, str):
            raise TypeError(f"fact {key!r} must be a string")
        if len(value) > MAX_FACT_LENGTH or not _VALUE.fullmatch(value):
            raise ValueError(f"fact {key!r} is not a code, id, name list or date")
        checked[key] = value
    return checked
