"""Project Wycheproof vectors through the private primitives the recipes are built on.

Every case in each file is looked at: cases with parameters a primitive supports must
match exactly (valid) or be rejected (invalid); parameters it deliberately does not
support must be refused, never silently processed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.data import VECTORS
from vault.crypto._primitives import (
    GCM_NONCE_SIZE,
    GCM_TAG_SIZE,
    AesGcm,
    HmacSha256,
    hkdf_sha256,
    key_unwrap,
    key_wrap,
)
from vault.crypto.ids import constant_time_equals
from vault.errors import DecryptionError


def _load(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    document = json.loads((VECTORS / "wycheproof" / name).read_text())
    cases = [(group, case) for group in document["testGroups"] for case in group["tests"]]
    assert len(cases) == document["numberOfTests"]
    return cases


def _hex(case: dict[str, Any], name: str) -> bytes:
    return bytes.fromhex(case[name])


def test_aes_gcm() -> None:
    counts = {"valid": 0, "invalid": 0, "refused": 0}
    for group, case in _load("aes_gcm_test.json"):
        key, iv, aad, msg = (_hex(case, n) for n in ("key", "iv", "aad", "msg"))
        sealed = _hex(case, "ct") + _hex(case, "tag")
        aead = AesGcm(key)
        where = f"tcId {case['tcId']}"
        if group["ivSize"] != GCM_NONCE_SIZE * 8 or group["tagSize"] != GCM_TAG_SIZE * 8:
            with pytest.raises(ValueError):
                aead.encrypt(iv, msg, aad)
            with pytest.raises(DecryptionError):
                aead.decrypt(iv, sealed, aad)
            counts["refused"] += 1
        elif case["result"] == "valid":
            assert aead.encrypt(iv, msg, aad) == sealed, where
            assert aead.decrypt(iv, sealed, aad) == msg, where
            counts["valid"] += 1
        else:
            assert case["result"] == "invalid", where
            with pytest.raises(DecryptionError):
                aead.decrypt(iv, sealed, aad)
            counts["invalid"] += 1
    assert counts["valid"] >= 100
    assert counts["invalid"] >= 75
    assert sum(counts.values()) == 316


def test_aes_key_wrap() -> None:
    counts = {"valid": 0, "invalid": 0, "refused": 0}
    for _group, case in _load("aes_wrap_test.json"):
        kek, msg, wrapped = (_hex(case, n) for n in ("key", "msg", "ct"))
        wrappable = len(msg) >= 16 and len(msg) % 8 == 0
        where = f"tcId {case['tcId']}"
        if case["result"] == "valid":
            assert key_wrap(kek, msg) == wrapped, where
            assert key_unwrap(kek, wrapped) == msg, where
            counts["valid"] += 1
            continue
        # "acceptable" cases wrap 8-byte keys, which RFC 3394 allows and we refuse, and
        # "invalid" ones carry a bad IV or size: either way unwrapping must fail.
        with pytest.raises(DecryptionError):
            key_unwrap(kek, wrapped)
        if wrappable:
            assert key_wrap(kek, msg) != wrapped, where
        else:
            with pytest.raises(ValueError):
                key_wrap(kek, msg)
        counts["invalid" if case["result"] == "invalid" else "refused"] += 1
    assert counts["valid"] >= 30
    assert counts["invalid"] >= 100
    assert counts["refused"] == 3


def test_hkdf_sha256() -> None:
    counts = {"valid": 0, "invalid": 0}
    for _group, case in _load("hkdf_sha256_test.json"):
        ikm, salt, info, okm = (_hex(case, n) for n in ("ikm", "salt", "info", "okm"))
        if case["result"] == "valid":
            derived = hkdf_sha256(ikm, salt=salt, info=info, length=case["size"])
            assert derived == okm, f"tcId {case['tcId']}"
            counts["valid"] += 1
        else:
            with pytest.raises(ValueError):
                hkdf_sha256(ikm, salt=salt, info=info, length=case["size"])
            counts["invalid"] += 1
    assert counts["valid"] >= 80
    assert counts["invalid"] == 3


def test_hmac_sha256() -> None:
    counts = {"valid": 0, "invalid": 0}
    for group, case in _load("hmac_sha256_test.json"):
        key, msg, tag = (_hex(case, n) for n in ("key", "msg", "tag"))
        # A truncated tag is the leftmost tagSize bits of the full HMAC (RFC 2104 §5).
        computed = HmacSha256(key).digest(msg)[: group["tagSize"] // 8]
        matches = constant_time_equals(computed, tag)
        assert matches is (case["result"] == "valid"), f"tcId {case['tcId']}"
        counts[case["result"]] += 1
    assert counts["valid"] >= 60
    assert counts["invalid"] >= 100


def test_empty_salt_equals_no_salt() -> None:
    # The blind-index keys use salt=None; Wycheproof's EmptySalt cases pin b"".
    ikm = bytes(range(32))
    assert hkdf_sha256(ikm, salt=None, info=b"x", length=32) == hkdf_sha256(
        ikm, salt=b"", info=b"x", length=32
    )
