"""Policy decision cost with 1,000 policy lines: the cached engine against plain Casbin.

Copies `policies/` to a temporary folder, pads `vault_policy.csv` with synthetic roles
and tenants up to 1,000 lines, then measures, on this machine and in this run:

- `PolicyEngine.authorize` on a warm cache (allowed requests) and `decide` on a warm
  cache (allowed and denied), median cost per decision over batches;
- the engine's cache miss on a fresh engine (the policy index for the shipped matcher,
  `vault/policy/decisions.py`), median, p99 and worst (the very first call);
- `casbin.Enforcer.enforce` on the same model and lines, uncached, median per call;

and prints the figures and the ratio. Target (DESIGN): at most 50 us per decision.

    .venv/bin/python benchmarks/bench_policy.py
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType

import casbin

from vault.errors import PermissionDeniedError
from vault.policy import SENSITIVITY_CLASSES, Action, PolicyEngine
from vault.policy.sources import MODEL_FILE, POLICY_FILE, POLICY_FILES
from vault.principal import Principal

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_LINES = 1_000
SYNTHETIC_ROLES = 150
SYNTHETIC_TENANTS = 40
TARGET_US = 50.0
VIEWS = ("support", "marketing", "analytics", "fraud", "full")
PURPOSES = ("support", "marketing", "analytics", "fraud", "legal", "*")

Request = tuple[Principal, Action, str | None, str]


def _resource_for(action: Action, i: int) -> str:
    if action.value.startswith("fields:") or action in (Action.SUBJECT_REVEAL, Action.DETOKENIZE):
        return "class:" + SENSITIVITY_CLASSES[i % len(SENSITIVITY_CLASSES)]
    if action in (Action.SUBJECT_READ, Action.SUBJECT_FIND, Action.SUBJECT_EXPORT):
        return "view:" + VIEWS[i % len(VIEWS)]
    return "*"


def synthetic_lines(count: int) -> list[str]:
    """`count` distinct, valid policy lines over synthetic roles and tenants."""
    actions = list(Action)
    lines: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(lines) < count:
        if i % 20 == 0:
            line = (
                f"g, synthetic_role_{i % SYNTHETIC_ROLES}, support_agent, "
                f"tenant_{i % SYNTHETIC_TENANTS:02d}"
            )
        else:
            action = actions[i % len(actions)]
            effect = "deny" if i % 11 == 0 else "allow"
            line = ", ".join(
                (
                    "p",
                    f"synthetic_role_{i % SYNTHETIC_ROLES}",
                    f"tenant_{(i // 3) % SYNTHETIC_TENANTS:02d}",
                    action.value,
                    _resource_for(action, i // 7),
                    PURPOSES[i % len(PURPOSES)],
                    str(i % 4),
                    "*" if i % 5 else "risk",
                    effect,
                )
            )
        if line not in seen:
            seen.add(line)
            lines.append(line)
        i += 1
    return lines


def build_policy_dir(directory: Path) -> tuple[int, int]:
    """Copy `policies/` into `directory` and pad the policy to TARGET_LINES lines."""
    for name in POLICY_FILES:
        shutil.copyfile(REPO_ROOT / "policies" / name, directory / name)
    path = directory / POLICY_FILE
    real = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    extra = synthetic_lines(TARGET_LINES - len(real))
    with path.open("a", encoding="utf-8") as out:
        out.write("\n# --- synthetic lines for the benchmark ---\n")
        out.write("\n".join(extra) + "\n")
    return len(real), len(extra)


def _who(roles: Sequence[str], tenant: str = "acme", **attributes: str) -> Principal:
    return Principal("bench", tenant, frozenset(roles), MappingProxyType(dict(attributes)))


def request_mix() -> list[Request]:
    """Requests a busy vault sees: view reads, field classes, writes; real and synthetic."""
    mix: list[Request] = []
    for c in SENSITIVITY_CLASSES:
        for clearance in ("0", "2"):
            agent = _who(["support_agent"], clearance=clearance)
            mix.append((agent, Action.FIELD_CLEAR, "support", f"class:{c}"))
            mix.append((agent, Action.FIELD_MASKED, "support", f"class:{c}"))
        mix.append((_who(["marketing"]), Action.FIELD_MASKED, "marketing", f"class:{c}"))
        mix.append((_who(["analyst"]), Action.FIELD_CLEAR, "analytics", f"class:{c}"))
        mix.append((_who(["dpo"]), Action.FIELD_CLEAR, "legal", f"class:{c}"))
    mix += [
        (_who(["support_agent"]), Action.SUBJECT_READ, "support", "view:support"),
        (_who(["support_lead"]), Action.SUBJECT_EXPORT, "support", "view:support"),
        (_who(["marketing"], department="marketing"), Action.SUBJECT_EXPORT, "marketing",
         "view:marketing"),
        (_who(["analyst"]), Action.SUBJECT_READ, "analytics", "view:analytics"),
        (_who(["fraud_analyst"]), Action.SUBJECT_READ, "fraud", "view:fraud"),
        (_who(["dpo"]), Action.SUBJECT_READ, "data_subject_request", "view:full"),
        (_who(["service"]), Action.SUBJECT_CREATE, None, "*"),
        (_who(["service"]), Action.ACTIVITY_RECORD, None, "*"),
        (_who(["compliance_officer"]), Action.AUDIT_READ, None, "*"),
        (_who(["admin"]), Action.KEYS_ADMIN, None, "*"),
        (_who(["admin", "support_agent"]), Action.SUBJECT_READ, "support", "view:support"),
        (_who(["service"]), Action.SUBJECT_READ, "support", "view:support"),
    ]  # fmt: skip
    for i in range(40):
        tenant = f"tenant_{i % SYNTHETIC_TENANTS:02d}"
        caller = _who([f"synthetic_role_{(i * 7) % SYNTHETIC_ROLES}"], tenant, clearance=str(i % 4))
        action = list(Action)[i % len(Action)]
        purpose = "support" if action.needs_purpose else None
        mix.append((caller, action, purpose, _resource_for(action, i)))
    return mix


def _median_per_call_ns(batch: Callable[[], None], calls: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        batch()
        samples.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(samples)


def _authorize_all(engine: PolicyEngine, requests: Sequence[Request]) -> None:
    for caller, action, purpose, resource in requests:
        engine.authorize(caller, action, purpose=purpose, resource=resource)


def _decide_all(engine: PolicyEngine, requests: Sequence[Request]) -> None:
    for caller, action, purpose, resource in requests:
        engine.decide(caller, action, purpose=purpose, resource=resource)


def _at_least(level: object, required: object) -> bool:
    return isinstance(level, int) and isinstance(required, str) and level >= int(required)


def plain_enforcer(directory: Path) -> casbin.Enforcer:
    """A plain Casbin enforcer over the same model and lines (no caching, no wrapper)."""
    model = casbin.Enforcer.new_model(text=(directory / MODEL_FILE).read_text(encoding="utf-8"))
    enforcer = casbin.Enforcer(model)
    silent = logging.Logger("bench.casbin", level=logging.CRITICAL + 1)
    silent.disabled = True
    enforcer.logger = silent  # Casbin logs request values at INFO; never in this process
    enforcer.add_function("atLeast", _at_least)
    enforcer.add_named_domain_matching_func("g", lambda request, link: link == "*")
    for raw in (directory / POLICY_FILE).read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            ptype, *values = (value.strip() for value in raw.split(","))
            model.add_policy(ptype, ptype, values)
    enforcer.build_role_links()
    return enforcer


def plain_requests(requests: Sequence[Request]) -> list[tuple[object, ...]]:
    """The same requests as Casbin request values (one role each, as the engine asks)."""
    values = []
    for caller, action, purpose, resource in requests:
        clearance = caller.attribute("clearance")
        level = int(clearance) if clearance.isdigit() else 0
        department = caller.attribute("department") or "~other"
        for role in sorted(caller.roles):
            values.append(
                (role, caller.tenant, action.value, resource, purpose or "", level, department)
            )
    return values


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
        directory = Path(tmp)
        real, extra = build_policy_dir(directory)
        started = time.perf_counter()
        engine = PolicyEngine.from_dir(directory)
        load_ms = (time.perf_counter() - started) * 1000
        requests = request_mix()
        allowed = [
            r for r in requests if engine.decide(r[0], r[1], purpose=r[2], resource=r[3]).allowed
        ]

        # cache misses: a fresh engine decides each request once
        cold = PolicyEngine.from_dir(directory)
        misses = []
        for caller, action, purpose, resource in requests:
            start = time.perf_counter_ns()
            cold.decide(caller, action, purpose=purpose, resource=resource)
            misses.append(time.perf_counter_ns() - start)
        miss_us = statistics.median(misses) / 1000
        misses.sort()
        miss_p99_us = misses[min(len(misses) - 1, int(len(misses) * 0.99))] / 1000
        miss_max_us = misses[-1] / 1000

        # a reload re-decides the old cache's questions before the swap
        (directory / POLICY_FILE).write_text(
            (directory / POLICY_FILE).read_text(encoding="utf-8") + "# touched\n", encoding="utf-8"
        )
        started = time.perf_counter()
        assert engine.reload()
        reload_ms = (time.perf_counter() - started) * 1000

        authorize_us = (
            _median_per_call_ns(lambda: _authorize_all(engine, allowed), len(allowed), 200) / 1000
        )
        decide_us = (
            _median_per_call_ns(lambda: _decide_all(engine, requests), len(requests), 200) / 1000
        )
        denied = [r for r in requests if r not in allowed]
        deny_us = 0.0
        if denied:

            def deny_all() -> None:
                for caller, action, purpose, resource in denied:
                    with contextlib.suppress(PermissionDeniedError):
                        engine.authorize(caller, action, purpose=purpose, resource=resource)

            deny_us = _median_per_call_ns(deny_all, len(denied), 200) / 1000

        enforcer = plain_enforcer(directory)
        plain = plain_requests(requests)
        samples = []
        for values in plain * 2:
            start = time.perf_counter_ns()
            enforcer.enforce(*values)
            samples.append(time.perf_counter_ns() - start)
        casbin_us = statistics.median(samples) / 1000

    print(
        f"policy lines:                          {real + extra} ({real} real + {extra} synthetic)"
    )
    print(f"load + validate:                       {load_ms:8.1f} ms")
    print(
        f"request mix:                           {len(requests)} distinct ({len(allowed)} allowed)"
    )
    print(f"engine.authorize, cached, allowed:     {authorize_us:8.2f} us/decision (median)")
    print(f"engine.authorize, cached, denied:      {deny_us:8.2f} us/decision (raises)")
    print(f"engine.decide, cached, mixed:          {decide_us:8.2f} us/decision (median)")
    print(f"engine cache miss:                     {miss_us:8.1f} us/decision (median)")
    print(f"engine cache miss, p99:                {miss_p99_us:8.1f} us/decision")
    print(f"engine cache miss, worst:              {miss_max_us:8.1f} us/decision (first call)")
    print(f"reload incl. re-deciding {len(requests)} cached:    {reload_ms:8.1f} ms")
    print(f"plain casbin.Enforcer.enforce:         {casbin_us:8.1f} us/call (median, uncached)")
    print(f"ratio plain casbin / cached authorize: {casbin_us / authorize_us:8.0f} x")
    verdict = "met" if max(authorize_us, decide_us, miss_us) <= TARGET_US else "MISSED"
    print(f"target <= {TARGET_US:.0f} us per decision:         {verdict}")


if __name__ == "__main__":
    main()
