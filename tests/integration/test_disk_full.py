"""Fault: the SQLite data dir runs out of space (a small tmpfs mounted for the test).

Calls that must write get a clean `RESOURCE_EXHAUSTED` or `UNAVAILABLE`, never
`INTERNAL`; nothing is half-written; the server stays up; once space is freed it
recovers without a restart, the database passes SQLite's integrity check, every
acknowledged subject reads back whole and the audit log verifies.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.data import ADA, DPO
from tests.integration.retention.helpers import verify_audit_log_at
from tests.integration.serving import clean_env, run_cli, serving, token_for
from vault.api.client import VaultClient, VaultClientError
from vault.config import Settings
from vault.storage.db import create_engine

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("disk_full")]

PURPOSE = "data_subject_request"
CLEAN_REFUSALS = {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}
TMPFS_SIZE = "24m"


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs, mounted for this test and unmounted after it."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the disk-full test needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no space left; returns it (delete to free)."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # Whatever is left is smaller than a chunk: take it a page at a time.
    with filler.open("ab", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    return filler


def _refusal(call: Callable[[], object]) -> str:
    try:
        call()
    except VaultClientError as exc:
        return exc.code
    return "OK"


def test_a_full_data_dir_refuses_writes_cleanly_and_recovers(
    tmp_path: Path, small_filesystem: Path
) -> None:
    data = small_filesystem / "data"
    env = clean_env(VAULT_RETENTION_SCHEDULE="", VAULT_AUDIT_INTEGRATE_INTERVAL_SECONDS="0.2")
    done = run_cli(["keys", "init", "--data-dir", str(data)], env)
    assert done.returncode == 0, done.stderr
    args = ["--address", "127.0.0.1:0", "--data-dir", str(data)]
    with serving(args, env, tmp_path / "vault.log") as vault:
        with (
            VaultClient(vault.address, token_for(data)) as service,
            VaultClient(vault.address, token_for(data, **DPO)) as dpo,
        ):
            acknowledged = [service.create(ADA).subject_id for _ in range(20)]
            filler = fill(small_filesystem)

            def create() -> None:
                acknowledged.append(service.create(ADA).subject_id)

            # SQLite starts its write-ahead log over once it is all copied, writing into
            # the file's existing pages (about 2 MiB here), so a write that fits there
            # needs no new space: 500 subjects sometimes did. 5,000 need about 10 MiB.
            too_big = [ADA] * 5_000

            outcomes = {
                "create": _refusal(create),
                "batch": _refusal(lambda: service.batch_create(too_big, all_or_nothing=True)),
                "update": _refusal(
                    lambda: service.update(acknowledged[0], 1, {"city": "Leeds"}, reason="moved")
                ),
                "get": _refusal(lambda: dpo.get(acknowledged[1], "full", PURPOSE, "DSR-1")),
            }
            # A write may still fit in pages SQLite already holds; the batch cannot.
            assert set(outcomes.values()) <= CLEAN_REFUSALS | {"OK"}, outcomes
            assert outcomes["batch"] in CLEAN_REFUSALS, outcomes
            for _ in range(30):  # keep writing: still clean, still up
                assert _refusal(create) in CLEAN_REFUSALS | {"OK"}
            assert vault.process.poll() is None

            filler.unlink()
            after = service.create(ADA).subject_id  # recovers without a restart
            acknowledged.append(after)
            batch = service.batch_create([ADA] * 50, all_or_nothing=True)
            acknowledged.extend(item.subject_id for item in batch.results)
            for subject in acknowledged[:3] + acknowledged[-3:]:
                assert (
                    dpo.get(subject, "full", PURPOSE, "DSR-1").fields["family_name"].value
                    == "Lovelace"
                )
        code, _ = vault.terminate(30)
        assert code == 0
        log = vault.log()
    assert "Traceback" not in log and "Lovelace" not in log

    settings = Settings(data_dir=data)
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
            stored = set(conn.execute(sa.text("SELECT id FROM subjects")).scalars())
        assert stored == set(acknowledged)  # every acknowledged write, and nothing else
        verify_audit_log_at(engine, settings)
    finally:
        engine.dispose()
