"""Random identifiers and constant-time comparison."""

from __future__ import annotations

import hmac
import os
import re

from vault.crypto.derived import b32

_ID_BYTES = 16  # 128 bits: 26 base32 characters
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}")
_SUBJECT_ID = re.compile(r"sub_[a-z2-7]{26}")


def new_random_id(prefix: str) -> str:
    """`<prefix>_` + 128 random bits in lower-case base32, e.g. `new_random_id("req")`.

    `prefix` is a short lower-case word without the underscore.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError("id prefix must be a short lower-case word, without '_'")
    return f"{prefix}_{b32(os.urandom(_ID_BYTES))}"


def new_subject_id() -> str:
    """A subject id, `sub_` + 26 base32 characters: random, never derived from PII."""
    return new_random_id("sub")


def is_subject_id(text: str) -> bool:
    """True for text shaped like an id `new_subject_id` makes (checked before any lookup,
    so a caller cannot slip other text, such as an e-mail address, into the audit log)."""
    return _SUBJECT_ID.fullmatch(text) is not None


def constant_time_equals(a: bytes, b: bytes) -> bool:
    """Compare secrets (tokens, MACs) without leaking the position of the first difference."""
    return hmac.compare_digest(a, b)
