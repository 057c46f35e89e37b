"""Dependencies: bounded in pyproject.toml, locked with hashes, installed only from the
locks, and audited by `make audit-deps`, which never passes silently when the advisory
database cannot be reached."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts import audit_deps
from tests.conftest import REPO_ROOT

LOCK = REPO_ROOT / "requirements.lock"
DEV_LOCK = REPO_ROOT / "requirements-dev.lock"
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ \\]+)")


def _project() -> dict[str, object]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        project: dict[str, object] = tomllib.load(handle)["project"]
    return project


def _runtime() -> list[Requirement]:
    dependencies = _project()["dependencies"]
    assert isinstance(dependencies, list)
    return [Requirement(text) for text in dependencies]


def _dev() -> list[Requirement]:
    """The extras `make install` installs: dev and browser (not bench)."""
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    return [Requirement(text) for extra in ("dev", "browser") for text in extras[extra]]


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every requirement in a lock file."""
    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in lock.read_text().splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match.group(1))
            assert current not in pins, f"{lock.name}: {current} pinned twice"
            pins[current] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            pytest.fail(f"{lock.name}: unexpected line {line!r}")
    return pins


def test_every_runtime_dependency_has_an_upper_bound() -> None:
    for requirement in _runtime():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {"<", "<=", "==", "~="}, f"{requirement.name} has no upper bound"


def test_the_policy_engine_comes_from_the_maintained_distribution() -> None:
    names = {canonicalize_name(r.name) for r in _runtime()}
    assert "pycasbin" in names and "casbin" not in names


@pytest.mark.parametrize("lock", [LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_locked_requirement_is_pinned_with_hashes(lock: Path) -> None:
    pins = _pins(lock)
    assert pins
    assert {name for name, (_, hashes) in pins.items() if hashes == 0} == set()
    # What building the project needs is locked too (installed with --no-build-isolation).
    assert {"setuptools", "wheel"} <= set(pins)


@pytest.mark.parametrize(
    ("lock", "requirements"),
    [(LOCK, _runtime), (DEV_LOCK, _runtime), (DEV_LOCK, _dev)],
    ids=["runtime", "dev-runtime", "dev"],
)
def test_the_locks_satisfy_pyproject(lock: Path, requirements: object) -> None:
    """A dependency added or re-bounded in pyproject.toml without `make lock` fails here."""
    pins = _pins(lock)
    assert callable(requirements)
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in {lock.name}: run `make lock`"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock.name} pins {name}=={version}, outside {requirement.specifier}"
        )


def test_the_dev_lock_agrees_with_the_runtime_lock() -> None:
    runtime, dev = _pins(LOCK), _pins(DEV_LOCK)
    assert {n: v for n, (v, _) in runtime.items()} == {n: dev[n][0] for n in runtime}


def _recipe(target: str) -> list[str]:
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_the_development_install_takes_every_package_from_the_lock_by_hash() -> None:
    installs = [line for line in _recipe("$(STAMP)") if "pip install" in line]
    assert installs, "no pip install in the install recipe"
    first, *rest = installs
    assert "--require-hashes" in first and "-r $(DEV_LOCK)" in first
    # Then only the project itself: nothing resolved, nothing fetched unhashed.
    assert rest and all("--no-deps" in line and "--no-build-isolation" in line for line in rest)
    assert "$(DEV_LOCK)" in next(
        line
        for line in (REPO_ROOT / "Makefile").read_text().splitlines()
        if line.startswith("$(STAMP):")
    )


# --- make audit-deps ----------------------------------------------------------------------


def _report(*dependencies: dict[str, object]) -> dict[str, object]:
    """pip-audit's `-f json` report shape."""
    return {"dependencies": list(dependencies), "fixes": []}


CLEAN = {"name": "pyyaml", "version": "6.0.4", "vulns": []}
VULNERABLE = {
    "name": "jinja2",
    "version": "2.10",
    "vulns": [{"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"], "aliases": []}],
}
SKIPPED = {
    "name": "alembic",
    "skip_reason": "Dependency not found on PyPI and could not be audited: alembic (1.20.1)",
}


def _verdict(report: dict[str, object], offline_allowed: bool = False) -> tuple[int, str]:
    code, lines = audit_deps.verdict(
        [audit_deps.parse_report("x.lock", report)], offline_allowed=offline_allowed
    )
    return code, "\n".join(lines)


def test_a_clean_audit_passes() -> None:
    code, text = _verdict(_report(CLEAN))
    assert code == 0 and "1 of 1 dependencies audited" in text


@pytest.mark.parametrize("offline_allowed", [False, True])
def test_a_vulnerable_dependency_fails_even_offline(offline_allowed: bool) -> None:
    code, text = _verdict(_report(CLEAN, VULNERABLE, SKIPPED), offline_allowed)
    assert code == 1 and "VULNERABLE jinja2==2.10: PYSEC-2019-217" in text


def test_skipped_dependencies_are_not_a_pass() -> None:
    """What pip-audit reports (exit 0, "No known vulnerabilities found") when the PyPI
    JSON API answers 404, as on this project's machines."""
    code, text = _verdict(_report(SKIPPED))
    assert code == 3 and audit_deps.UNREACHABLE in text
    assert "AUDIT_DEPS_OFFLINE=allow" in text
    code, text = _verdict(_report(CLEAN, SKIPPED))
    assert code == 3 and "not audited alembic" in text
    code, text = _verdict(_report(SKIPPED), offline_allowed=True)
    assert code == 0 and audit_deps.UNREACHABLE in text


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("override", ["", "allow"])
def test_an_unreachable_advisory_database_is_reported_loudly(tmp_path: Path, override: str) -> None:
    """The real pip-audit on the real lock, every request sent to a closed loopback port
    (a proxy nobody listens on): it is never a silent pass."""
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("AUDIT_DEPS_OFFLINE", None)
    env.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy, ALL_PROXY=proxy)
    if override:
        env["AUDIT_DEPS_OFFLINE"] = override
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "audit_deps.py"),
            str(LOCK),
            "--timeout",
            "3",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert audit_deps.UNREACHABLE in output, output
    assert done.returncode == (0 if override else 3), output
