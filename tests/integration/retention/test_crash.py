"""`kill -9` of the one-shot job mid-run, then a rerun, ends where an uninterrupted run
ends: same tombstones, same notices, same generalized records, one audit entry each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ADMIN_DSN
from tests.integration.harness import settings_for
from tests.integration.retention.helpers import (
    TestClock,
    audit_actions_per_subject,
    customer,
    retention_vault,
    rows,
    scalar,
    verify_audit_log_at,
)
from vault.cli.retention import EXIT_INTERRUPTED
from vault.retention.report import Outcome
from vault.storage.db import create_engine

COUNT = 3000
CLI = Path(sys.executable).with_name("customer-vault")
pytestmark = pytest.mark.slow


def _prepare(data_dir: Path, database_url: str | None) -> None:
    """COUNT subjects whose notices ran out ten days ago (on the real clock)."""
    now = datetime.now(UTC)
    clock = TestClock(now - timedelta(days=5 * 365))
    with retention_vault(data_dir, database_url, clock) as rv:
        service = rv.client()
        for start in range(0, COUNT, 1000):
            service.batch_create([customer(n) for n in range(start, start + 1000)])
        clock.set(now - timedelta(days=40))
        assert rv.app.retention_job.run().count(Outcome.NOTIFIED) == COUNT


def _command(data_dir: Path, database_url: str | None) -> list[str]:
    command = [str(CLI), "retention", "run", "--data-dir", str(data_dir), "--batch-size", "100"]
    return [
        *command,
        "--format",
        "json",
        *(["--database-url", database_url] if database_url else []),
    ]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}


def _run(data_dir: Path, database_url: str | None) -> dict[str, Any]:
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        _command(data_dir, database_url), capture_output=True, text=True, env=_env(), timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _url(data_dir: Path, database_url: str | None) -> str:
    return database_url or f"sqlite:///{data_dir / 'vault.db'}"


def _anonymized(data_dir: Path, database_url: str | None) -> int:
    engine = create_engine(_url(data_dir, database_url), pool_size=1)
    try:
        return int(scalar(engine, "SELECT count(*) FROM subjects WHERE state = 'anonymized'"))
    finally:
        engine.dispose()


def _kill_mid_run(data_dir: Path, database_url: str | None) -> int:
    process = subprocess.Popen(
        _command(data_dir, database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    deadline = time.monotonic() + 120
    try:
        while _anonymized(data_dir, database_url) == 0:
            assert process.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        children = _children(process.pid)
        # 30 batches due: on SQLite the job prepares them in a child process.
        assert children or database_url is not None, "no preparer process on SQLite"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    assert process.returncode == -signal.SIGKILL
    # The batch preparer (a child on SQLite) sees its pipe close and exits on its own.
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in children):
        assert time.monotonic() < deadline, "the killed job left its preparer running"
        time.sleep(0.05)
    # Counted once the job is dead: batches may have committed after the first was seen.
    return _anonymized(data_dir, database_url)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _end_state(data_dir: Path, database_url: str | None) -> dict[str, Any]:
    engine = create_engine(_url(data_dir, database_url), pool_size=1)
    try:
        state = {
            "subjects": sorted(
                map(
                    tuple,
                    rows(
                        engine,
                        "SELECT id, tenant, version, state, created_at, last_activity_at, "
                        "legal_hold, kek_version, wrapped_dek, fields FROM subjects",
                    ),
                )
            ),
            "notices": sorted(
                map(
                    tuple,
                    rows(
                        engine,
                        "SELECT id, subject_id, status, close_reason, created_at, deadline_at "
                        "FROM retention_notices",
                    ),
                )
            ),
            "records": Counter(
                map(tuple, rows(engine, "SELECT tenant, attributes FROM anonymized_records"))
            ),
            "links": scalar(engine, "SELECT count(*) FROM blind_indexes")
            + scalar(engine, "SELECT count(*) FROM tokens"),
            "anonymize_entries": Counter(
                audit_actions_per_subject(engine, "AnonymizeSubject").values()
            ),
            "notify_entries": Counter(audit_actions_per_subject(engine, "NotifySubject").values()),
        }
        settings = settings_for(data_dir, database_url)
        state["audit_verified"] = verify_audit_log_at(engine, settings) > 0
        return state
    finally:
        engine.dispose()


def _clone_postgres(url: str) -> str:
    source = url.rsplit("/", 1)[1]
    target = f"{source}_b{uuid.uuid4().hex[:6]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    return url.rsplit("/", 1)[0] + "/" + target


def _drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_kill_9_mid_run_then_rerun_ends_like_an_uninterrupted_run(
    tmp_path: Path, database_url: str | None
) -> None:
    prepared = tmp_path / "prepared"
    _prepare(prepared, database_url)
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    shutil.copytree(prepared, straight)
    shutil.copytree(prepared, crashed)
    straight_url = database_url
    crashed_url = _clone_postgres(database_url) if database_url else None
    try:
        report = _run(straight, straight_url)
        assert report["counts"]["anonymized"] == COUNT

        killed_after = _kill_mid_run(crashed, crashed_url)
        assert 0 < killed_after < COUNT  # the kill landed mid-run
        rerun = _run(crashed, crashed_url)
        assert killed_after + rerun["counts"]["anonymized"] == COUNT
        assert _run(crashed, crashed_url)["counts"]["anonymized"] == 0

        expected = _end_state(straight, straight_url)
        assert expected["anonymize_entries"] == {1: COUNT}
        assert expected["notify_entries"] == {1: COUNT}
        assert expected["links"] == 0
        assert sum(expected["records"].values()) == COUNT
        assert _end_state(crashed, crashed_url) == expected
    finally:
        if crashed_url:
            _drop_postgres(crashed_url)


def test_ctrl_c_to_the_process_group_stops_between_batches(
    tmp_path: Path, database_url: str | None
) -> None:
    """SIGINT to the job and its preparer together (Ctrl-C in a terminal): the preparer
    leaves it to the job, which stops between batches and says so; a rerun finishes."""
    data_dir = tmp_path / "data"
    _prepare(data_dir, database_url)
    process = subprocess.Popen(
        _command(data_dir, database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(),
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    try:
        deadline = time.monotonic() + 120
        while _anonymized(data_dir, database_url) == 0:
            assert process.poll() is None, "the job ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        children = _children(process.pid)
        assert children, "no preparer process"
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == EXIT_INTERRUPTED, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
    assert not any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in children)
    stopped_after = _anonymized(data_dir, database_url)
    assert 0 < stopped_after < COUNT
    assert _run(data_dir, database_url)["counts"]["anonymized"] == COUNT - stopped_after
