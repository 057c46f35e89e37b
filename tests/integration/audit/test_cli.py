"""`customer-vault audit ...` (audit.cli.app) on a real SQLite log file."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from audit import (
    CheckpointSigner,
    append_in,
    create_sqlite_engine,
    generate_signing_key,
    latest_checkpoint,
    leaf_scan,
    migrate,
    verify_pool,
)
from audit.cli import app
from tests.integration.audit import helpers

SIZE = 40


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "400"})  # rich tables at full width


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The vault's embedded layout in the working directory: the CLI's defaults."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAULT_DATABASE_URL", raising=False)
    return tmp_path / ".vault-data"


@pytest.fixture
def signer(data_dir: Path) -> CheckpointSigner:
    private, _public = generate_signing_key(data_dir / "keys" / "audit_signing.pem")
    return CheckpointSigner.from_pem(private.read_bytes(), name="customer-vault/audit")


@pytest.fixture
def engine(data_dir: Path, signer: CheckpointSigner) -> Iterator[Engine]:
    engine = create_sqlite_engine(data_dir / "vault.db")
    migrate(engine)
    helpers.build_log(engine, signer, SIZE)
    yield engine
    engine.dispose()


def _text(output: str) -> str:
    """Table output with the box drawing and line folds taken out."""
    return re.sub(r"[\s│┃]+", " ", output)


def test_query_filters_and_limits(runner: CliRunner, engine: Engine) -> None:
    result = runner.invoke(app, ["query", "--actor", "agent-1", "--decision", "deny"])
    assert result.exit_code == 0, result.output
    shown = _text(result.stdout)
    # make_entry: actor agent-(n % 3), deny when n % 4 == 0 -> n in 4, 16, 28
    assert "Audit entries (3)" in shown
    for request in ("req-4", "req-16", "req-28"):
        assert request not in shown  # the query table has no request column ...
    assert shown.count("PERMISSION_DENIED") == 3  # ... but every match's result
    limited = runner.invoke(app, ["query", "--limit", "5"])
    assert limited.exit_code == 0
    assert "first 5, more exist" in _text(limited.stdout)


def test_query_time_range_and_bad_time(runner: CliRunner, engine: Engine) -> None:
    result = runner.invoke(
        app, ["query", "--since", "2025-01-01T00:00:10", "--until", "2025-01-01T00:00:20+00:00"]
    )
    assert result.exit_code == 0, result.output
    assert "Audit entries (10)" in _text(result.stdout)
    bad = runner.invoke(app, ["query", "--since", "yesterday"])
    assert bad.exit_code == 2
    assert "--since is not an ISO 8601 time" in bad.stderr


def test_history_shows_who_saw_the_subject(runner: CliRunner, engine: Engine) -> None:
    result = runner.invoke(app, ["history", "sub-2"])
    assert result.exit_code == 0, result.output
    shown = _text(result.stdout)
    assert "Access history of sub-2 (8)" in shown  # n % 5 == 2 for n < 40
    for n in range(2, SIZE, 5):
        assert f"req-{n}" in shown.replace(" ", "")


def test_verify_an_intact_log(runner: CliRunner, engine: Engine) -> None:
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert f"OK: {SIZE} entries verified against {SIZE} signed checkpoints" in result.stdout
    assert f"size {SIZE}" in result.stdout


@pytest.mark.parametrize("workers", ["1", "2"])
def test_verify_with_workers_names_the_first_bad_leaf(
    runner: CliRunner, engine: Engine, workers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of 4 leaves and a pool from 2 chunks on: two processes check the chunks.
    monkeypatch.setattr(leaf_scan, "CHUNK", 4)
    monkeypatch.setattr(verify_pool, "MIN_CHUNKS", 2)
    with engine.begin() as conn:
        helpers.edit_column(conn, 9)
    result = runner.invoke(app, ["verify", "--workers", workers])
    assert result.exit_code == 1, result.output
    assert "FAILED at leaf 9" in result.stdout


@pytest.mark.postgres
def test_verify_on_postgresql_with_workers_names_the_first_bad_leaf(
    runner: CliRunner,
    data_dir: Path,
    signer: CheckpointSigner,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leaf_scan, "CHUNK", 4)
    monkeypatch.setattr(verify_pool, "MIN_CHUNKS", 2)
    from_workers = helpers.chunks_from_workers(monkeypatch)
    engine = sa.create_engine(postgres_url)
    try:
        migrate(engine)
        helpers.build_log(engine, signer, SIZE)
        verified = runner.invoke(app, ["verify", "--database-url", postgres_url, "--workers", "2"])
        assert verified.exit_code == 0, verified.output
        assert f"OK: {SIZE} entries verified" in verified.stdout
        with engine.begin() as conn:
            helpers.edit_column(conn, 9)
    finally:
        engine.dispose()
    result = runner.invoke(app, ["verify", "--database-url", postgres_url, "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert "FAILED at leaf 9" in result.stdout
    assert from_workers == [*range(0, SIZE, 4), 0, 4, 8]  # both runs' chunks, by workers


def test_verify_names_the_first_bad_leaf(runner: CliRunner, engine: Engine) -> None:
    with engine.begin() as conn:
        helpers.edit_field(conn, 17, rewrite_hash=True)
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 1
    assert "FAILED at leaf 17: leaves do not match the signed root at size 18" in result.stdout
    assert "mallory" not in result.output


def test_verify_refuses_a_log_behind_a_kept_checkpoint(
    runner: CliRunner, engine: Engine, tmp_path: Path
) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    saved = runner.invoke(app, ["checkpoint", "--out", str(kept)])
    assert saved.exit_code == 0, saved.output
    (path,) = kept.iterdir()
    assert path.name == f"checkpoint-{SIZE:020d}.txt"
    with engine.begin() as conn:
        helpers.truncate(conn, 30, cover_up=True)
    assert runner.invoke(app, ["verify"]).exit_code == 0  # consistent on its own
    result = runner.invoke(app, ["verify", "--checkpoint", str(path)])
    assert result.exit_code == 1
    assert "FAILED at leaf 30" in result.stdout
    assert "trusted checkpoint" in result.stdout


def test_verify_with_another_key_or_origin_fails(
    runner: CliRunner, engine: Engine, tmp_path: Path
) -> None:
    _private, other = generate_signing_key(tmp_path / "other.pem")
    result = runner.invoke(app, ["verify", "--public-key", str(other)])
    assert result.exit_code == 1
    assert "no valid signature" in result.stdout
    wrong_origin = runner.invoke(app, ["verify", "--origin", "another/log"])
    assert wrong_origin.exit_code == 1
    missing = runner.invoke(app, ["verify", "--public-key", str(tmp_path / "nope.pem")])
    assert missing.exit_code == 2
    assert "cannot read the public key" in missing.stderr


def test_checkpoint_prints_the_signed_note(
    runner: CliRunner, engine: Engine, signer: CheckpointSigner
) -> None:
    result = runner.invoke(app, ["checkpoint"])
    assert result.exit_code == 0, result.output
    assert result.stdout == latest_checkpoint(engine)
    checkpoint = signer.verifier().verify(result.stdout)
    assert checkpoint.size == SIZE
    assert result.stdout.splitlines()[-1].startswith("\u2014 customer-vault/audit ")


def test_export_jsonl_to_stdout(runner: CliRunner, engine: Engine) -> None:
    result = runner.invoke(app, ["export", "--decision", "deny"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == SIZE // 4
    assert {record["decision"] for record in records} == {"deny"}
    assert [record["leaf_index"] for record in records] == list(range(0, SIZE, 4))


def test_export_csv_and_html_to_files(runner: CliRunner, engine: Engine, tmp_path: Path) -> None:
    out_csv = tmp_path / "out.csv"
    result = runner.invoke(app, ["export", "--format", "csv", "--output", str(out_csv)])
    assert result.exit_code == 0, result.output
    assert f"wrote {SIZE} entries" in result.stderr
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(rows) == SIZE
    report = tmp_path / "sub-3.html"
    result = runner.invoke(
        app, ["export", "--format", "html", "--subject", "sub-3", "--output", str(report)]
    )
    assert result.exit_code == 0, result.output
    page = report.read_text()
    assert "<title>Access history of subject sub-3</title>" in page
    assert "<dt>Subject</dt><dd>sub-3</dd>" in page
    assert f"size {SIZE}, root " in page
    assert page.count("<tr>") == 1 + SIZE // 5
    assert "<script" not in page
    assert "http" not in page.replace('http-equiv="Content-Security-Policy"', "")


def test_database_url_from_the_environment(
    runner: CliRunner, engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = data_dir / "elsewhere.db"
    engine.dispose()  # the last connection folds the WAL into the file
    (data_dir / "vault.db").rename(moved)
    assert runner.invoke(app, ["query"]).exit_code == 2  # the default file is gone
    monkeypatch.setenv("VAULT_DATABASE_URL", f"sqlite:///{moved}")
    result = runner.invoke(app, ["query", "--limit", "1"])
    assert result.exit_code == 0, result.output


def test_missing_database_or_schema_is_a_usage_error(
    runner: CliRunner, data_dir: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["query"])
    assert result.exit_code == 2
    assert "no database at .vault-data/vault.db" in result.stderr
    assert not (data_dir / "vault.db").exists()  # not created by looking
    empty = tmp_path / "empty.db"
    create_sqlite_engine(empty).dispose()
    with create_sqlite_engine(empty).connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    result = runner.invoke(app, ["query", "--database-url", f"sqlite:///{empty}"])
    assert result.exit_code == 2
    assert "customer-vault migrate" in result.stderr


def test_entry_text_is_not_rich_markup(runner: CliRunner, engine: Engine) -> None:
    with engine.begin() as conn:
        append_in(conn, [helpers.make_entry(99, reason="[bold red]rule[/bold red] [x]")])
    result = runner.invoke(app, ["query", "--limit", "100"])
    assert result.exit_code == 0, result.output
    assert "[bold red]rule[/bold red]" in result.stdout.replace("\n", "").replace("│", "")
