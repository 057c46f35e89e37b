"""The suite's own house rules, checked: test modules never import each other (shared
data lives in tests/data.py), a vault is started one way (`vault.app.running`, through
`vault.testing` in tests), nothing reads outside the checkout, and the gate
(`make check`) is what CI runs, every phony target doing something."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO_ROOT

CODE = ("vault", "audit", "tests", "benchmarks", "scripts")
GATE = ["lint", "typecheck", "protos-check", "buf", "imports", "audit-deps", "test"]


def _python_files() -> list[Path]:
    return sorted(path for folder in CODE for path in (REPO_ROOT / folder).rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_test_module_imports_another() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)} imports {module}"
        for path in sorted((REPO_ROOT / "tests").rglob("*.py"))
        for module in _imported_modules(path)
        if module.startswith("tests.") and module.rsplit(".", 1)[-1].startswith("test_")
    ]
    assert offenders == []


def test_a_vault_is_started_one_way() -> None:
    """Only `vault.app.running` starts a server and the background work; tests and
    benchmarks go through it (`vault.testing.running_vault`, or `customer-vault serve`)."""
    start_up = re.compile(r"\.(build_server|start_background|mark_serving)\(")
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in _python_files()
        if path != REPO_ROOT / "vault" / "app.py" and start_up.search(path.read_text())
    ]
    assert offenders == []


def test_nothing_reads_test_data_from_beside_the_checkout() -> None:
    beside = re.compile(r"""\.\./shared|["']shared["']\s*/|shared/vectors""")
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in _python_files()
        if path != Path(__file__).resolve() and beside.search(path.read_text())
    ]
    assert offenders == []


def _makefile() -> str:
    return (REPO_ROOT / "Makefile").read_text()


def _recipes() -> dict[str, list[str]]:
    """Each rule's target and its recipe lines (tab-indented)."""
    return {target: lines for target, (_, lines) in _rules().items()}


def _rules() -> dict[str, tuple[str, list[str]]]:
    """Each rule's target, its prerequisites and its recipe lines (tab-indented)."""
    rules: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in _makefile().splitlines():
        rule = re.match(r"^([A-Za-z][\w.-]*)\s*:(?!=)(.*)$", line)
        if rule:
            current = []
            rules[rule.group(1)] = (rule.group(2).strip(), current)
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif line.strip() and not line.startswith("#"):
            current = None
    return rules


def test_every_phony_target_does_something() -> None:
    """A recipe, or (`install`) a prerequisite whose rule has one: never a name that
    exits 0 doing nothing."""
    phony = re.search(r"^\.PHONY:(.*)$", _makefile(), re.M)
    assert phony
    rules = _rules()
    targets = phony.group(1).split()
    assert "check" in targets and "test-unit" in targets
    idle = [t for t in targets if t not in rules or not (rules[t][1] or rules[t][0])]
    assert idle == []


def test_make_check_runs_the_gate_in_order() -> None:
    recipes = _recipes()
    steps = [line.rsplit(" ", 1)[-1] for line in recipes["check"]]
    assert steps == GATE
    assert recipes["lint"] == [
        "$(VENV)/bin/ruff check $(SOURCES)",
        "$(VENV)/bin/ruff format --check $(SOURCES)",
    ]
    assert recipes["imports"] == ["$(VENV)/bin/lint-imports"]


def test_ci_runs_make_check() -> None:
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in lines if line.strip() and not line.startswith("#")]
    assert commands[-1] == "make check"
    assert "make check" in (REPO_ROOT / "README.md").read_text()
