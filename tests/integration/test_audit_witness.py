"""The running vault and its witness: checkpoints are cosigned automatically, VerifyLog
reports who cosigned, and a rewritten audit trail turns the audited services' health
NOT_SERVING instead of being signed.

A real vault (gRPC on a loopback port, production interceptors, SQLite file) and a real
`customer-vault witness` process. On the old code the rewrite below (an entry's actor
edited, checkpoints above it deleted, the stored tree state recomputed) was signed by
the next integration and VerifyLog answered ok.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import audit_pb2, audit_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import audit
from audit.merkle import CompactRange
from tests.integration.harness import RunningVault, running_vault, settings_for
from tests.integration.witnessing import WITNESS_NAME, WitnessProcess, witness_process
from vault import key_custody
from vault.config import WitnessSettings

COMPLIANCE = {"principal": "compliance-1", "roles": ("compliance_officer",)}
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll `probe` until it returns something (background work is asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def witnessed_vault(tmp_path: Path) -> Iterator[tuple[RunningVault, WitnessProcess]]:
    data = tmp_path / "data"
    key_custody.init_keys(settings_for(data, None))
    base = settings_for(data, None)
    signer = audit.CheckpointSigner(base.resolved_audit_signing_key.read_bytes(), base.audit_origin)
    with witness_process(tmp_path / "witness", signer.verifier_key) as witness:
        settings = settings_for(
            data,
            None,
            audit_witnesses=[
                WitnessSettings(name=WITNESS_NAME, url=witness.url, key=witness.verifier_key)
            ],
            audit_publish_interval_seconds=0.2,
        )
        with running_vault(settings) as vault:
            yield vault, witness


def _verify(vault: RunningVault) -> audit_pb2.VerifyLogResponse:
    with grpc.insecure_channel(vault.address) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        metadata = (("authorization", f"Bearer {vault.token(**COMPLIANCE)}"),)  # type: ignore[arg-type]
        response: audit_pb2.VerifyLogResponse = stub.VerifyLog(
            audit_pb2.VerifyLogRequest(), metadata=metadata, timeout=30
        )
        return response


def _health(vault: RunningVault, service: str) -> int:
    with grpc.insecure_channel(vault.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        return status


def _covered(vault: RunningVault) -> audit_pb2.VerifyLogResponse | None:
    response = _verify(vault)
    return response if response.ok and list(response.cosigned_by) == [WITNESS_NAME] else None


def test_checkpoints_are_cosigned_and_verify_log_says_by_whom(
    witnessed_vault: tuple[RunningVault, WitnessProcess],
) -> None:
    vault, witness = witnessed_vault
    response = eventually(lambda: _covered(vault), "the newest checkpoint to be cosigned")
    assert response.macs_checked
    assert response.entries_without_mac == 0
    latest = witness.client().latest(vault.settings.audit_origin)
    assert latest is not None
    assert vault.app.publisher is not None
    assert set(vault.app.publisher.lag()) == {WITNESS_NAME}
    state = vault.settings.audit_last_checkpoint_file
    assert state.stat().st_mode & 0o777 == 0o600

    # GetLatestCheckpoint carries each witness's newest cosignature, checkable by anyone
    # holding the witness's key (the console does so on its log-integrity page).
    with grpc.insecure_channel(vault.address) as channel:
        stub = audit_pb2_grpc.AuditServiceStub(channel)
        metadata = (("authorization", f"Bearer {vault.token(**COMPLIANCE)}"),)  # type: ignore[arg-type]
        checkpoint = stub.GetLatestCheckpoint(
            audit_pb2.GetLatestCheckpointRequest(), metadata=metadata, timeout=30
        ).checkpoint
    [cosigned] = checkpoint.witness_cosignatures
    assert cosigned.witness == WITNESS_NAME and 0 < cosigned.tree_size <= checkpoint.tree_size
    body = audit.Checkpoint(checkpoint.origin, cosigned.tree_size, cosigned.root_hash)
    audit.CosignatureVerifier.from_verifier_key(witness.verifier_key).verify_line(
        body, cosigned.line
    )
    assert cosigned.cosign_time.seconds > 0


def test_a_rewritten_trail_is_refused_and_the_audited_services_go_not_serving(
    witnessed_vault: tuple[RunningVault, WitnessProcess],
) -> None:
    vault, witness = witnessed_vault
    eventually(lambda: _covered(vault), "the newest checkpoint to be cosigned")
    served = health_pb2.HealthCheckResponse.SERVING
    assert _health(vault, "customervault.v1.VaultService") == served
    witnessed = witness.client().latest(vault.settings.audit_origin)
    engine = vault.app.db.engine
    with engine.begin() as conn:
        size = conn.execute(sa.text("SELECT size FROM audit_tree_state")).scalar_one()
        target = size - 1
        conn.execute(
            sa.text(
                "UPDATE audit_entries SET actor = 'mallory', leaf_hash = :h WHERE leaf_index = :i"
            ),
            {"h": b"\x00" * 32, "i": target},
        )
        conn.execute(sa.text("DELETE FROM audit_checkpoints WHERE size > :i"), {"i": target})
        conn.execute(sa.text("DELETE FROM audit_cosignatures WHERE size > :i"), {"i": target})
        hashes = conn.execute(
            sa.text(
                "SELECT leaf_hash FROM audit_entries "
                "WHERE leaf_index IS NOT NULL ORDER BY leaf_index"
            )
        ).scalars()
        tree = CompactRange()
        tree.extend([bytes(h) for h in hashes])
        conn.execute(
            sa.text("UPDATE audit_tree_state SET compact_range = :c, root_hash = :r"),
            {"c": tree.to_bytes(), "r": tree.root()},
        )
    _verify(vault)  # one more audited call: the integrator has something to sign
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    eventually(
        lambda: True if _health(vault, "customervault.v1.VaultService") == not_serving else None,
        "the vault service to go NOT_SERVING",
    )
    for service in ("customervault.v1.AuditService", "customervault.v1.RightsService"):
        assert _health(vault, service) == not_serving
    assert _health(vault, "") == served  # the process itself is up: no restart loop
    assert vault.app.audit_alarm is not None
    assert "mallory" not in vault.app.audit_alarm
    response = _verify(vault)
    assert not response.ok
    assert witness.client().latest(vault.settings.audit_origin) == witnessed
