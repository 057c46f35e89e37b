"""Operating the vault as separate processes: SIGTERM under load, a PostgreSQL outage,
start-up before the database (or its schema) is there, and three replicas sharing one
PostgreSQL under mixed traffic with the retention schedule on all of them."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import rights_pb2

import audit
from tests.data import ADA, DPO
from tests.integration.consent_support import grant, withdraw
from tests.integration.harness import running_vault, settings_for
from tests.integration.retention.helpers import audit_actions_per_subject, verify_audit_log_at
from tests.integration.serving import (
    ServeProcess,
    clean_env,
    run_cli,
    serving,
    token_for,
)
from vault import key_custody
from vault.api.client import VaultClient, VaultClientError
from vault.app import VaultApp
from vault.clock import to_micros
from vault.config import Settings
from vault.errors import FailedPreconditionError, UnavailableError
from vault.storage import migrate
from vault.storage.db import create_engine

GRACE = 15.0
# No stack trace, SQL or personal data in any log line (DESIGN: error model).
_LEAKS = ("Traceback", 'File "', "SELECT ", "INSERT ", "UPDATE ", "Lovelace", "7946 0018", "QQ 12")


@dataclass
class Load:
    """Threads creating a subject and reading it back, over and over, until stopped."""

    address: str
    service_token: str
    dpo_token: str
    created: list[str] = field(default_factory=list)
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, threads: int) -> None:
        for _ in range(threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        with (
            VaultClient(self.address, self.service_token) as service,
            VaultClient(self.address, self.dpo_token) as dpo,
        ):
            while not self._stop.is_set():
                self._call(lambda: self._create_and_get(service, dpo))

    def _create_and_get(self, service: VaultClient, dpo: VaultClient) -> None:
        subject = service.create(ADA).subject_id
        with self._lock:
            self.created.append(subject)
        dpo.get(subject, "full", "data_subject_request", "DSR-1")

    def _call(self, call: Callable[[], None]) -> None:
        try:
            call()
        except VaultClientError as exc:
            self._record(exc.code, exc.message)
            time.sleep(0.05)  # a refused call returns at once: do not spin
        else:
            self._record("OK", "")

    def _record(self, code: str, message: str) -> None:
        with self._lock:
            self.outcomes.append((time.monotonic(), code, message))

    def codes(self, since: float = 0.0, until: float = float("inf")) -> set[str]:
        with self._lock:
            return {code for at, code, _ in self.outcomes if since <= at < until}

    def messages(self) -> set[str]:
        with self._lock:
            return {message for _, code, message in self.outcomes if code != "OK"}


def _eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


REFUSED = {"UNAVAILABLE", "CANCELLED"}
"""How a server that is stopping turns a call away: UNAVAILABLE once its port is closed,
CANCELLED for a call that reached it on an open connection after the stop began. In
neither case did a handler run."""


def _refused(address: str, token: str, seen: list[str]) -> bool:
    """True once a new call on a new connection is turned away. The probe writes no
    subject (served, it answers NOT_FOUND); one that got in just as the stop began waits
    for the drain to end, so it gives up after 2 s and the next probe connects anew."""
    try:
        with VaultClient(address, token, timeout=2.0) as client:
            client.get("sub_" + "a" * 26, "full", "data_subject_request", "DSR-1")
    except VaultClientError as exc:
        if exc.code not in REFUSED:
            return False
        seen.append(exc.code)
        return True
    return False


def _quiet_log(vault: ServeProcess) -> None:
    lines = vault.log().splitlines()
    assert [line for line in lines if any(word in line for word in _LEAKS)] == []


# --- SIGTERM ---------------------------------------------------------------------------------


def test_sigterm_during_load_drains_in_flight_calls_and_exits_zero(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(
        VAULT_SHUTDOWN_GRACE_SECONDS=str(GRACE),
        VAULT_RETENTION_SCHEDULE="",
        VAULT_AUDIT_INTEGRATE_INTERVAL_SECONDS="0.2",
    )
    args = ["--address", "127.0.0.1:0", "--data-dir", str(data)]
    with serving(args, env, tmp_path / "vault.log") as vault:
        service, dpo = token_for(data), token_for(data, **DPO)
        with VaultClient(vault.address, service) as client:
            seeded = client.batch_create([ADA] * 1500)
        assert seeded.failed == 0
        load = Load(vault.address, service, dpo)
        load.start(threads=6)
        time.sleep(1.0)

        # A long server-streaming call is in flight when the signal arrives.
        with VaultClient(vault.address, dpo) as exporter:
            stream = exporter.export("full", "data_subject_request", "DSR-1")
            exported = [next(stream)]
            vault.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            refusals: list[str] = []
            _eventually(lambda: _refused(vault.address, dpo, refusals), 10, "refusal")
            for view in stream:
                exported.append(view)
                if len(exported) % 200 == 0:
                    time.sleep(0.05)  # a slow reader keeps the call open a while
        code = vault.process.wait(GRACE + 10)
        elapsed = time.monotonic() - signalled
        load.stop()

    assert code == 0
    assert elapsed < GRACE, f"took {elapsed:.1f}s to exit"
    assert len(exported) >= 1500  # the in-flight stream completed
    assert set(refusals) <= REFUSED
    assert load.codes(until=signalled) == {"OK"}
    assert load.codes(since=signalled) <= {"OK", *REFUSED}
    _quiet_log(vault)
    _check_complete(data, [*(r.subject_id for r in seeded.results), *load.created])


def _check_complete(data: Path, expected: list[str]) -> None:
    """Every acknowledged subject is stored whole and audited once; nothing else was
    stored; the audit log verifies."""
    settings = settings_for(data, None, retention_schedule="")
    with running_vault(settings) as vault:
        engine = vault.app.db.engine
        with engine.connect() as conn:
            stored = set(conn.execute(sa.text("SELECT id FROM subjects")).scalars())
            audited = conn.execute(
                sa.text(
                    "SELECT s.subject_id, count(*) FROM audit_entry_subjects s "
                    "JOIN audit_entries e ON e.id = s.entry_id "
                    "WHERE e.action IN ('CreateSubject', 'BatchCreateSubjects') "
                    "AND e.result_code = 'OK' GROUP BY s.subject_id"
                )
            ).all()
        assert stored == set(expected)
        assert dict(audited) == dict.fromkeys(expected, 1)
        dpo = vault.client(**DPO)
        for subject in expected[-50:]:
            view = dpo.get(subject, "full", "data_subject_request", "DSR-1")
            assert set(view.fields) == set(ADA)
        verify_audit_log_at(engine, settings)


# --- PostgreSQL you can stop -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@dataclass
class PgCluster:
    """A private PostgreSQL server in a temp dir, which tests may stop and start."""

    bin: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self) -> str:
        name = f"vault_{time.monotonic_ns()}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PgCluster]:
    binaries = _pg_bin()
    if binaries is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; under CI=true PostgreSQL tests must run")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="cv-pg-"))
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
    cluster = PgCluster(binaries, root, _free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # a failed test stopped it
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _prepare(tmp_path: Path, database_url: str) -> tuple[Path, dict[str, str]]:
    """Keys in a data dir and a migrated schema: what a deployment has before `serve`."""
    data = tmp_path / "data"
    env = clean_env(
        VAULT_RETENTION_SCHEDULE="",
        VAULT_SHUTDOWN_GRACE_SECONDS="5",
        VAULT_AUDIT_INTEGRATE_INTERVAL_SECONDS="0.2",
    )
    for command in (["keys", "init"], ["migrate", "--database-url", database_url]):
        done = run_cli([*command, "--data-dir", str(data)], env)
        assert done.returncode == 0, done.stderr
    return data, env


@pytest.mark.postgres
def test_postgres_outage_fails_calls_unavailable_and_recovers_without_restart(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    database = pg_cluster.create_database()
    data, env = _prepare(tmp_path, database)
    args = ["--address", "127.0.0.1:0", "--data-dir", str(data), "--database-url", database]
    args.append("--dev")  # PostgreSQL with the data dir's token key: the test mints tokens
    with serving(args, env, tmp_path / "vault.log") as vault:
        dpo = token_for(data, **DPO)
        load = Load(vault.address, token_for(data), dpo)
        load.start(threads=4)
        try:
            _eventually(lambda: len(load.created) >= 20, 10.0, "calls to succeed")
            pg_cluster.stop()
            stopped = time.monotonic()
            _eventually(lambda: "UNAVAILABLE" in load.codes(stopped), 10.0, "UNAVAILABLE")
            time.sleep(1.0)
            assert load.codes(stopped + 0.5) == {"UNAVAILABLE"}
            assert vault.process.poll() is None  # the server stays up
            pg_cluster.start()
            restarted = time.monotonic()
            _eventually(lambda: "OK" in load.codes(restarted), 15.0, "recovery")
            before = len(load.created)
            _eventually(lambda: len(load.created) >= before + 20, 10.0, "steady calls")
        finally:
            load.stop()
        assert load.codes() <= {"OK", "UNAVAILABLE"}
        assert load.messages() <= {"database unavailable", "audit log unavailable"}
        code, _ = vault.terminate(30)
    assert code == 0
    _quiet_log(vault)
    engine = create_engine(database)
    try:
        verify_audit_log_at(engine, Settings(data_dir=data))
        with engine.connect() as conn:
            stored = set(conn.execute(sa.text("SELECT id FROM subjects")).scalars())
        assert set(load.created) <= stored
    finally:
        engine.dispose()


# --- start-up waits for the database -------------------------------------------------------


def test_open_fails_cleanly_when_the_database_never_appears(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres",
        db_connect_timeout_seconds=1.5,
    )
    key_custody.init_keys(settings)
    started = time.monotonic()
    with pytest.raises(UnavailableError) as failed:
        VaultApp.open(settings)
    assert 1.5 <= time.monotonic() - started < 10
    assert failed.value.message.startswith("database unavailable: not reachable within 1.5s")


def test_serve_exits_with_a_clear_message_when_the_database_never_appears(
    tmp_path: Path,
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres"
    data = tmp_path / "data"
    env = clean_env(VAULT_DB_CONNECT_TIMEOUT_SECONDS="1")
    assert run_cli(["keys", "init", "--data-dir", str(data)], env).returncode == 0
    done = run_cli(["serve", "--data-dir", str(data), "--database-url", url, "--dev"], env)
    assert done.returncode == 1
    assert "database unavailable: not reachable within 1s" in done.stderr
    assert "retrying in" in done.stderr  # it waited with back-off first
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
def test_serve_waits_for_a_database_that_comes_up_late(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    database = pg_cluster.create_database()
    data, env = _prepare(tmp_path, database)
    pg_cluster.stop()
    log = tmp_path / "vault.log"
    waiting = "database not reachable yet (OperationalError); retrying in"

    def start_once_the_vault_waits() -> None:
        _eventually(lambda: log.exists() and waiting in log.read_text(), 30.0, "back-off")
        pg_cluster.start()

    later = threading.Thread(target=start_once_the_vault_waits)
    later.start()
    try:
        args = ["--address", "127.0.0.1:0", "--data-dir", str(data), "--database-url", database]
        args.append("--dev")  # the data dir's token key with PostgreSQL
        with (
            serving(args, env, log, startup_timeout=45) as vault,
            VaultClient(vault.address, token_for(data)) as client,
        ):
            assert client.create(ADA).subject_id
    finally:
        later.join()


@pytest.mark.postgres
def test_a_new_replica_waits_for_the_migration_instead_of_crashing(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        db_connect_timeout_seconds=30,
        retention_schedule="",
    )
    key_custody.init_keys(settings)
    engine = create_engine(postgres_url)

    def migrate_now() -> None:
        migrate.upgrade(engine)
        audit.migrate(engine)

    later = threading.Timer(1.5, migrate_now)
    later.start()
    started = time.monotonic()
    try:
        VaultApp.open(settings).close()
        assert time.monotonic() - started >= 1.5
    finally:
        later.join()
        engine.dispose()


@pytest.mark.postgres
def test_a_replica_gives_up_when_the_schema_stays_old(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=postgres_url, db_connect_timeout_seconds=1
    )
    key_custody.init_keys(settings)
    with pytest.raises(FailedPreconditionError, match="run `customer-vault migrate` first"):
        VaultApp.open(settings)


# --- three replicas on one PostgreSQL ------------------------------------------------------


@dataclass
class Traffic:
    """Create, read, consent, withdraw and erase, each step through another replica."""

    addresses: list[str]
    service_token: str
    dpo_token: str
    created: list[str] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, worker: int) -> None:
        services = [VaultClient(a, self.service_token) for a in self.addresses]
        dpos = [VaultClient(a, self.dpo_token) for a in self.addresses]
        try:
            step = worker
            while not self._stop.is_set():
                try:
                    self._round(services, dpos, step)
                except VaultClientError as exc:
                    with self._lock:
                        self.failures.append(f"{exc.code} {exc.message}")
                step += 1
        finally:
            for client in [*services, *dpos]:
                client.__exit__(None, None, None)

    def _round(self, services: list[VaultClient], dpos: list[VaultClient], step: int) -> None:
        def on(clients: list[VaultClient], offset: int) -> VaultClient:
            return clients[(step + offset) % len(clients)]

        subject = on(services, 0).create(ADA).subject_id
        on(dpos, 1).get(subject, "full", "data_subject_request", "DSR-1")
        grant(on(services, 2), subject, "marketing")
        withdraw(on(services, 0), subject, "marketing")
        done = ["CreateSubject", "GetSubject", "GrantConsent", "WithdrawConsent"]
        erase = step % 3 == 0
        if erase:
            # Bulk erasure goes through the data-subject-request path (EraseSubject
            # spends a per-principal erasure budget).
            dpo = on(dpos, 1)
            request = rights_pb2.EraseSubjectDataRequest(
                subject_id=subject, reason="DSR-2026-9 ops test"
            )
            dpo.call(dpo.rights, "EraseSubjectData", request)
            done.append("EraseSubjectData")
        with self._lock:
            self.created.append(subject)
            if erase:
                self.erased.append(subject)
            for action in done:
                self.calls[action] = self.calls.get(action, 0) + 1

    def stop(self) -> None:
        self._stop.set()


def _audited(engine: sa.Engine, actions: list[str]) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT action, count(*) FROM audit_entries WHERE result_code = 'OK' "
                "AND action IN :actions GROUP BY action"
            ).bindparams(sa.bindparam("actions", expanding=True)),
            {"actions": actions},
        ).all()
    return {action: int(n) for action, n in rows}


def _backdate(engine: sa.Engine, subjects: list[str], days: int) -> None:
    """Make subjects dormant: no recorded activity for `days` days."""
    long_ago = to_micros(datetime.now(UTC) - timedelta(days=days))
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE subjects SET last_activity_at = :t WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"t": long_ago, "ids": subjects},
        )


@pytest.mark.postgres
def test_three_replicas_share_one_postgres_under_mixed_traffic(
    tmp_path: Path, postgres_url: str
) -> None:
    data = tmp_path / "data"
    # Dormant subjects first (one in-process vault migrates and stores them), so the
    # scheduled run has work that takes several batches: long enough for the other
    # replicas to find the runner lock taken.
    with running_vault(settings_for(data, postgres_url, retention_schedule="")) as seeder:
        dormant = [r.subject_id for r in seeder.client().batch_create([ADA] * 300).results]
    engine = create_engine(postgres_url)
    _backdate(engine, dormant, days=4 * 365)

    fire_at = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
    env = clean_env(
        # Every replica carries the schedule; the runner lock must let one of them run.
        VAULT_RETENTION_SCHEDULE=f"{fire_at.minute} {fire_at.hour} * * * {fire_at.second}",
        VAULT_RETENTION_POLL_SECONDS="0.2",
        VAULT_RETENTION_BATCH_SIZE="20",
        VAULT_DB_POOL_SIZE="4",
        VAULT_SHUTDOWN_GRACE_SECONDS="5",
    )
    args = ["--address", "127.0.0.1:0", "--data-dir", str(data), "--database-url", postgres_url]
    args.append("--dev")  # the data dir's token key with PostgreSQL
    with contextlib.ExitStack() as stack:
        vaults = [
            stack.enter_context(serving(args, env, tmp_path / f"vault-{n}.log")) for n in range(3)
        ]
        assert datetime.now(UTC) < fire_at, "the replicas took longer to start than the lead"
        service = token_for(data)
        traffic = Traffic([v.address for v in vaults], service, token_for(data, **DPO))
        workers = [threading.Thread(target=traffic.run, args=(n,)) for n in range(6)]
        for worker in workers:
            worker.start()
        try:
            _eventually(lambda: _runs(engine) >= 1, 40.0, "the scheduled retention run")
            time.sleep(1.5)  # time for a second runner, if the lock let one in
        finally:
            traffic.stop()
            for worker in workers:
                worker.join(30)
        codes = [v.terminate(30)[0] for v in vaults]

    assert codes == [0, 0, 0]
    assert traffic.failures == []
    assert len(traffic.created) >= 6  # every worker got round at least once
    # Counts: every acknowledged call left exactly its row and its audit entry.
    with engine.connect() as conn:
        states = dict(
            conn.execute(
                sa.text("SELECT id, state FROM subjects WHERE id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": traffic.created},
            ).all()
        )
    assert len(states) == len(traffic.created)
    assert {states[s] for s in traffic.erased} == {"erased"}
    assert _audited(engine, sorted(traffic.calls)) == traffic.calls
    # The schedule fired on all three; exactly one ran it, and it noticed each subject once.
    assert _runs(engine) == 1
    ran = [v for v in vaults if re.search(r"retention run run_\S+: ", v.log())]
    assert len(ran) == 1
    assert audit_actions_per_subject(engine, "NotifySubject") == dict.fromkeys(dormant, 1)
    verify_audit_log_at(engine, Settings(data_dir=data))
    for vault in vaults:
        _quiet_log(vault)
    engine.dispose()


def _runs(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM retention_runs")).scalar_one())
