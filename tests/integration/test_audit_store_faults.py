"""Faults in the audit store: when the log refuses appends, reads fail closed (no personal
data leaves unaudited), writes change nothing, the server stays up, and once the store
takes appends again the vault recovers without a restart and the log verifies."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.data import ADA, DPO, FRAUD
from tests.integration.audit_faults import audit_store_refusing
from tests.integration.harness import RunningVault, running_vault, settings_for
from tests.integration.retention.helpers import verify_audit_log
from vault.api.client import VaultClientError

PURPOSE = "data_subject_request"


@pytest.fixture(params=[True, False], ids=["reads-on-loop", "reads-on-workers"])
def either_vault(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str | None
) -> Iterator[RunningVault]:
    """Both ways a server runs a read: on its event loop, awaiting the audit entry there
    (the SQLite default), and on a worker thread that waits for the commit itself."""
    settings = settings_for(tmp_path / "data", database_url, reads_on_loop=request.param)
    with running_vault(settings) as running:
        yield running


def _snapshot(vault: RunningVault) -> dict[str, list[Any]]:
    """Every row of the data tables, and the ids of the audit entries (the integrator may
    give the existing entries their leaf indexes meanwhile: that is not a write by a call)."""
    queries = {
        table: f"SELECT * FROM {table}"
        for table in ("subjects", "blind_indexes", "tokens", "consent_events")
    }
    queries["audit_entries"] = "SELECT id FROM audit_entries"
    with vault.app.db.engine.connect() as conn:
        return {
            table: sorted(map(tuple, conn.execute(sa.text(sql)).all()), key=repr)
            for table, sql in queries.items()
        }


def _refused(call: Callable[[], object]) -> VaultClientError:
    with pytest.raises(VaultClientError) as caught:
        call()
    return caught.value


def test_reads_fail_closed_and_writes_change_nothing_while_the_audit_store_refuses(
    either_vault: RunningVault,
) -> None:
    vault = either_vault
    service = vault.client()
    dpo = vault.client(**DPO)
    fraud = vault.client(**FRAUD)
    subject = service.create(ADA).subject_id
    token = service.tokenize(subject, "email", pb.TOKEN_KIND_RANDOM, "support").token
    assert dpo.get(subject, "full", PURPOSE, "DSR-1").fields["family_name"].value == "Lovelace"
    before = _snapshot(vault)

    with audit_store_refusing(vault):
        reads = {
            "get": lambda: dpo.get(subject, "full", PURPOSE, "DSR-1"),
            "find": lambda: dpo.find("email", ADA["email"], "full", PURPOSE, "DSR-1"),
            "reveal": lambda: dpo.reveal(subject, "national_id", PURPOSE, "DSR-1"),
            "detokenize": lambda: fraud.detokenize(token, "fraud", "CASE-2"),
            "export": lambda: list(dpo.export("full", PURPOSE, "DSR-1")),
        }
        for name, read in reads.items():
            refused = _refused(read)
            assert (refused.code, refused.message) == ("UNAVAILABLE", "audit log unavailable"), name
        writes = {
            "create": lambda: service.create(ADA),
            "batch": lambda: service.batch_create([ADA, ADA], all_or_nothing=False),
            "update": lambda: service.update(subject, 1, {"city": "Leeds"}, reason="moved"),
            "tokenize": lambda: service.tokenize(subject, "phone", pb.TOKEN_KIND_RANDOM, "support"),
            "erase": lambda: dpo.erase(subject, "DSR-3"),
        }
        for name, write in writes.items():
            refused = _refused(write)
            assert (refused.code, refused.message) == ("UNAVAILABLE", "audit log unavailable"), name
        # A denied call reveals nothing, and still says why it was refused.
        marketing = vault.client(principal="mkt-1", roles=("marketing",))
        assert _refused(lambda: marketing.get(subject, "full", PURPOSE, "DSR-1")).code in {
            "PERMISSION_DENIED",
            "UNAVAILABLE",
        }
        assert _snapshot(vault) == before  # nothing written, not even half a batch

    # Recovery without a restart: the same calls work, and the log verifies.
    assert dpo.get(subject, "full", PURPOSE, "DSR-1").fields["family_name"].value == "Lovelace"
    assert service.update(subject, 1, {"city": "Leeds"}, reason="moved").version == 2
    assert verify_audit_log(vault) >= 4


def test_concurrent_reads_during_an_audit_outage_all_fail_closed(vault: RunningVault) -> None:
    """Many readers share one group commit: when it fails, every waiter of the batch fails,
    none gets data, and the writer thread carries on once the store is back."""
    subject = vault.client().create(ADA).subject_id
    outcomes: list[str] = []
    lock = threading.Lock()

    def reader() -> None:
        with vault.client(**DPO) as dpo:
            for _ in range(10):
                try:
                    view = dpo.get(subject, "full", PURPOSE, "DSR-1")
                    outcome = "DATA" if view.fields else "EMPTY"
                except VaultClientError as exc:
                    outcome = exc.code
                with lock:
                    outcomes.append(outcome)

    with audit_store_refusing(vault):
        threads = [threading.Thread(target=reader) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert outcomes and set(outcomes) == {"UNAVAILABLE"}
    assert vault.client(**DPO).get(subject, "full", PURPOSE, "DSR-1").fields
    verify_audit_log(vault)


@pytest.mark.postgres
def test_a_locked_audit_table_fails_calls_closed_within_the_lock_timeout(
    tmp_path: Any, postgres_url: str
) -> None:
    """Another session holding the audit table locked: calls wait at most the lock
    timeout, then fail UNAVAILABLE with nothing changed, and work again once it lets go."""
    settings = settings_for(tmp_path / "data", postgres_url, db_lock_timeout_seconds=1.0)
    with running_vault(settings) as vault:
        service = vault.client()
        dpo = vault.client(**DPO)
        subject = service.create(ADA).subject_id
        locker = psycopg.connect(postgres_url.replace("+psycopg", ""))
        try:
            locker.execute("LOCK TABLE audit_entries IN ACCESS EXCLUSIVE MODE")
            for call in (
                lambda: dpo.get(subject, "full", PURPOSE, "DSR-1"),
                lambda: service.update(subject, 1, {"city": "Leeds"}, reason="moved"),
                lambda: service.create(ADA),
            ):
                refused = _refused(call)
                assert refused.code == "UNAVAILABLE", refused.message
        finally:
            locker.rollback()
            locker.close()
        assert "city" not in dpo.get(subject, "full", PURPOSE, "DSR-1").fields
        assert service.update(subject, 1, {"city": "Leeds"}, reason="moved").version == 2
        verify_audit_log(vault)


@pytest.mark.parametrize("on_loop", [True, False], ids=["reads-on-loop", "reads-on-workers"])
def test_a_stuck_group_commit_fails_reads_closed_after_the_audit_timeout(
    tmp_path: Path, on_loop: bool
) -> None:
    """Another connection holds SQLite's writer lock, so the audit entry of a read
    cannot commit: the read fails UNAVAILABLE once `audit_timeout_seconds` pass, its data
    never sent, while the server keeps answering (a read on the loop awaits the commit
    without blocking the loop); once the lock goes, reads work again."""
    settings = settings_for(
        tmp_path / "data",
        None,
        reads_on_loop=on_loop,
        audit_timeout_seconds=1.0,
        db_lock_timeout_seconds=30.0,
    )
    with running_vault(settings) as vault:
        dpo = vault.client(**DPO)
        subject = vault.client().create(ADA).subject_id
        assert dpo.get(subject, "full", PURPOSE, "DSR-1").fields
        path = sa.engine.make_url(settings.resolved_database_url).database
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            results: list[object] = []

            def read() -> None:
                try:
                    results.append(dpo.get(subject, "full", PURPOSE, "DSR-1"))
                except VaultClientError as exc:
                    results.append(exc)

            reader = threading.Thread(target=read)
            started = time.monotonic()
            reader.start()
            # Meanwhile the server answers: health, on the loop.
            channel = grpc.insecure_channel(vault.address)
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            channel.close()
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            reader.join(20)
            waited = time.monotonic() - started
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        (refused,) = results
        assert isinstance(refused, VaultClientError)
        assert (refused.code, refused.message) == ("UNAVAILABLE", "audit log unavailable")
        assert 0.9 <= waited < 15
        assert dpo.get(subject, "full", PURPOSE, "DSR-1").fields["family_name"].value
