"""Each fuzz target in tests/fuzz runs briefly, from its seed corpus, without a finding.

A short, fixed-seed run per target (seconds) so CI notices a parser that starts raising
something other than its documented error, or an invariant that breaks. Longer runs are
manual: see docs/security.md, "Fuzz targets".
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
# target -> (most runs, most seconds): the policy target builds Casbin enforcers and
# runs ~60 inputs a second; the others run thousands.
BUDGETS = {
    "checkpoints": (3000, 3),
    "policy": (200, 4),
    "proofs": (1500, 3),
    "sealed": (3000, 3),
    "tokens": (2000, 3),
    "witness": (2000, 3),
}


def test_every_target_has_a_budget_and_a_seed_corpus() -> None:
    targets = {path.stem.removeprefix("fuzz_") for path in FUZZ_DIR.glob("fuzz_*.py")}
    assert targets == set(BUDGETS)
    assert all(any((CORPUS_DIR / target).iterdir()) for target in targets)


@pytest.mark.parametrize("target", sorted(BUDGETS))
def test_target_finds_nothing(target: str, tmp_path: Path) -> None:
    runs, seconds = BUDGETS[target]
    # libFuzzer adds inputs to the first corpus directory: give it a copy.
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS_DIR / target, corpus)
    command = [
        sys.executable,
        str(FUZZ_DIR / f"fuzz_{target}.py"),
        str(corpus),
        f"-runs={runs}",
        f"-max_total_time={seconds}",
        "-seed=1",
        f"-artifact_prefix={tmp_path}/",
    ]
    result = subprocess.run(  # noqa: PLW1510 - the return code is asserted below
        command, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    findings = sorted(p.name for p in tmp_path.iterdir() if p.name != "corpus")
    report = result.stderr[-4000:]
    assert result.returncode == 0, f"fuzz_{target} found something ({findings}):\n{report}"
    assert not findings, report
    assert "Done" in result.stderr, report
