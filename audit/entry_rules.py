"""What each audit entry field may hold: the rules that keep personal data out.

Field names, purposes and `extra` keys are lower-case names; subject ids are opaque ids
(letters, digits and `_.:-`, with at least one letter, so an e-mail address, a phone
number or a card number cannot pass for one); identifiers and codes are single tokens;
the actor is one line. None of these may hold a quote, a backslash or a control
character, so each appears in the canonical JSON exactly as stored (the verifier relies
on it). Free text (`justification`, `reason`, `extra` values) is capped in length and
free of control characters. Errors name the field, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final

from audit.errors import InvalidEntryError

# Identifiers, names and codes are short; the caps keep entries small and every
# indexed column far below PostgreSQL's btree row limit.
MAX_SHORT = 256
MAX_JUSTIFICATION = 4096
MAX_EXTRA_ITEMS = 64
MAX_LIST_ITEMS = 10_000  # a batch call may touch thousands of subjects

# A lower-case name, optionally dotted: field names, purposes, `extra` keys.
NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]{0,63}(?:\.[a-z][a-z0-9_]{0,63}){0,7}")
# An opaque id: at least one letter, so digits-only values (phone, card and national id
# numbers) are refused, and no `@`, `+`, space or quote (e-mail addresses, E.164 numbers).
OPAQUE_ID_PATTERN: Final = re.compile(r"(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
# An RPC name: `GetSubject`, `customervault.v1.VaultService/GetSubject`, or a full method.
ACTION_PATTERN: Final = re.compile(r"/?[A-Za-z][A-Za-z0-9_]*(?:[./][A-Za-z][A-Za-z0-9_]*){0,15}")
# A status name such as `OK` or `PERMISSION_DENIED`.
RESULT_CODE_PATTERN: Final = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# One token: no whitespace, quotes, backslashes or control characters.
TOKEN_PATTERN: Final = re.compile(r'[^\s"\\\x00-\x1f\x7f\ud800-\udfff]{1,256}')
# One line of text: no control characters, quotes or backslashes, so every indexed
# column appears in the canonical JSON exactly as stored, without escapes.
_LINE_FORBIDDEN = re.compile(r'["\\\x00-\x1f\x7f\ud800-\udfff]')
_CONTROL_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# Free text keeps tab and newline; lone surrogates have no UTF-8 form.
_TEXT_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")

Check = Callable[[str, object], None]


def _text_check(limit: int, forbidden: re.Pattern[str], what: str) -> Check:
    def check(name: str, value: object) -> None:
        text = _as_text(name, value)
        if len(text) > limit:
            raise InvalidEntryError(f"entry {name} is longer than {limit} characters")
        if forbidden.search(text):
            raise InvalidEntryError(f"entry {name} must be {what}")

    return check


def _pattern_check(pattern: re.Pattern[str], what: str) -> Check:
    def check(name: str, value: object) -> None:
        text = _as_text(name, value)
        if text and not pattern.fullmatch(text):
            raise InvalidEntryError(f"entry {name} must be {what}")

    return check


def _as_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidEntryError(f"entry {name} must be text")
    return value


_line = _text_check(MAX_SHORT, _LINE_FORBIDDEN, "one line without quotes or backslashes")
_short_text = _text_check(MAX_SHORT, _CONTROL_FORBIDDEN, "one line")
_token = _pattern_check(TOKEN_PATTERN, "one token without spaces or quotes")
_name = _pattern_check(NAME_PATTERN, "a lower-case name")
_opaque_id = _pattern_check(OPAQUE_ID_PATTERN, "an opaque id")

# Per field, its check; `time`, `decision` and `extra` are checked by the entry itself.
SCALAR_RULES: Final[Mapping[str, Check]] = {
    "actor": _line,
    "tenant": _token,
    "action": _pattern_check(ACTION_PATTERN, "an RPC name"),
    "purpose": _name,
    "justification": _text_check(MAX_JUSTIFICATION, _TEXT_FORBIDDEN, "text"),
    "reason": _text_check(4 * MAX_SHORT, _CONTROL_FORBIDDEN, "one line"),
    "policy_version": _token,
    "consent_version": _token,
    "result_code": _pattern_check(RESULT_CODE_PATTERN, "an upper-case status name"),
    "request_id": _token,
    "trace_id": _token,
    "caller_address": _token,
}
LIST_RULES: Final[Mapping[str, Check]] = {
    "actor_roles": _token,
    "subject_ids": _opaque_id,
    "field_names": _name,
}


def checked_tuple(name: str, raw: object, check: Check) -> tuple[str, ...]:
    """`raw` as a tuple, each item checked."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
        raise InvalidEntryError(f"entry {name} must be a sequence of text, not text")
    value = tuple(raw)
    if len(value) > MAX_LIST_ITEMS:
        raise InvalidEntryError(f"entry {name} has more than {MAX_LIST_ITEMS} items")
    for item in value:
        check(name, item)
        if not item:
            raise InvalidEntryError(f"entry {name} has an empty item")
    return value


def frozen_extra(extra: Mapping[str, str]) -> Mapping[str, str]:
    """`extra` checked, sorted by key, and read-only."""
    if not isinstance(extra, Mapping):
        raise InvalidEntryError("entry extra must be a mapping")
    if len(extra) > MAX_EXTRA_ITEMS:
        raise InvalidEntryError(f"entry extra has more than {MAX_EXTRA_ITEMS} items")
    for key, value in extra.items():
        if not NAME_PATTERN.fullmatch(_as_text("extra key", key)):
            raise InvalidEntryError("entry extra key must be a lower-case name")
        _short_text("extra value", value)
    return MappingProxyType(dict(sorted(extra.items())))


def is_opaque_id(value: str) -> bool:
    """True if `value` may be recorded as a subject id (see the module docstring)."""
    return bool(OPAQUE_ID_PATTERN.fullmatch(value))
