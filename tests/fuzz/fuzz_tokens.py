"""Fuzz target: bearer-token verification (`vault.identity.tokens.TokenVerifier`).

Contract: `verify` returns a `Principal` or raises `UnauthenticatedError`, nothing else.
Invariants:
- text the fuzzer wrote, or a token signed by another key, never verifies;
- a token our issuer signed verifies to the principal it was issued for, and a mutation
  of it verifies, if at all, to that same principal (never to another caller);
- claims signed with the real key verify only when issuer, audience, times and names
  are all acceptable.

The Ed25519 keys are generated at start-up; none is stored. Run:
`.venv/bin/python tests/fuzz/fuzz_tokens.py [corpus dirs] [-max_total_time=60]`.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import atheris

with atheris.instrument_imports(include=["vault", "jwt"]):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vault.errors import UnauthenticatedError
    from vault.identity.tokens import MAX_TTL, TokenIssuer, TokenVerifier
    from vault.principal import Principal

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ISSUER, AUDIENCE = "customer-vault", "customer-vault-api"
LEEWAY = 5
NAMES = ["svc", "acme", "dpo", "support_agent", "a.b:c@d/e-f", "", " ", "x" * 129, "é"]


class FixedClock:
    def now(self) -> datetime:
        return NOW


def _keypair() -> tuple[Ed25519PrivateKey, bytes, bytes]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, private, public


KEY, PRIVATE_PEM, PUBLIC_PEM = _keypair()
OTHER_KEY, OTHER_PRIVATE_PEM, _ = _keypair()
ISSUE = TokenIssuer(PRIVATE_PEM, issuer=ISSUER, audience=AUDIENCE, clock=FixedClock())


def _verifier() -> TokenVerifier:
    # A fresh verifier per input: the cache of verified tokens must not carry over.
    return TokenVerifier(
        PUBLIC_PEM, issuer=ISSUER, audience=AUDIENCE, clock=FixedClock(), leeway_seconds=LEEWAY
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _verify(token: str) -> Principal | None:
    """The principal, or None for the one documented refusal; anything else propagates."""
    try:
        return _verifier().verify(token)
    except UnauthenticatedError:
        return None


def _raw_text(fdp: atheris.FuzzedDataProvider) -> None:
    token = fdp.ConsumeUnicode(fdp.remaining_bytes())
    assert _verify(token) is None, "text the fuzzer wrote verified"


def _unsigned_parts(fdp: atheris.FuzzedDataProvider) -> None:
    header = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256))
    payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 512))
    signature = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 80))
    token = ".".join((_b64(header), _b64(payload), _b64(signature)))
    assert _verify(token) is None, "a token with a made-up signature verified"


def _claims(fdp: atheris.FuzzedDataProvider) -> dict[str, Any]:
    """Claims close to valid, with fuzz-chosen deviations."""
    now = int(NOW.timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER if fdp.ConsumeBool() else fdp.ConsumeUnicode(8),
        "aud": fdp.PickValueInList([AUDIENCE, [AUDIENCE, "x"], "other", None, 7]),
        "sub": fdp.PickValueInList(NAMES),
        "tenant": fdp.PickValueInList(NAMES),
        "roles": [fdp.PickValueInList(NAMES) for _ in range(fdp.ConsumeIntInRange(0, 40))],
        "attrs": {
            fdp.PickValueInList(NAMES): fdp.ConsumeUnicode(6)
            for _ in range(fdp.ConsumeIntInRange(0, 3))
        },
        "iat": now + fdp.ConsumeIntInRange(-100_000, 100_000),
        "exp": now + fdp.ConsumeIntInRange(-100_000, 100_000),
        "jti": "j",
    }
    if fdp.ConsumeBool():
        claims["nbf"] = now + fdp.ConsumeIntInRange(-100, 100)
    for name in list(claims):
        if fdp.ConsumeIntInRange(0, 15) == 0:
            claims[name] = fdp.PickValueInList([None, True, 1.5, "1", [], {}, 2**70])
        if fdp.ConsumeIntInRange(0, 15) == 0:
            del claims[name]
    return claims


def _sign(key: Ed25519PrivateKey, header: bytes, payload: bytes) -> str:
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode('ascii')))}"


def _signed_by_other_key(fdp: atheris.FuzzedDataProvider) -> None:
    header = json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode()
    token = _sign(OTHER_KEY, header, json.dumps(_claims(fdp)).encode())
    assert _verify(token) is None, "a token signed by another key verified"


def _signed_claims(fdp: atheris.FuzzedDataProvider) -> None:
    """The real key signs fuzz-chosen header and claims: only acceptable ones pass."""
    alg = fdp.PickValueInList(["EdDSA", "EdDSA", "none", "HS256", "ES256", None])
    header = {"alg": alg, "typ": "JWT"} if alg is not None else {"typ": "JWT"}
    if fdp.ConsumeBool():
        header[fdp.ConsumeUnicode(4)] = fdp.ConsumeUnicode(4)
    claims = _claims(fdp)
    payload = (
        json.dumps(claims).encode()
        if fdp.ConsumeProbability() < 0.9
        else fdp.ConsumeBytes(fdp.remaining_bytes())
    )
    principal = _verify(_sign(KEY, json.dumps(header).encode(), payload))
    if principal is not None:
        _check_accepted(header, json.loads(payload), principal)


def _check_accepted(header: dict[str, Any], claims: Any, principal: Principal) -> None:
    assert header.get("alg") == "EdDSA", "a token with another alg verified"
    assert claims.get("iss") == ISSUER, "wrong issuer accepted"
    aud = claims.get("aud")
    assert aud == AUDIENCE or (isinstance(aud, list) and AUDIENCE in aud), "wrong audience"
    now = int(NOW.timestamp())
    exp, iat = claims["exp"], claims["iat"]
    nbf = claims.get("nbf", iat)
    assert all(type(v) is int for v in (exp, iat, nbf)), "non-integer times accepted"
    assert exp > now - LEEWAY, "expired token accepted"
    assert iat <= now + LEEWAY and nbf <= now + LEEWAY, "future token accepted"
    assert exp - iat <= MAX_TTL.total_seconds(), "over-long token accepted"
    assert principal.id == claims["sub"] and principal.tenant == claims["tenant"]
    assert principal.roles == frozenset(claims.get("roles", []))
    assert dict(principal.attributes) == claims.get("attrs", {})


def _issued_then_mutated(fdp: atheris.FuzzedDataProvider) -> None:
    principal = Principal(
        fdp.PickValueInList(NAMES[:5]),
        fdp.PickValueInList(NAMES[:5]),
        frozenset(fdp.PickValueInList(NAMES[:5]) for _ in range(fdp.ConsumeIntInRange(0, 4))),
        MappingProxyType({"clearance": str(fdp.ConsumeIntInRange(0, 9))}),
    )
    ttl = timedelta(seconds=fdp.ConsumeIntInRange(1, int(MAX_TTL.total_seconds())))
    token = ISSUE.issue(principal, ttl)
    assert _verify(token) == principal, "an issued token did not verify to its principal"
    mutated = list(token)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        position = fdp.ConsumeIntInRange(0, len(mutated) - 1)
        mutated[position] = chr(fdp.ConsumeIntInRange(0x20, 0x7E))
    text = "".join(mutated)
    if text != token:
        # base64url leaves spare bits in a segment's last character, so a mutation
        # there can decode to the very same bytes: equal principal, no forgery.
        assert _verify(text) in (None, principal), "a mutated token verified as someone else"


MODES = (_raw_text, _unsigned_parts, _signed_by_other_key, _signed_claims, _issued_then_mutated)


def fuzz_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    MODES[fdp.ConsumeIntInRange(0, len(MODES) - 1)](fdp)


def main() -> None:
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
