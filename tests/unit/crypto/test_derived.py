"""Blind indexes, deterministic and random tokens, pseudonyms."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import assume, given
from hypothesis import strategies as st

from vault.crypto import BlindIndexer, KeyRing, Pseudonymizer, Tokenizer, token_key_version
from vault.crypto.derived import b32

ROOT = bytes(range(100, 132))


def test_blind_index_matches_the_specification() -> None:
    # Computed independently from docs/architecture.md: HKDF-SHA256(root, salt=None,
    # info="cv:bidx:v1|tenant|field"), then HMAC-SHA256 of the normalized value.
    key = HKDF(hashes.SHA256(), 32, None, b"cv:bidx:v1|acme|email").derive(ROOT)
    expected = hmac.new(key, b"jane@example.com", "sha256").digest()
    assert BlindIndexer(ROOT).compute("acme", "email", "jane@example.com") == expected


def test_blind_index_is_deterministic_and_separated(ring: KeyRing) -> None:
    indexer = ring.blind_indexer()
    digest = indexer.compute("acme", "email", "jane@example.com")
    assert len(digest) == 32
    assert indexer.compute("acme", "email", "jane@example.com") == digest
    assert indexer.compute("other", "email", "jane@example.com") != digest
    assert indexer.compute("acme", "backup_email", "jane@example.com") != digest
    assert indexer.compute("acme", "email", "john@example.com") != digest
    assert digest != hashlib.sha256(b"jane@example.com").digest()
    assert BlindIndexer(ROOT).compute("acme", "email", "jane@example.com") != digest


@given(tenant=st.text(max_size=10), field=st.text(max_size=10), value=st.text(max_size=40))
def test_blind_index_matches_stdlib_hmac(tenant: str, field: str, value: str) -> None:
    assume("|" not in tenant and "|" not in field)
    info = f"cv:bidx:v1|{tenant}|{field}".encode()
    key = HKDF(hashes.SHA256(), 32, None, info).derive(ROOT)
    expected = hmac.digest(key, value.encode(), "sha256")
    assert BlindIndexer(ROOT).compute(tenant, field, value) == expected


def test_separator_in_names_is_refused() -> None:
    # "a|b" + "c" and "a" + "b|c" would otherwise share one key.
    for deriver in (BlindIndexer(ROOT).compute, Tokenizer(ROOT).deterministic):
        with pytest.raises(ValueError):
            deriver("a|b", "c", "v")
        with pytest.raises(ValueError):
            deriver("a", "b|c", "v")


def test_deterministic_tokens(ring: KeyRing) -> None:
    tokenizer = ring.tokenizer()
    token = tokenizer.deterministic("acme", "email", "jane@example.com")
    assert re.fullmatch(r"tkd_k1_[a-z2-7]{32}", token)
    assert tokenizer.deterministic("acme", "email", "jane@example.com") == token
    assert tokenizer.deterministic("other", "email", "jane@example.com") != token
    assert tokenizer.deterministic("acme", "phone", "jane@example.com") != token
    assert tokenizer.deterministic("acme", "email", "john@example.com") != token


def test_token_keys_are_not_blind_index_keys(ring: KeyRing) -> None:
    token = ring.tokenizer().deterministic("acme", "email", "jane@example.com")
    digest = ring.blind_indexer().compute("acme", "email", "jane@example.com")
    assert token[7:] != b32(digest[:20])
    same_root = Tokenizer(ROOT).deterministic("acme", "email", "v")
    assert same_root[7:] != b32(BlindIndexer(ROOT).compute("acme", "email", "v")[:20])


def test_random_tokens_are_unique(ring: KeyRing) -> None:
    tokens = {ring.tokenizer().random_token() for _ in range(2000)}
    assert len(tokens) == 2000
    assert all(re.fullmatch(r"tkr_k1_[a-z2-7]{26}", t) for t in tokens)


def test_pseudonyms(ring: KeyRing) -> None:
    pseudonymizer = ring.pseudonymizer()
    pseudonym = pseudonymizer.pseudonym("acme", "name", "Jane Doe")
    assert re.fullmatch(r"psd_[a-z2-7]{16}", pseudonym)
    assert pseudonymizer.pseudonym("acme", "name", "Jane Doe") == pseudonym
    assert pseudonymizer.pseudonym("other", "name", "Jane Doe") != pseudonym
    assert pseudonymizer.pseudonym("acme", "name", "John Doe") != pseudonym
    token = ring.tokenizer().deterministic("acme", "name", "Jane Doe")
    assert not token[7:].startswith(pseudonym[4:])
    assert Pseudonymizer(ROOT).pseudonym("acme", "name", "Jane Doe") != pseudonym


@given(st.binary(max_size=64))
def test_b32_matches_the_stdlib(data: bytes) -> None:
    assert b32(data) == base64.b32encode(data).decode().rstrip("=").lower()


def test_tokens_carry_their_key_version_and_change_with_it() -> None:
    old, new = Tokenizer(ROOT, 1), Tokenizer(bytes(range(32, 64)), 2)
    token = old.deterministic("acme", "email", "jane@example.com")
    rotated = new.deterministic("acme", "email", "jane@example.com")
    assert token.startswith("tkd_k1_") and rotated.startswith("tkd_k2_")
    assert token[7:] != rotated[7:]
    assert new.random_token().startswith("tkr_k2_")
    assert [token_key_version(t) for t in (token, rotated, new.random_token())] == [1, 2, 2]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("tkd_" + "a" * 32, 1),  # minted before versioning: version 1
        ("tkr_" + "b" * 26, 1),
        ("tkd_k17_" + "c" * 32, 17),
        ("tkd_k0_" + "a" * 32, None),
        ("tkd_k01_" + "a" * 32, None),
        ("tkx_k1_" + "a" * 32, None),
        ("tkd_k1_" + "A" * 32, None),
        ("tkd_k1_" + "a" * 33, None),
        ("", None),
    ],
)
def test_token_key_version_parses_only_token_shapes(text: str, version: int | None) -> None:
    assert token_key_version(text) == version
