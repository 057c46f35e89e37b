"""`customer-vault serve --workers 2` as a real process tree, on SQLite and on PostgreSQL:
both workers answer health checks and GetSubject on the one port, the background work
runs in one of them, and SIGTERM to the supervisor drains both and exits 0.

Which worker served a call is read from the kernel, not guessed: each probe opens a
connection of its own, and the worker whose process holds the server end of that TCP
connection (`/proc/<pid>/fd` and `/proc/net/tcp`) is the one that answered on it."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from customer_vault_client.gen.customervault.v1 import vault_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.data import ADA, DPO
from tests.integration.harness import running_vault, settings_for
from tests.integration.retention.helpers import verify_audit_log_at
from tests.integration.serving import ServeProcess, clean_env, serving, token_for
from vault.api.client import VaultClient
from vault.config import Settings
from vault.storage.db import create_engine

_WORKER = re.compile(r"worker (\d+) \(pid (\d+)\) starting")
_PROBES = 24  # fresh connections: all on one worker by chance has probability 2**-23
_ESTABLISHED = "01"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_two_workers_share_the_port_run_the_background_once_and_drain(
    tmp_path: Path, database_url: str | None
) -> None:
    data = tmp_path / "data"
    env = clean_env(
        VAULT_AUDIT_INTEGRATE_INTERVAL_SECONDS="0.2",
        VAULT_SHUTDOWN_GRACE_SECONDS="5",
        VAULT_RETENTION_SCHEDULE="17 3 * * *",  # started (and logged) by the leader only
    )
    args = ["--workers", "2", "--address", "127.0.0.1:0", "--data-dir", str(data)]
    if database_url is not None:
        # Keys in the data dir (generated only for the embedded default) and the schema.
        with running_vault(settings_for(data, database_url, retention_schedule="")):
            pass
        args += ["--database-url", database_url, "--dev"]
    with serving(args, env, tmp_path / "vault.log") as vault:
        workers = _workers(vault)
        assert len(workers) == 2
        assert vault.process.pid not in workers
        token = token_for(data)
        with VaultClient(vault.address, token) as client:
            subject_id = client.create(dict(ADA)).subject_id

        dpo = token_for(data, **DPO)
        served = [_probe(vault, workers, dpo, subject_id) for _ in range(_PROBES)]

        # The background work (integrator, re-wrap, re-index, retention) runs in one.
        log = vault.log()
        assert log.count("it runs the background work") == 1
        assert log.count("retention runs on '17 3 * * *'") == 1
        code, _ = vault.terminate(30)

    assert set(served) == set(workers), "every worker answered calls on its connections"
    assert code == 0
    log = vault.log()
    assert len(re.findall(r"worker vault-worker-\d \(pid \d+\) exited with code 0", log)) == 2
    assert "Traceback" not in log
    # Every call was audited, by whichever worker served it, into one log that verifies
    # (its checkpoints written by the leader's integrator alone).
    engine = create_engine(database_url or f"sqlite:///{data / 'vault.db'}")
    try:
        with engine.connect() as conn:
            reads = conn.execute(
                sa.text("SELECT count(*) FROM audit_entries WHERE action = 'GetSubject'")
            ).scalar_one()
            checkpoints = conn.execute(sa.text("SELECT count(*) FROM audit_checkpoints"))
            assert checkpoints.scalar_one() >= 1
        assert reads == _PROBES
        verify_audit_log_at(engine, Settings(data_dir=data))
    finally:
        engine.dispose()


def test_a_worker_that_dies_stops_the_others_and_the_supervisor_fails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(VAULT_RETENTION_SCHEDULE="", VAULT_SHUTDOWN_GRACE_SECONDS="5")
    args = ["--workers", "2", "--address", "127.0.0.1:0", "--data-dir", str(data)]
    with serving(args, env, tmp_path / "vault.log") as vault:
        workers = _workers(vault)
        os.kill(workers[1], signal.SIGKILL)
        code = vault.process.wait(30)
    assert code == 1
    log = vault.log()
    assert "worker vault-worker-1 exited unexpectedly" in log
    assert "worker vault-worker-0 (pid" in log and "exited with code 0" in log


def _workers(vault: ServeProcess) -> list[int]:
    """The worker processes' PIDs, by index, from their start-up log lines."""
    found = {int(index): int(pid) for index, pid in _WORKER.findall(vault.log())}
    return [found[index] for index in sorted(found)]


def _probe(vault: ServeProcess, workers: list[int], token: str, subject_id: str) -> int:
    """A health check and a GetSubject on a new connection of its own; the PID of the
    worker that holds the connection's server end."""
    # A channel of its own subchannel pool: a new TCP connection, not a shared one.
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(vault.address, options=options) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        stub = vault_pb2_grpc.VaultServiceStub(channel)
        view = stub.GetSubject(
            pb.GetSubjectRequest(
                subject_id=subject_id,
                view="full",
                purpose="data_subject_request",
                justification="DSR-1",
            ),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
        assert view.subject.meta.subject_id == subject_id
        mine = {remote for _, remote in _connections(os.getpid(), vault.port)}
        holders = [
            pid
            for pid in workers
            if any(local == vault.port and remote in mine for local, remote in _connections(pid))
        ]
    assert len(holders) == 1, f"the connection's server end is held by {holders}"
    return holders[0]


def _connections(pid: int, to_port: int | None = None) -> list[tuple[int, int]]:
    """(local port, remote port) of the ESTABLISHED TCP sockets process `pid` holds,
    only those to `to_port` if given; for this process, the remote side is `to_port`
    and the local port is returned as the second item."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state != _ESTABLISHED or inode not in inodes:
                continue
            local_port = int(local.rsplit(":", 1)[1], 16)
            remote_port = int(remote.rsplit(":", 1)[1], 16)
            if to_port is None:
                found.append((local_port, remote_port))
            elif remote_port == to_port:
                found.append((remote_port, local_port))
    return found
