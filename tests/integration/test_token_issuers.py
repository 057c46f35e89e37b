"""Tokens from the organization's identity provider, verified against its JWKS served by a
real HTTP server in the test: accepted beside the static development key, keys rotated
without a restart (a new key id accepted, a removed one refused, refetches rate-limited),
and every forgery refused as UNAUTHENTICATED with nothing of the token in the logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.data import ADA
from tests.integration.consent_support import MovableClock
from tests.integration.harness import RunningVault, running_vault, settings_for
from vault import key_custody as keys
from vault.api.client import VaultClient, VaultClientError

ISSUER = "https://idp.example.test/realms/acme"
AUDIENCE = "customer-vault"


@dataclass
class Jwks:
    """The identity provider's key set, served at `url`; the test edits `keys`."""

    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetches: int = 0
    failing: bool = False
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self) -> bytes:
        with self.lock:
            self.fetches += 1
            return json.dumps({"keys": list(self.keys.values())}).encode()


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    served = Jwks()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if served.failing:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = served.body()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/protocol/openid-connect/certs"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


class Signer:
    """One of the identity provider's signing keys."""

    def __init__(self, kid: str, kind: str = "RS256") -> None:
        self.kid, self.algorithm = kid, kind
        if kind == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk |= {"kid": kid, "use": "sig", "alg": kind}

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **header}
        )


def claims(clock: MovableClock, **changes: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "billing-service",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "realm_access": {"roles": ["service"]},
        "clearance": 2,
    }
    return {**base, **changes}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], body: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand: `alg: none` (no signature) or HS256 under `secret`."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


@dataclass
class Idp:
    vault: RunningVault
    clock: MovableClock
    jwks: Jwks

    def call(self, token: str) -> str:
        """Create a subject with `token`; the outcome's status code."""
        with VaultClient(self.vault.address, token) as client:
            try:
                client.create(ADA)
            except VaultClientError as exc:
                return exc.code
        return "OK"


@pytest.fixture
def idp(tmp_path: Path, jwks: Jwks) -> Iterator[Idp]:
    clock = MovableClock()
    issuer = {
        "issuer": ISSUER,
        "jwks_url": jwks.url,
        "audience": AUDIENCE,
        "algorithms": ["RS256", "ES256"],
        "tenant": "acme",
        "roles_claim": "realm_access.roles",
        "attribute_claims": {"clearance": "clearance"},
        "jwks_cache_seconds": 300,
        "jwks_min_refetch_seconds": 30,
    }
    settings = settings_for(tmp_path / "data", token_issuers=[issuer])
    with running_vault(settings, clock) as vault:
        yield Idp(vault, clock, jwks)


def test_tokens_of_a_trusted_issuer_and_of_the_static_key_are_both_accepted(idp: Idp) -> None:
    signer = Signer("k1")
    idp.jwks.keys = {"k1": signer.jwk}
    assert idp.call(signer.sign(claims(idp.clock))) == "OK"
    assert idp.vault.client().create(ADA).subject_id  # the development key still works
    ec_signer = Signer("e1", "ES256")
    idp.jwks.keys["e1"] = ec_signer.jwk
    idp.clock.advance(timedelta(seconds=31))  # past the refetch interval: e1 is looked up
    assert idp.call(ec_signer.sign(claims(idp.clock))) == "OK"


def test_keys_rotate_without_a_restart_and_refetches_are_rate_limited(idp: Idp) -> None:
    old, new = Signer("k1"), Signer("k2")
    idp.jwks.keys = {"k1": old.jwk}
    cached_old = old.sign(claims(idp.clock))
    assert idp.call(cached_old) == "OK"
    fetches = idp.jwks.fetches
    # The provider rotates: k2 published beside k1. Unknown key ids within the refetch
    # interval cost no fetch (made-up ones cannot hammer the provider) ...
    idp.jwks.keys["k2"] = new.jwk
    for _ in range(5):
        made_up = Signer(uuid.uuid4().hex)
        assert idp.call(made_up.sign(claims(idp.clock))) == "UNAUTHENTICATED"
    assert idp.jwks.fetches == fetches
    # ... and once it has passed, a token signed with k2 makes one refetch and is accepted.
    idp.clock.advance(timedelta(seconds=31))
    assert idp.call(new.sign(claims(idp.clock))) == "OK"
    assert idp.jwks.fetches == fetches + 1
    # k1 is removed: once the cached set expires, k1 tokens are refused, new and cached.
    del idp.jwks.keys["k1"]
    idp.clock.advance(timedelta(seconds=301))
    assert idp.call(old.sign(claims(idp.clock))) == "UNAUTHENTICATED"
    assert idp.call(cached_old) == "UNAUTHENTICATED"
    assert idp.call(new.sign(claims(idp.clock))) == "OK"
    # The provider is unreachable when the set expires: the set in hand is kept ...
    idp.jwks.failing = True
    idp.clock.advance(timedelta(seconds=301))
    assert idp.call(new.sign(claims(idp.clock))) == "OK"
    # ... but a set it serves without any key is obeyed: nothing verifies any more.
    idp.jwks.failing = False
    idp.jwks.keys = {}
    idp.clock.advance(timedelta(seconds=31))
    assert idp.call(new.sign(claims(idp.clock))) == "UNAUTHENTICATED"


def test_forgeries_and_misfits_are_unauthenticated_and_nothing_of_them_is_logged(
    idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    signer, ec_signer = Signer("k1"), Signer("e1", "ES256")
    idp.jwks.keys = {"k1": signer.jwk, "e1": ec_signer.jwk}
    now = claims(idp.clock)
    refused = {
        "unknown issuer": signer.sign({**now, "iss": "https://evil.example.test"}),
        "HS256 with the public key as secret": unsigned(
            {"alg": "HS256", "typ": "JWT", "kid": "k1"}, now, signer.public_pem()
        ),
        "alg none": unsigned({"alg": "none", "typ": "JWT", "kid": "k1"}, now, None),
        "RS256 naming an EC key": jwt.encode(
            now, signer.private, algorithm="RS256", headers={"kid": "e1"}
        ),
        "no key id": jwt.encode(now, signer.private, algorithm="RS256"),
        "signed by a key not published": Signer("k1").sign(now),
        "expired": signer.sign(claims(idp.clock, iat=now["iat"] - 600, exp=now["iat"] - 60)),
        "wrong audience": signer.sign({**now, "aud": "another-service"}),
        "a customer role": signer.sign({**now, "realm_access": {"roles": ["customer"]}}),
        "no subject": signer.sign({k: v for k, v in now.items() if k != "sub"}),
    }
    outcomes = {name: idp.call(token) for name, token in refused.items()}
    assert outcomes == dict.fromkeys(refused, "UNAUTHENTICATED")
    assert idp.call(signer.sign(claims(idp.clock))) == "OK"
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for token in refused.values():
        for part in token.split("."):
            if len(part) > 8:
                assert part not in logged


def test_with_only_trusted_issuers_the_static_key_is_not_needed(tmp_path: Path, jwks: Jwks) -> None:
    """A production setup: no static token key at all, every token from the provider."""
    signer = Signer("k1")
    jwks.keys = {"k1": signer.jwk}
    issuer = {"issuer": ISSUER, "jwks_url": jwks.url, "audience": AUDIENCE, "tenant": "acme"}
    data = tmp_path / "data"
    keys.init_keys(settings_for(data))  # the data dir's other keys (a development pair too)
    settings = settings_for(
        data, token_issuers=[issuer], token_public_key=tmp_path / "no-static-key.pem"
    )
    clock = MovableClock()
    with running_vault(settings, clock) as vault:
        idp = Idp(vault, clock, jwks)
        # Roles from the default claim, `roles`.
        assert idp.call(signer.sign(claims(clock, roles=["service"]))) == "OK"
        # The development token names the static issuer, which is not trusted here.
        assert idp.call(vault.token()) == "UNAUTHENTICATED"


def test_a_provider_answering_a_byte_at_a_time_holds_no_caller_past_the_timeout(
    tmp_path: Path,
) -> None:
    """The HTTP timeout bounds each read, not the answer: a key set dripped one byte at a
    time must not hold the caller (nor the issuer's other callers) until it ends."""
    released = threading.Event()
    finished = threading.Event()

    class Dripping(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            while not released.wait(0.2):  # a byte well within each read's timeout
                self.wfile.write(b" ")
                self.wfile.flush()
            finished.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Dripping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    issuer = {
        "issuer": ISSUER,
        "jwks_url": f"http://127.0.0.1:{server.server_address[1]}/certs",
        "audience": AUDIENCE,
        "tenant": "acme",
        "jwks_timeout_seconds": 1.0,
    }
    clock = MovableClock()
    try:
        with running_vault(settings_for(tmp_path / "data", token_issuers=[issuer]), clock) as vault:
            idp = Idp(vault, clock, Jwks())
            token = Signer("k1").sign(claims(clock))
            assert idp.call(token) == "UNAUTHENTICATED"
            assert idp.call(token) == "UNAUTHENTICATED"  # no second wait on the same fetch
            assert not finished.is_set()  # the provider was still answering meanwhile
            assert vault.client().create(ADA).subject_id  # the static issuer is untouched
    finally:
        released.set()
        server.shutdown()
        server.server_close()
