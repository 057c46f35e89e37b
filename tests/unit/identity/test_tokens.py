"""Bearer tokens: only correctly signed, current, well-formed EdDSA tokens are accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from vault.errors import UnauthenticatedError
from vault.identity import TokenBindingError, TokenIssuer, TokenVerifier
from vault.principal import Principal

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


def _keypair() -> tuple[bytes, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


PRIVATE, PUBLIC = _keypair()
OTHER_PRIVATE, _ = _keypair()
ALICE = Principal(
    "alice", "acme", frozenset({"support_agent"}), MappingProxyType({"clearance": "2"})
)


def _issuer(private: bytes = PRIVATE, clock: FixedClock | None = None) -> TokenIssuer:
    return TokenIssuer(
        private, issuer="customer-vault", audience="customer-vault", clock=clock or FixedClock(NOW)
    )


def _verifier(clock: FixedClock | None = None) -> TokenVerifier:
    return TokenVerifier(
        PUBLIC, issuer="customer-vault", audience="customer-vault", clock=clock or FixedClock(NOW)
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_valid_token_gives_the_principal() -> None:
    token = _issuer().issue(ALICE, timedelta(hours=1))
    principal = _verifier().verify(token)
    assert principal == ALICE


def test_expired_and_not_yet_valid_tokens_are_refused() -> None:
    token = _issuer().issue(ALICE, timedelta(minutes=5))
    with pytest.raises(UnauthenticatedError):
        _verifier(FixedClock(NOW + timedelta(minutes=6))).verify(token)
    with pytest.raises(UnauthenticatedError):
        _verifier(FixedClock(NOW - timedelta(minutes=2))).verify(token)


def test_a_token_signed_by_another_key_is_refused() -> None:
    token = _issuer(OTHER_PRIVATE).issue(ALICE, timedelta(hours=1))
    with pytest.raises(UnauthenticatedError):
        _verifier().verify(token)


def _claims() -> dict[str, object]:
    return {
        "iss": "customer-vault",
        "aud": "customer-vault",
        "sub": "mallory",
        "tenant": "acme",
        "roles": ["security_admin"],
        "attrs": {},
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
        "jti": "x",
    }


def test_alg_none_is_refused() -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{_b64(json.dumps(_claims()).encode())}."
    with pytest.raises(UnauthenticatedError):
        _verifier().verify(token)


def test_hmac_signed_with_the_public_key_is_refused() -> None:
    # The classic algorithm-confusion attack: HS256 keyed with the (public) verification key.
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = _b64(hmac.new(PUBLIC, f"{header}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(UnauthenticatedError):
        _verifier().verify(f"{header}.{body}.{signature}")


def test_another_asymmetric_algorithm_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(_claims(), key, algorithm="ES256")
    with pytest.raises(UnauthenticatedError):
        _verifier().verify(token)


@pytest.mark.parametrize(
    "change",
    [
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"tenant": ""},
        {"tenant": "acme,globex"},
        {"roles": "admin"},
        {"roles": ["ok", "bad role"]},
        {"attrs": {"clearance": 5}},
        {"sub": None},
        {"exp": int((NOW + timedelta(days=30)).timestamp())},
    ],
)
def test_wrongly_scoped_or_malformed_claims_are_refused(change: dict[str, object]) -> None:
    claims = {**_claims(), **change}
    token = jwt.encode(claims, PRIVATE, algorithm="EdDSA")
    with pytest.raises(UnauthenticatedError):
        _verifier().verify(token)


@pytest.mark.parametrize("garbage", ["", "a.b.c", "x" * 10_000, "eyJ.eyJ.", "\x00\x01"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(UnauthenticatedError):
        _verifier().verify(garbage)


def test_edited_payload_is_refused() -> None:
    header, body, signature = _issuer().issue(ALICE, timedelta(hours=1)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["roles"] = ["security_admin"]
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(UnauthenticatedError):
        _verifier().verify(forged)


def test_issuer_refuses_long_lifetimes() -> None:
    with pytest.raises(ValueError, match="24 hours"):
        _issuer().issue(ALICE, timedelta(days=2))


def test_a_cached_token_still_expires() -> None:
    clock = FixedClock(NOW)
    verifier = _verifier(clock)
    token = _issuer(clock=clock).issue(ALICE, timedelta(minutes=5))
    assert verifier.verify(token) == verifier.verify(token)  # the second comes from the cache
    clock.moment = NOW + timedelta(minutes=6)
    with pytest.raises(UnauthenticatedError):
        verifier.verify(token)


def test_an_edited_copy_of_a_cached_token_is_refused() -> None:
    verifier = _verifier()
    token = _issuer().issue(ALICE, timedelta(minutes=5))
    verifier.verify(token)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    with pytest.raises(UnauthenticatedError):
        verifier.verify(forged)


# --- certificate-bound tokens (RFC 8705 `cnf` / `x5t#S256`) ----------------------------------

THUMB_A = _b64(hashlib.sha256(b"certificate A").digest())
THUMB_B = _b64(hashlib.sha256(b"certificate B").digest())


def test_a_bound_token_verifies_only_with_its_certificate() -> None:
    token = _issuer().issue(ALICE, timedelta(minutes=5), bound_to=THUMB_A)
    assert jwt.decode(token, options={"verify_signature": False})["cnf"] == {"x5t#S256": THUMB_A}
    verifier = _verifier()
    assert verifier.verify(token, certificate=THUMB_A).id == "alice"
    for presented in (None, THUMB_B, THUMB_A[:-1], THUMB_A + "A", ""):
        with pytest.raises(TokenBindingError):  # the cached token too: checked on every hit
            verifier.verify(token, certificate=presented)
    with pytest.raises(TokenBindingError):
        _verifier().verify(token)  # not cached yet, no certificate


def test_an_unbound_token_works_with_or_without_a_certificate() -> None:
    token = _issuer().issue(ALICE, timedelta(minutes=5))
    assert _verifier().verify(token).id == "alice"
    assert _verifier().verify(token, certificate=THUMB_A).id == "alice"


@pytest.mark.parametrize(
    "confirmation",
    [
        "x5t",
        [THUMB_A],
        {},
        {"x5t#S256": ""},
        {"x5t#S256": 7},
        {"x5t#S256": THUMB_A, "jkt": "other"},
        {"jkt": THUMB_A},
        None,
    ],
)
def test_a_malformed_confirmation_claim_is_refused(confirmation: object) -> None:
    claims = {
        "iss": "customer-vault",
        "aud": "customer-vault",
        "sub": "alice",
        "tenant": "acme",
        "roles": ["support_agent"],
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "jti": "j",
        "cnf": confirmation,
    }
    token = jwt.encode(claims, PRIVATE, algorithm="EdDSA")
    with pytest.raises(UnauthenticatedError):
        _verifier().verify(token, certificate=THUMB_A)
