"""Casbin, wrapped: one answer per (roles, tenant, action, resource, purpose, attributes).

Casbin's `Enforcer.enforce` scans every policy line through an interpreted matcher
(milliseconds at 1,000 lines), so it runs only on a cache miss; `EngineState` caches
what this module answers. To make a miss cheaper, lines are split by action area
(``subjects``, ``fields``, ...) into one enforcer pair per area: `keyMatch(r.act, p.act)`
can only hold for a line naming the request's area or ``*``, so each enforcer sees the
lines that can match, in file order, and decides exactly as one enforcer over all lines.
Casbin never sees a personal-data value, and its request logger is replaced by one no
logging configuration can switch on.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import casbin

from vault.policy.actions import ANY, Action
from vault.policy.errors import PolicyConfigError
from vault.policy.model_config import AST_LOCK, ModelSpec
from vault.policy.policy_lines import PolicyLine, PolicyLines
from vault.policy.sources import MODEL_FILE, POLICY_FILE

DEFAULT_DENY = "default-deny"
OTHER = "~other"
"""Stands for any tenant or department no policy line names: they all decide alike."""
UNKNOWN_ROLE = "~unknown"
"""Stands for any role no policy line names (it can still meet a `*` deny)."""

# Casbin's enforcer logs every request with its values at INFO/WARNING, and a
# dictConfig naming "casbin" re-enables its loggers. This logger is not registered
# with the logging manager, so no configuration can reach it, and it is disabled.
_SILENT = logging.Logger("vault.policy.casbin-silenced", level=logging.CRITICAL + 1)
_SILENT.disabled = True
_SILENT.propagate = False
_SILENT.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Decision:
    """One access decision.

    `rule` is the policy line that decided (``p, role, ...``), ``default-deny`` when no
    line allowed, or a ``state:``/``consent:``/``opt-out:`` marker when the subject's
    state or consent refused an allowed request. `reason` is a short caller-safe text.
    """

    allowed: bool
    rule: str
    reason: str


class CasbinRequest(NamedTuple):
    """The request values after the role (`sub`), normalized, in the model's order."""

    tenant: str
    action: str
    resource: str
    purpose: str
    clearance: int
    department: str


class CasbinDecider:
    """Casbin enforcers over one validated model and policy, two per action area.

    In each pair the main enforcer (allow-and-deny effect) decides and names a deciding
    deny line; the explainer (first-allow effect, same matcher and lines) names the
    allowing line.
    """

    def __init__(self, model: ModelSpec, lines: PolicyLines) -> None:
        self._pairs: dict[str, tuple[casbin.Enforcer, casbin.Enforcer]] = {}
        for area in _AREAS:
            subset = [line for line in lines.p if _area(line.values[2]) in (area, ANY)]
            self._pairs[area] = (
                _build(model, model.text, subset, lines.g),
                _build(model, model.explain_text, subset, lines.g),
            )
        self._lines = {line.values: line for line in lines.p}

    def evaluate(self, roles: Iterable[str], request: CasbinRequest) -> Decision:
        """Decide for a caller holding `roles` (normalized values; uncached, slow).

        `request.action` must be an `Action` value. Each role is asked separately. Any
        role meeting a deny line denies the whole request (an explicit deny wins over
        another role's allow); otherwise the first role that is allowed allows it;
        otherwise no line allowed: default deny.
        """
        enforcer, explainer = self._pairs[_area(request.action)]
        rest = tuple(request)
        # Casbin parses the matcher per call (see AST_LOCK) and its role manager fills
        # per-domain caches lazily: cache misses are serialized, process-wide.
        with AST_LOCK:
            allowed_by: str | None = None
            for role in sorted(roles):
                allowed, explain = enforcer.enforce_ex(role, *rest)
                if not allowed and explain:
                    line = self._line(explain)
                    return Decision(False, line.text, f"denied by {POLICY_FILE}:{line.line}")
                if allowed and allowed_by is None:
                    allowed_by = role
            if allowed_by is None:
                return Decision(False, DEFAULT_DENY, "no policy line allows this request")
            allowed, explain = explainer.enforce_ex(allowed_by, *rest)
        if not (allowed and explain):  # both enforcers share matcher and lines
            raise RuntimeError("policy explainer disagrees with the enforcer")
        line = self._line(explain)
        return Decision(True, line.text, f"allowed by {POLICY_FILE}:{line.line}")

    def _line(self, values: list[str]) -> PolicyLine:
        return self._lines[tuple(values)]


_AREAS = frozenset(action.value.partition(":")[0] for action in Action)


def _area(action: str) -> str:
    """``subjects:read`` -> ``subjects``; ``*`` stays ``*``."""
    return action.partition(":")[0]


def _at_least(level: object, required: object) -> bool:
    """The matcher's clearance check: the caller's level >= the line's minimum."""
    return (
        isinstance(level, int)
        and isinstance(required, str)
        and required.isdigit()
        and level >= int(required)
    )


def _domain_matches(request_domain: str, link_domain: str) -> bool:
    """A role link in tenant ``*`` holds in every tenant; other links in their own."""
    return link_domain == "*"


def _build(
    spec: ModelSpec, text: str, p_lines: Sequence[PolicyLine], g_lines: Sequence[PolicyLine]
) -> casbin.Enforcer:
    try:
        model = casbin.Enforcer.new_model(text=text)
        _silence(model)
        enforcer = casbin.Enforcer(model)
    except Exception as exc:  # Casbin raises bare exceptions of many kinds
        raise PolicyConfigError(MODEL_FILE, None, f"Casbin refused the model: {exc}") from exc
    enforcer.logger = _SILENT
    for role_manager in enforcer.rm_map.values():
        role_manager.logger = _SILENT
    enforcer.add_function("atLeast", _at_least)
    if not enforcer.add_named_domain_matching_func("g", _domain_matches):
        # Without it, links in tenant * would hold nowhere: fail loudly, not deny quietly.
        raise RuntimeError("Casbin has no role manager for g")
    model.add_policies("p", "p", [list(line.values) for line in p_lines])
    model.add_policies("g", "g", [list(line.values) for line in g_lines])
    enforcer.build_role_links()
    try:
        # Evaluate the matcher once so that an unknown name or function, or a syntax
        # error, stops loading instead of failing the first real request.
        with AST_LOCK:
            enforcer.enforce_ex("~probe", "~probe", "~probe", "~probe", "", 0, "~probe")
    except Exception as exc:  # simpleeval raises many exception types
        raise PolicyConfigError(
            MODEL_FILE, spec.matcher_line, f"the matcher does not evaluate: {exc}"
        ) from exc
    return enforcer


def _silence(model: Any) -> None:
    """Point the model's and its assertions' loggers (model, policy, role links) at
    the silenced logger before the enforcer prints them."""
    model.logger = _SILENT
    for section in model.values():
        for assertion in section.values():
            assertion.logger = _SILENT


# The matcher `policies/vault_model.conf` ships, whitespace-normalized. When the loaded
# model's matcher is exactly this one, `IndexedDecider` decides without Casbin; any
# other (validated) matcher keeps `CasbinDecider`.
SHIPPED_MATCHER = (
    '((p.eft == "allow" && g(r.sub, p.sub, r.dom)) || (p.eft == "deny" && '
    '(p.sub == "*" || p.sub == r.sub))) && (p.dom == "*" || p.dom == r.dom) && '
    'keyMatch(r.act, p.act) && keyMatch(r.res, p.res) && (p.pur == "*" || p.pur == r.pur) '
    '&& atLeast(r.clr, p.clr) && (p.dept == "*" || p.dept == r.dept)'
)


def is_shipped_matcher(matcher: str) -> bool:
    """Whether `matcher` is the shipped one (spacing aside)."""
    return "".join(matcher.split()) == "".join(SHIPPED_MATCHER.split())


MAX_INDEXED = 50_000
"""Bound on the (role, action) candidate lists kept (roles are the policy's own plus
`UNKNOWN_ROLE`, actions the `Action` values: the bound is never reached in practice)."""
_ACTION_VALUES = frozenset(action.value for action in Action)


class _Line(NamedTuple):
    """A p line's values prepared for matching, and the line itself."""

    allow: bool
    sub: str
    dom: str
    res_prefix: str
    res_exact: bool
    pur: str
    clr: int
    dept: str
    line: PolicyLine


_Ranked = tuple[int, _Line]


def _position(ranked: _Ranked) -> int:
    return ranked[0]


def _key_match(value: str, pattern: str) -> bool:
    """Casbin's `keyMatch`: equal, or a prefix of `value` up to the pattern's first ``*``."""
    star = pattern.find("*")
    if star == -1:
        return value == pattern
    return value[:star] == pattern[:star]


class IndexedDecider:
    """The shipped matcher, compiled: policy lines indexed by (role, action).

    Decides exactly as `CasbinDecider` over the same lines (the hypothesis tests in
    `tests/unit/policy/test_properties.py` compare both on generated policies of up to
    1,000 lines), in file order and with the same deciding line, without Casbin's
    per-call matcher parse and per-line interpreted evaluation:

    - for a (role, action), only lines whose action pattern `keyMatch`es the action and
      whose subject can match the role (an allow line naming the role or a role it
      inherits in some tenant, a deny line naming the role or ``*``) are candidates;
      the index is built per (role, action) on first use and kept (both are bounded:
      roles the policy names plus `UNKNOWN_ROLE`, and the `Action` values);
    - each candidate is then checked against the request's tenant (role links of that
      tenant and of ``*``), resource, purpose, clearance and department.
    """

    def __init__(self, lines: PolicyLines) -> None:
        prepared = [(position, _prepare(line)) for position, line in enumerate(lines.p)]
        # action -> (allow lines by role, deny lines by role or *), in file order
        self._by_action: dict[str, tuple[dict[str, list[_Ranked]], dict[str, list[_Ranked]]]] = {}
        for action in _ACTION_VALUES:
            allow: dict[str, list[_Ranked]] = {}
            deny: dict[str, list[_Ranked]] = {}
            for position, line in prepared:
                if _key_match(action, line.line.values[2]):
                    (allow if line.allow else deny).setdefault(line.sub, []).append(
                        (position, line)
                    )
            self._by_action[action] = (allow, deny)
        self._links: dict[str, dict[str, list[str]]] = {}
        for link in lines.g:
            role, parent, domain = link.values
            self._links.setdefault(domain, {}).setdefault(role, []).append(parent)
        self._any_domain: dict[str, list[str]] = {}
        for links in self._links.values():
            for role, parents in links.items():
                self._any_domain.setdefault(role, []).extend(parents)
        self._index: dict[tuple[str, str], tuple[_Line, ...]] = {}
        self._inherits: dict[tuple[str, str], frozenset[str]] = {}

    def evaluate(self, roles: Iterable[str], request: CasbinRequest) -> Decision:
        """Decide for a caller holding `roles`, as `CasbinDecider.evaluate` does."""
        tenant, action, resource, purpose, clearance, department = request
        allowing: _Line | None = None
        for role in sorted(roles):
            inherited: frozenset[str] | None = None
            first_allow: _Line | None = None
            for line in self._candidates(role, action):
                if not (
                    line.dom in (ANY, tenant)
                    and (
                        resource[: len(line.res_prefix)] == line.res_prefix
                        if not line.res_exact
                        else resource == line.res_prefix
                    )
                    and line.pur in (ANY, purpose)
                    and clearance >= line.clr
                    and line.dept in (ANY, department)
                ):
                    continue
                if not line.allow:
                    return Decision(
                        False, line.line.text, f"denied by {POLICY_FILE}:{line.line.line}"
                    )
                if first_allow is None:
                    if inherited is None:
                        inherited = self._inherited(role, tenant)
                    if line.sub in inherited:
                        first_allow = line
            if allowing is None and first_allow is not None:
                allowing = first_allow
        if allowing is None:
            return Decision(False, DEFAULT_DENY, "no policy line allows this request")
        return Decision(True, allowing.line.text, f"allowed by {POLICY_FILE}:{allowing.line.line}")

    def inputs(self, role: str, action: str, tenant: str) -> Hashable:
        """What `evaluate` reads for a caller holding only `role`, asking `action` in
        `tenant`, besides the request's resource, purpose, clearance and department: the
        candidate lines (values, in file order) and the roles `role` inherits there. Two
        deciders with equal inputs decide every such request alike (`policy simulate`
        skips matrix cells whose inputs did not change)."""
        lines = tuple(line.line.values for line in self._candidates(role, action))
        return (lines, self._inherited(role, tenant))

    def _candidates(self, role: str, action: str) -> tuple[_Line, ...]:
        key = (role, action)
        found = self._index.get(key)
        if found is None:
            allow, deny = self._by_action[action]
            ranked: list[_Ranked] = []
            for name in _closure(role, self._any_domain):
                ranked.extend(allow.get(name, ()))
            for name in {ANY, role}:
                ranked.extend(deny.get(name, ()))
            ranked.sort(key=_position)
            found = tuple(line for _, line in ranked)
            if len(self._index) >= MAX_INDEXED:
                self._index.clear()
            self._index[key] = found
        return found

    def _inherited(self, role: str, tenant: str) -> frozenset[str]:
        """`role` and every role it inherits in `tenant` (links of the tenant and of *)."""
        key = (role, tenant)
        found = self._inherits.get(key)
        if found is None:
            merged: dict[str, list[str]] = {}
            for domain in {tenant, ANY}:
                for child, parents in self._links.get(domain, {}).items():
                    merged.setdefault(child, []).extend(parents)
            found = _closure(role, merged)
            self._inherits[key] = found
        return found


def _closure(role: str, parents: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """`role` and every role reachable from it through `parents` (the policy's role
    hierarchy is validated acyclic and at most `MAX_ROLE_DEPTH` deep, within Casbin's
    ten levels)."""
    seen = {role}
    todo = [role]
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return frozenset(seen)


def _prepare(line: PolicyLine) -> _Line:
    sub, dom, _act, res, pur, clr, dept, eft = line.values
    star = res.find("*")
    prefix = res if star == -1 else res[:star]
    return _Line(eft == "allow", sub, dom, prefix, star == -1, pur, int(clr), dept, line)
