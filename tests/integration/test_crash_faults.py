"""Faults: `kill -9` of a serving vault while batch creates, updates and erasures are in
flight. After a restart on the same data dir no subject is half-written, no batch is
partly stored, every acknowledged write is there, and the audit log verifies."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from customer_vault_client.gen.customervault.v1 import rights_pb2

import audit
from tests.integration.serving import clean_env, serving, token_for
from vault.api.client import VaultClient, VaultClientError
from vault.storage.db import create_engine

pytestmark = pytest.mark.slow

BATCH = 2000
PURPOSE = "data_subject_request"
LOAD_SECONDS = 1.5


def _fields(batch: int, index: int) -> dict[str, str]:
    """The fields of subject `index` of batch `batch`, already in normalized form except
    for the phone number; the e-mail address says which batch and item it is."""
    return {
        "given_name": "Ada",
        "family_name": "Lovelace",
        "email": f"b{batch}.n{index}@example.com",
        "phone": "+1 415 555 2671",
        "date_of_birth": "1985-01-01",
        "country": "US",
        "national_id": f"NID{batch:03d}X{index:05d}",
    }


def _batch_of(email: str) -> tuple[int, int]:
    batch, index = email.split("@", 1)[0].split(".")
    return int(batch[1:]), int(index[1:])


@dataclass
class Load:
    """Batch creates, updates and erasures from client threads until the server dies."""

    address: str
    service_token: str
    dpo_token: str
    pool: list[str]
    acked_batches: dict[int, list[str]] = field(default_factory=dict)
    acked_updates: dict[str, str] = field(default_factory=dict)
    attempted_updates: set[str] = field(default_factory=set)
    acked_erasures: set[str] = field(default_factory=set)
    attempted_erasures: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    creating: set[int] = field(default_factory=set)
    _batches: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        workers: list[Callable[[], None]] = [self._creator, self._creator]
        # Updaters and the eraser work on disjoint slices of the pool: no version races.
        workers += [
            lambda: self._updater(self.pool[0:600]),
            lambda: self._updater(self.pool[600:1200]),
        ]
        workers += [lambda: self._eraser(self.pool[1200:2000])]
        for work in workers:
            thread = threading.Thread(target=self._guard(work), daemon=True)
            thread.start()
            self._threads.append(thread)

    def in_flight(self) -> set[int]:
        with self._lock:
            return set(self.creating)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads)

    def _guard(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except VaultClientError as exc:
                # Only a dead server may fail a call: anything else is a test failure.
                if exc.code not in {"UNAVAILABLE", "CANCELLED"}:
                    with self._lock:
                        self.errors.append(f"{exc.code}: {exc.message}")
            except Exception as exc:  # noqa: BLE001 - reported by the test, not the thread
                with self._lock:
                    self.errors.append(repr(exc))

        return run

    def _creator(self) -> None:
        with VaultClient(self.address, self.service_token, timeout=20) as client:
            while not self._stop.is_set():
                batch = next(self._batches)
                items = [_fields(batch, i) for i in range(BATCH)]
                with self._lock:
                    self.creating.add(batch)
                response = client.batch_create(items, all_or_nothing=True)
                assert response.created == BATCH, response.failed
                ids = [r.subject_id for r in sorted(response.results, key=lambda r: r.index)]
                with self._lock:
                    self.acked_batches[batch] = ids
                    self.creating.discard(batch)

    def _updater(self, subjects: list[str]) -> None:
        with VaultClient(self.address, self.service_token, timeout=20) as client:
            for subject in subjects:
                if self._stop.is_set():
                    return
                city = f"City {subject[-6:].upper()}"
                with self._lock:
                    self.attempted_updates.add(subject)
                client.update(subject, 1, {"city": city}, reason="moved")
                with self._lock:
                    self.acked_updates[subject] = city

    def _eraser(self, subjects: list[str]) -> None:
        with VaultClient(self.address, self.dpo_token, timeout=20) as client:
            for subject in subjects:
                if self._stop.is_set():
                    return
                with self._lock:
                    self.attempted_erasures.add(subject)
                # Bulk erasure goes through the data-subject-request path (EraseSubject
                # spends a per-principal erasure budget).
                request = rights_pb2.EraseSubjectDataRequest(
                    subject_id=subject, reason="DSR-2026-1: data subject request"
                )
                client.call(client.rights, "EraseSubjectData", request)
                with self._lock:
                    self.acked_erasures.add(subject)


def _rows(engine: sa.Engine, sql: str) -> list[sa.Row[Any]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql)).all())


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def _verify_audit(engine: sa.Engine, public_pem: bytes) -> tuple[audit.VerifyReport, int]:
    """The log verified once the restarted server has integrated every entry (up to 10 s):
    the report and how many entries were still not in the tree."""
    verifier = audit.CheckpointVerifier.from_pem(public_pem)
    deadline = time.monotonic() + 10
    while True:
        pending = _count(engine, "SELECT count(*) FROM audit_entries WHERE leaf_index IS NULL")
        report = audit.verify_log(engine, verifier)
        if (report.ok and pending == 0) or time.monotonic() > deadline:
            return report, pending
        time.sleep(0.2)


def test_kill_9_during_batch_creates_updates_and_erasures_leaves_no_half_written_subject(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = clean_env(VAULT_RETENTION_SCHEDULE="", VAULT_AUDIT_INTEGRATE_INTERVAL_SECONDS="0.2")
    args = ["--address", "127.0.0.1:0", "--data-dir", str(data)]

    with serving(args, env, tmp_path / "vault-1.log") as vault:
        service, dpo = token_for(data), token_for(data, "dpo-1", ("dpo",), clearance="3")
        with VaultClient(vault.address, service) as client:
            seeded = client.batch_create([_fields(0, i) for i in range(BATCH)], all_or_nothing=True)
        assert seeded.created == BATCH
        pool = [r.subject_id for r in sorted(seeded.results, key=lambda r: r.index)]
        load = Load(vault.address, service, dpo, pool)
        load.acked_batches[0] = pool
        load.start()
        time.sleep(LOAD_SECONDS)
        # Under load a batch may take longer than that: kill only once one has been
        # acknowledged, so that acknowledged batches are tested for durability too.
        deadline = time.monotonic() + 15
        while len(load.acked_batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        in_flight = load.in_flight()
        os.kill(vault.process.pid, signal.SIGKILL)
        assert vault.process.wait(10) == -signal.SIGKILL
        load.stop()
    assert load.errors == []
    assert in_flight, "no batch create was in flight when the server was killed"
    # The kill landed while every kind of write was going on.
    assert len(load.acked_batches) >= 2, "no batch create was acknowledged under load"
    assert load.acked_updates and load.acked_erasures
    assert len(load.attempted_erasures) < len(pool[1200:2000]), "erasures ran out before the kill"

    with serving(args, env, tmp_path / "vault-2.log") as vault:
        engine = create_engine(f"sqlite:///{data / 'vault.db'}", pool_size=1)
        try:
            _check_rows(engine, load)
            _check_reads(vault.address, dpo, load)
            public_pem = (data / "keys" / "audit_signing.pub.pem").read_bytes()
            report, pending = _verify_audit(engine, public_pem)
            assert report.ok, report.problem
            assert pending == 0, f"{pending} audit entries never integrated"
            _check_audit(engine, load)
        finally:
            engine.dispose()


def _check_rows(engine: sa.Engine, load: Load) -> None:
    subjects = _rows(
        engine, "SELECT id, state, version, wrapped_dek, kek_version, fields FROM subjects"
    )
    states = Counter(row.state for row in subjects)
    assert set(states) <= {"active", "erased"}, states
    for row in subjects:
        if row.state == "active":
            assert row.wrapped_dek is not None and row.kek_version is not None, row.id
            assert row.fields is not None, row.id
        else:
            assert row.wrapped_dek is None and row.fields is None, row.id
    erased = {row.id for row in subjects if row.state == "erased"}
    linked = {
        r.subject_id
        for r in _rows(
            engine, "SELECT subject_id FROM blind_indexes UNION SELECT subject_id FROM tokens"
        )
    }
    assert erased & linked == set()
    assert len(subjects) % BATCH == 0, f"{len(subjects)} subjects: a batch was partly stored"

    # Durability: every acknowledged write survived the kill.
    stored = {row.id: row for row in subjects}
    for batch, ids in load.acked_batches.items():
        assert set(ids) <= stored.keys(), f"acknowledged batch {batch} lost"
    assert load.acked_erasures <= erased
    assert erased <= load.attempted_erasures
    for subject in load.acked_updates:
        assert stored[subject].version == 2, subject
    changed = {row.id for row in subjects if row.version != 1 and row.state == "active"}
    assert changed <= load.attempted_updates


def _check_reads(address: str, dpo_token: str, load: Load) -> None:
    """Every active subject decrypts whole; every erased one is refused."""
    with VaultClient(address, dpo_token, timeout=60) as dpo:
        views = list(dpo.export("full", PURPOSE, "DSR-1"))
        batches: Counter[int] = Counter()
        phones = set()
        for view in views:
            values = {name: value.value for name, value in view.fields.items()}
            batch, index = _batch_of(values["email"])
            batches[batch] += 1
            expected = _fields(batch, index)
            phones.add(values.pop("phone"))
            expected.pop("phone")
            city = values.pop("city", None)
            assert values == expected, view.meta.subject_id
            subject = view.meta.subject_id
            if subject in load.acked_updates:
                assert city == load.acked_updates[subject]
            elif city is not None:
                assert subject in load.attempted_updates
        assert len(phones) == 1 and "".join(c for c in phones.pop() if c.isdigit()) == "14155552671"
        for batch, ids in load.acked_batches.items():
            alive = len(set(ids) - load.attempted_erasures)
            assert batches[batch] >= alive, f"batch {batch}: {batches[batch]} readable"
        for subject in sorted(load.acked_erasures)[:50]:
            with pytest.raises(VaultClientError) as refused:
                dpo.get(subject, "full", PURPOSE, "DSR-1")
            assert refused.value.code == "FAILED_PRECONDITION"
        for batch, ids in load.acked_batches.items():
            for subject in ids[::200]:
                if subject not in load.attempted_erasures:
                    assert (
                        dpo.get(subject, "full", PURPOSE, "DSR-1").fields["email"].value
                        == (_fields(batch, ids.index(subject))["email"])
                    )


def _check_audit(engine: sa.Engine, load: Load) -> None:
    """One OK batch entry per stored batch, linking exactly that batch's subjects."""
    links = _rows(
        engine,
        "SELECT e.id AS entry, s.subject_id FROM audit_entries e "
        "JOIN audit_entry_subjects s ON s.entry_id = e.id "
        "WHERE e.action = 'BatchCreateSubjects' AND e.result_code = 'OK'",
    )
    per_entry = Counter(row.entry for row in links)
    subjects = {row.id for row in _rows(engine, "SELECT id FROM subjects")}
    assert set(per_entry.values()) == {BATCH}
    assert len(per_entry) == len(subjects) // BATCH
    assert {row.subject_id for row in links} == subjects
    assert len(per_entry) >= len(load.acked_batches)
