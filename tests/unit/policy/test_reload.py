"""Reloading without a restart: new decisions after a change, the old policy kept when
the new one is invalid, and no window in which a check mixes two policies."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.data import FIELDS
from tests.unit.policy.helpers import copy_policies, real_texts, state_for, who
from vault.errors import PermissionDeniedError
from vault.policy import Action, Decision, PolicyEngine, SubjectContext
from vault.policy.sources import POLICY_FILE, PURPOSES_FILE
from vault.policy.state import EngineState
from vault.views.model import ViewPlan

AGENT_READ = "p, support_agent, *, subjects:read, view:support, support, 0, *, allow\n"
AGENT_INTERNAL = "p, support_agent, *, fields:clear, class:internal, support, 0, *, allow\n"
SUBJECT = SubjectContext("active")


def _edit(directory: Path, old: str, new: str) -> None:
    path = directory / POLICY_FILE
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")


def _read_support(engine: PolicyEngine) -> Decision:
    return engine.decide(
        who("support_agent"), Action.SUBJECT_READ, purpose="support", resource="view:support"
    )


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_reload_applies_a_changed_policy(policy_dir: Path) -> None:
    engine = PolicyEngine.from_dir(policy_dir)
    before = engine.version
    assert _read_support(engine).allowed
    assert engine.reload() is False  # nothing changed
    _edit(policy_dir, AGENT_READ, "")
    assert engine.reload() is True
    assert engine.version != before
    assert not _read_support(engine).allowed
    with pytest.raises(PermissionDeniedError):
        engine.plan_view(
            who("support_agent"), "support", "support", Action.SUBJECT_READ, FIELDS, SUBJECT
        )
    assert engine.last_reload_error is None


def test_an_invalid_policy_keeps_the_old_one_and_says_why(
    policy_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = PolicyEngine.from_dir(policy_dir)
    version = engine.version
    text = (policy_dir / POLICY_FILE).read_text(encoding="utf-8")
    line = text[: text.index(AGENT_READ)].count("\n") + 1
    _edit(policy_dir, AGENT_READ, AGENT_READ.replace("support, 0", "secret_scheme, 0"))
    with caplog.at_level(logging.DEBUG):
        assert engine.reload() is False
    assert engine.version == version
    assert _read_support(engine).allowed
    error = engine.last_reload_error
    assert error is not None
    assert (error.file, error.line) == (POLICY_FILE, line)
    assert "unknown purpose 'secret_scheme'" in error.detail
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"vault_policy.csv line {line}" in logged
    assert "secret_scheme" not in logged
    # fixing the file clears the error and applies the fix
    _edit(policy_dir, "secret_scheme, 0", "support, 2")
    assert engine.reload() is True
    assert engine.last_reload_error is None
    assert not _read_support(engine).allowed  # now needs clearance 2


def test_reverting_to_the_loaded_files_clears_the_error(policy_dir: Path) -> None:
    engine = PolicyEngine.from_dir(policy_dir)
    _edit(policy_dir, AGENT_READ, "p, nonsense\n")
    assert engine.reload() is False
    assert engine.last_reload_error is not None
    _edit(policy_dir, "p, nonsense\n", AGENT_READ)
    assert engine.reload() is False
    assert engine.last_reload_error is None


def test_the_watcher_reloads_a_changed_file(policy_dir: Path) -> None:
    engine = PolicyEngine.from_dir(policy_dir)
    engine.start_watching(interval=0.02)
    engine.start_watching(interval=0.02)  # a second call changes nothing
    try:
        _edit(policy_dir, AGENT_READ, "")
        assert _wait_for(lambda: not _read_support(engine).allowed)
        _edit(policy_dir, AGENT_INTERNAL, "p, broken\n")
        assert _wait_for(lambda: engine.last_reload_error is not None)
    finally:
        engine.stop_watching()
    assert not any(t.name == "policy-watcher" and t.is_alive() for t in threading.enumerate())


def test_the_watcher_notices_a_change_that_keeps_size_and_mtime(policy_dir: Path) -> None:
    engine = PolicyEngine.from_dir(policy_dir)
    path = policy_dir / POLICY_FILE
    stat = path.stat()
    _edit(policy_dir, AGENT_READ, AGENT_READ.replace("support, 0", "support, 3"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    engine.start_watching(interval=0.01)
    try:
        assert _wait_for(lambda: not _read_support(engine).allowed)
    finally:
        engine.stop_watching()


def test_watching_rejects_a_non_positive_interval(policy_dir: Path) -> None:
    engine = PolicyEngine.from_dir(policy_dir)
    with pytest.raises(ValueError, match="interval"):
        engine.start_watching(interval=0)
    engine.stop_watching()  # never started: nothing to do


REQUESTS = [
    (("support_agent",), Action.SUBJECT_READ, "support", "view:support"),
    (("support_agent",), Action.FIELD_CLEAR, "support", "class:internal"),
    (("analyst",), Action.AUDIT_READ, None, "*"),
    (("dpo", "analyst"), Action.AUDIT_READ, None, "*"),
    (("marketing",), Action.FIELD_MASKED, "marketing", "class:restricted"),
]


def _plan_outcomes(plan: ViewPlan) -> tuple[tuple[str, str, str], ...]:
    return tuple((f.field, f.outcome, f.strategy) for f in plan.fields)


def test_concurrent_decisions_during_reloads_always_match_one_policy(tmp_path: Path) -> None:
    first = copy_policies(tmp_path / "a")
    second = copy_policies(tmp_path / "b")
    # B: support agents lose clear internal fields; analysts may read the audit log
    _edit(second, AGENT_INTERNAL, "p, analyst, *, audit:read, *, *, 0, *, allow\n")
    expected: dict[str, list[Decision]] = {}
    plans: dict[str, tuple[tuple[str, str, str], ...]] = {}
    texts: dict[str, str] = {}
    for directory in (first, second):
        reference = PolicyEngine.from_dir(directory)
        expected[reference.version] = [
            reference.decide(who(*roles), action, purpose=purpose, resource=resource)
            for roles, action, purpose, resource in REQUESTS
        ]
        decided = reference.plan_view(
            who("support_agent"), "support", "support", Action.SUBJECT_READ, FIELDS, SUBJECT
        )
        plans[reference.version] = _plan_outcomes(decided.plan)
        texts[reference.version] = (directory / POLICY_FILE).read_text(encoding="utf-8")
    assert len(expected) == 2 and len(set(plans.values())) == 2

    live = copy_policies(tmp_path / "live")
    engine = PolicyEngine.from_dir(live)
    done = threading.Event()
    failures: list[str] = []
    checks = [0]

    def decide_forever() -> None:
        while not done.is_set():
            for index, (roles, action, purpose, resource) in enumerate(REQUESTS):
                got = engine.decide(who(*roles), action, purpose=purpose, resource=resource)
                if got not in (answers[index] for answers in expected.values()):
                    failures.append(f"request {index}: {got}")
            decided = engine.plan_view(
                who("support_agent"), "support", "support", Action.SUBJECT_READ, FIELDS, SUBJECT
            )
            if plans.get(decided.policy_version) != _plan_outcomes(decided.plan):
                failures.append(f"plan of {decided.policy_version} mixes policies")
            checks[0] += 1
            time.sleep(0.001)  # let the reloading thread have the GIL now and then

    workers = [threading.Thread(target=decide_forever) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        versions = list(expected)
        for turn in range(100):
            (live / POLICY_FILE).write_text(texts[versions[(turn + 1) % 2]], encoding="utf-8")
            assert engine.reload() is True
    finally:
        done.set()
        for worker in workers:
            worker.join()
    assert failures == []
    assert checks[0] > 0


def test_a_reload_decides_the_old_questions_before_the_swap(policy_dir: Path) -> None:
    old = state_for((policy_dir / POLICY_FILE).read_text(encoding="utf-8"))
    asked = [
        (who("support_agent", clearance="2"), Action.FIELD_CLEAR, "support", "class:confidential"),
        (
            who("marketing", department="marketing"),
            Action.SUBJECT_EXPORT,
            "marketing",
            "view:marketing",
        ),
        (who("admin"), Action.KEYS_ADMIN, None, "*"),
    ]
    for caller, action, purpose, resource in asked:
        old.decide(caller, action, purpose, resource)
    text = (policy_dir / POLICY_FILE).read_text(encoding="utf-8")
    new = state_for(
        text.replace("class:confidential, support, 2", "class:confidential, support, 3")
    )
    assert new.warm(old) == len(asked)
    fresh = state_for(
        text.replace("class:confidential, support, 2", "class:confidential, support, 3")
    )
    for caller, action, purpose, resource in asked:
        assert new.decide(caller, action, purpose, resource) == fresh.decide(
            caller, action, purpose, resource
        )
    assert not new.decide(*asked[0]).allowed  # the warmed answer is the new policy's


def test_warming_skips_purposes_the_new_policy_no_longer_declares() -> None:
    texts = real_texts()
    old = state_for(texts[POLICY_FILE])
    old.decide(who("analyst"), Action.AUDIT_READ, "analytics", "*")
    old.decide(who("analyst"), Action.AUDIT_READ, None, "*")
    policy = "\n".join(line for line in texts[POLICY_FILE].splitlines() if "analytics" not in line)
    purposes = texts[PURPOSES_FILE]
    start, end = purposes.index("  analytics:\n"), purposes.index("  fraud:\n")
    texts.update({POLICY_FILE: policy, PURPOSES_FILE: purposes[:start] + purposes[end:]})
    new = EngineState(texts, "v2")
    assert new.warm(old) == 1
