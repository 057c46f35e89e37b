"""The server answers health and reflection without credentials, and nothing else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import grpc
import jwt
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.integration.harness import RunningVault, raw_stub
from vault.clock import SystemClock
from vault.crypto import generate_ed25519_keypair
from vault.identity import TokenIssuer
from vault.principal import Principal


def test_health_is_serving_and_reflection_lists_the_vault(vault: RunningVault) -> None:
    with grpc.insecure_channel(vault.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "customervault.v1.VaultService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        if not vault.settings.is_embedded:
            return  # reflection is off there (tests/integration/test_starvation.py)
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "customervault.v1.VaultService" in services
        assert "grpc.health.v1.Health" in services


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer "),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer not-a-jwt"),),
        (("x-principal", "admin"), ("x-tenant", "acme")),
    ],
)
def test_calls_without_valid_credentials_are_unauthenticated(
    sqlite_vault: RunningVault, metadata: tuple[tuple[str, str], ...]
) -> None:
    stub, channel = raw_stub(sqlite_vault)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.CreateSubject(
            pb.CreateSubjectRequest(fields={"given_name": "Ada"}), metadata=metadata, timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hmac_token(claims: dict[str, object], secret: bytes) -> str:
    """The algorithm-confusion attack: HS256 keyed with the server's public key."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


class _PastClock:
    def now(self) -> datetime:
        return datetime.now(UTC) - timedelta(hours=2)


def _forged_tokens(vault: RunningVault, tmp_path: Path) -> dict[str, str]:
    """Tokens that must never authenticate, each broken in one way."""
    s = vault.settings
    who = Principal("order-service", "acme", frozenset({"service"}), MappingProxyType({}))
    valid = vault.token()
    claims = jwt.decode(valid, options={"verify_signature": False})
    generate_ed25519_keypair(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    other_key = TokenIssuer(
        (tmp_path / "other.pem").read_bytes(),
        issuer=s.token_issuer,
        audience=s.token_audience,
        clock=SystemClock(),
    )
    expired = TokenIssuer(
        s.token_private_key.read_bytes(),
        issuer=s.token_issuer,
        audience=s.token_audience,
        clock=_PastClock(),
    )
    header, payload, _signature = valid.split(".")
    return {
        "expired": expired.issue(who, timedelta(minutes=5)),
        "alg none": jwt.encode(claims, key=None, algorithm="none"),
        "unsigned": f"{header}.{payload}.",
        "signed by another key": other_key.issue(who, timedelta(minutes=5)),
        "hmac with the public key": _hmac_token(claims, s.resolved_token_public_key.read_bytes()),
        "payload edited": ".".join(
            [
                header,
                payload[:-4] + ("AAAA" if not payload.endswith("AAAA") else "BBBB"),
                _signature,
            ]
        ),
        "wrong audience": jwt.encode(
            {**claims, "aud": "someone-else"},
            (s.token_private_key).read_bytes(),
            algorithm="EdDSA",
        ),
    }


def test_forged_and_broken_tokens_are_unauthenticated_and_audited(
    sqlite_vault: RunningVault, tmp_path: Path
) -> None:
    stub, channel = raw_stub(sqlite_vault)
    with channel:
        for label, token in _forged_tokens(sqlite_vault, tmp_path).items():
            with pytest.raises(grpc.RpcError) as caught:
                stub.CreateSubject(
                    pb.CreateSubjectRequest(fields={"given_name": "Ada"}),
                    metadata=(("authorization", f"Bearer {token}"),),
                    timeout=5,
                )
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED, label
    with sqlite_vault.app.db.engine.connect() as conn:
        refused = conn.execute(
            sa.text("SELECT count(*) FROM audit_entries WHERE result_code = 'UNAUTHENTICATED'")
        ).scalar_one()
    assert refused == 7
