"""Tampering with a stored log is detected, and the first bad position is named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit import (
    CheckpointSigner,
    TreeConflictError,
    VerifyError,
    append_in,
    checkpoint_at,
    export_checkpoint,
    generate_signing_key,
    latest_checkpoint,
    leaf_scan,
    migrate,
    verify_log,
)
from audit import verify as audit_verify
from tests.integration.audit import helpers

SIZE = 40

Tamper = Callable[[Connection], None]

CASES: dict[str, tuple[Tamper, int, str]] = {
    "edit one field": (
        lambda c: helpers.edit_field(c, 17, rewrite_hash=False),
        17,
        "does not match its leaf hash",
    ),
    "edit one field and its leaf hash": (
        lambda c: helpers.edit_field(c, 17, rewrite_hash=True),
        17,
        "signed root",
    ),
    "delete one": (lambda c: helpers.delete_leaf(c, 17, renumber=False), 17, "missing"),
    "delete one and renumber": (
        lambda c: helpers.delete_leaf(c, 17, renumber=True),
        17,
        "signed root",
    ),
    "insert one": (lambda c: helpers.insert_leaf(c, 17), 17, "signed root"),
    "swap two": (lambda c: helpers.swap_leaves(c, 10, 20), 10, "signed root"),
    "edit an indexed column only": (
        lambda c: helpers.edit_column(c, 17),
        17,
        "query columns do not match",
    ),
    "delete a subject link": (
        lambda c: helpers.unlink_subject(c, 17),
        17,
        "subject links do not match",
    ),
    "add a subject link": (
        lambda c: helpers.link_subject(c, 17),
        17,
        "subject links do not match",
    ),
    "truncate the tail": (
        lambda c: helpers.truncate(c, 30, cover_up=False),
        30,
        "fewer than its checkpoint",
    ),
}


def test_an_untouched_log_verifies(audit_engine: Engine, audit_signer: CheckpointSigner) -> None:
    helpers.build_log(audit_engine, audit_signer, SIZE)
    report = verify_log(audit_engine, audit_signer.verifier())
    report.raise_for_failure()
    assert report.ok
    assert report.size == report.verified_size == SIZE
    assert report.checkpoints_checked == SIZE
    assert report.first_bad_position is None


@pytest.mark.parametrize("case", CASES)
def test_tampering_is_detected_at_the_first_bad_position(
    audit_engine: Engine, audit_signer: CheckpointSigner, case: str
) -> None:
    tamper, position, problem = CASES[case]
    helpers.build_log(audit_engine, audit_signer, SIZE)
    with audit_engine.begin() as conn:
        tamper(conn)
    report = verify_log(audit_engine, audit_signer.verifier())
    assert not report.ok
    assert report.first_bad_position == position
    assert report.bad_range_end == position + 1
    assert report.problem is not None
    assert problem in report.problem
    assert report.verified_size <= position
    with pytest.raises(VerifyError) as caught:
        report.raise_for_failure()
    assert caught.value.position == position
    assert "mallory" not in str(caught.value)


def test_a_covered_up_truncation_is_caught_by_an_exported_checkpoint(
    audit_engine: Engine, audit_signer: CheckpointSigner, tmp_path: Path
) -> None:
    helpers.build_log(audit_engine, audit_signer, SIZE)
    exported = export_checkpoint(audit_engine, tmp_path)
    assert exported.name == f"checkpoint-{SIZE:020d}.txt"
    with audit_engine.begin() as conn:
        helpers.truncate(conn, 30, cover_up=True)
    # Without outside knowledge a clean truncation is indistinguishable from a
    # shorter log: that is what the exported checkpoint is for.
    assert verify_log(audit_engine, audit_signer.verifier()).ok
    report = verify_log(
        audit_engine, audit_signer.verifier(), trusted_checkpoint=exported.read_text()
    )
    assert not report.ok
    assert report.first_bad_position == 30
    assert report.problem is not None
    assert "trusted checkpoint" in report.problem


def test_a_rewritten_history_is_caught_by_trusted_checkpoints(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    integrator = helpers.build_log(audit_engine, audit_signer, SIZE)
    early = checkpoint_at(audit_engine, 10)
    trusted = latest_checkpoint(audit_engine)
    assert early is not None
    assert trusted is not None
    with audit_engine.begin() as conn:
        helpers.truncate(conn, 12, cover_up=True)
    with audit_engine.begin() as conn:
        append_in(conn, [helpers.make_entry(n, actor="other") for n in range(100, 130)])
    # The running integrator remembers what it signed and refuses ...
    with pytest.raises(TreeConflictError):
        integrator.integrate()
    # ... but one with no memory of it (a new process without its last-checkpoint file,
    # as every integrator was before) signs new checkpoints over the rewritten history,
    # so the stored checkpoints agree with the stored leaves.
    helpers.fresh_integrator(audit_engine, audit_signer).integrate()
    assert verify_log(audit_engine, audit_signer.verifier()).ok
    report = verify_log(audit_engine, audit_signer.verifier(), trusted_checkpoint=trusted)
    assert not report.ok
    assert (report.first_bad_position, report.bad_range_end) == (0, SIZE)
    report = verify_log(audit_engine, audit_signer.verifier(), trusted_checkpoint=[early, trusted])
    assert not report.ok
    assert (report.first_bad_position, report.bad_range_end) == (10, SIZE)
    assert report.problem is not None
    assert "trusted checkpoint" in report.problem


def test_coarse_checkpoints_narrow_the_bad_leaf_to_a_range(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    helpers.build_log(audit_engine, audit_signer, SIZE, batches=1, checkpoint_interval=16)
    with audit_engine.begin() as conn:
        helpers.edit_field(conn, 17, rewrite_hash=True)
    report = verify_log(audit_engine, audit_signer.verifier())
    assert not report.ok
    assert report.first_bad_position == 16
    assert report.bad_range_end == 32
    assert report.verified_size == 16


def test_a_checkpoint_signed_by_another_key_is_refused(
    audit_engine: Engine, audit_signer: CheckpointSigner, tmp_path: Path
) -> None:
    helpers.build_log(audit_engine, audit_signer, 8)
    other = tmp_path / "other"
    other.mkdir()
    generate_signing_key(other / "k", other / "k.pub")
    forger = CheckpointSigner((other / "k").read_bytes(), audit_signer.key_name)
    report = verify_log(audit_engine, forger.verifier())
    assert not report.ok
    assert report.first_bad_position is None
    assert report.problem is not None
    assert "signature" in report.problem


def test_the_report_says_what_was_checked(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    helpers.build_log(audit_engine, audit_signer, SIZE, checkpoint_interval=16)
    calls: list[tuple[int, int]] = []
    report = verify_log(
        audit_engine,
        audit_signer.verifier(),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert report.ok
    assert (report.size, report.entries_checked, report.verified_size) == (SIZE, SIZE, SIZE)
    assert report.checkpoint is not None
    assert report.checkpoint.size == SIZE
    assert calls[-1] == (SIZE, SIZE)


def test_the_index_check_can_be_left_out(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    helpers.build_log(audit_engine, audit_signer, SIZE)
    with audit_engine.begin() as conn:
        helpers.edit_column(conn, 5)
        helpers.unlink_subject(conn, 9)
    merkle_only = verify_log(audit_engine, audit_signer.verifier(), check_index=False)
    assert merkle_only.ok
    assert not merkle_only.index_checked
    report = verify_log(audit_engine, audit_signer.verifier())
    assert (report.ok, report.first_bad_position) == (False, 5)
    assert report.index_checked


def test_a_log_behind_a_trusted_checkpoint_of_the_same_size_but_other_root_fails(
    audit_engine: Engine, audit_signer: CheckpointSigner
) -> None:
    integrator = helpers.build_log(audit_engine, audit_signer, 10)
    trusted = latest_checkpoint(audit_engine)
    assert trusted is not None
    # History rewritten to the same length, then re-signed by the running service.
    with audit_engine.begin() as conn:
        helpers.truncate(conn, 6, cover_up=True)
        append_in(conn, [helpers.make_entry(n, actor="other") for n in range(6, 10)])
    with pytest.raises(TreeConflictError):
        integrator.integrate()
    helpers.fresh_integrator(audit_engine, audit_signer).integrate()
    assert verify_log(audit_engine, audit_signer.verifier()).ok
    report = verify_log(audit_engine, audit_signer.verifier(), trusted_checkpoint=trusted)
    assert not report.ok
    assert report.problem == "leaves do not match the trusted checkpoint at size 10"
    assert (report.first_bad_position, report.bad_range_end) == (0, 10)


SMALL_CHUNK_CASES: dict[str, tuple[Tamper | None, int | None]] = {
    "untouched": (None, None),
    "delete the first leaf of a chunk": (lambda c: helpers.delete_leaf(c, 16, renumber=False), 16),
    "delete the last leaf of a chunk": (lambda c: helpers.delete_leaf(c, 15, renumber=False), 15),
    "delete a whole chunk": (lambda c: _delete_range(c, 8, 16), 8),
    "edit a column after a boundary": (lambda c: helpers.edit_column(c, 24), 24),
    "unlink a subject at a boundary": (lambda c: helpers.unlink_subject(c, 32), 32),
    "truncate at a boundary": (lambda c: helpers.truncate(c, 32, cover_up=False), 32),
}


def _delete_range(conn: Connection, start: int, end: int) -> None:
    for leaf in range(start, end):
        helpers.delete_leaf(conn, leaf, renumber=False)


@pytest.mark.parametrize("case", SMALL_CHUNK_CASES)
def test_chunk_boundaries(
    audit_engine: Engine,
    audit_signer: CheckpointSigner,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    monkeypatch.setattr(leaf_scan, "CHUNK", 8)
    tamper, position = SMALL_CHUNK_CASES[case]
    helpers.build_log(audit_engine, audit_signer, SIZE)
    if tamper is not None:
        with audit_engine.begin() as conn:
            tamper(conn)
    report = verify_log(audit_engine, audit_signer.verifier())
    assert report.ok is (position is None)
    assert report.first_bad_position == position
    if position is None:
        assert report.entries_checked == SIZE


def test_progress_comes_every_so_many_leaves_and_once_all_are_checked(
    audit_engine: Engine, audit_signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leaf_scan, "CHUNK", 8)
    monkeypatch.setattr(audit_verify, "PROGRESS_EVERY", 16)
    helpers.build_log(audit_engine, audit_signer, SIZE)
    calls: list[tuple[int, int]] = []
    report = verify_log(
        audit_engine, audit_signer.verifier(), progress=lambda *step: calls.append(step)
    )
    assert report.ok
    assert calls == [(16, SIZE), (32, SIZE), (SIZE, SIZE)]


def test_a_sqlite_connection_bound_to_its_thread_verifies(
    tmp_path: Path, audit_signer: CheckpointSigner
) -> None:
    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'bound.db'}", connect_args={"check_same_thread": True}
    )
    migrate(engine)
    helpers.build_log(engine, audit_signer, SIZE)
    with engine.begin() as conn:
        helpers.edit_column(conn, 7)
    report = verify_log(engine, audit_signer.verifier())
    assert (report.ok, report.first_bad_position) == (False, 7)
    engine.dispose()
