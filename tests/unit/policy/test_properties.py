"""Properties of the decision procedure over generated policies (hypothesis).

Policies are drawn from a small vocabulary so that generated requests often meet
generated lines; role links only point from a lower to a higher role index, so they
never form a cycle.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.policy.helpers import real_texts, state_for, who
from vault.policy import Action, PolicyEngine
from vault.policy.actions import SENSITIVITY_CLASSES
from vault.policy.decisions import _AREAS, CasbinDecider, IndexedDecider, _build
from vault.policy.model_config import parse_model
from vault.policy.policy_lines import PolicyLines
from vault.policy.sources import MODEL_FILE
from vault.policy.state import EngineState
from vault.principal import Principal

ROLES = ("r0", "r1", "r2", "r3", "r4")
TENANTS = ("acme", "globex")
LINE_ACTIONS = (
    "subjects:read",
    "subjects:find",
    "subjects:*",
    "fields:clear",
    "fields:masked",
    "fields:*",
    "audit:read",
)
LINE_RESOURCES = ("*", "class:*", "class:public", "class:restricted", "view:*", "view:support")
LINE_PURPOSES = ("*", "support", "marketing", "analytics")
LINE_DEPARTMENTS = ("*", "risk", "sales")
REQUEST_ACTIONS = (
    Action.SUBJECT_READ,
    Action.SUBJECT_FIND,
    Action.FIELD_CLEAR,
    Action.FIELD_MASKED,
    Action.AUDIT_READ,
    Action.CONSENT_READ,
)
REQUEST_RESOURCES = ("*", "class:public", "class:restricted", "view:support", "view:marketing")
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _p_line(
    role: st.SearchStrategy[str], tenant: st.SearchStrategy[str], effect: str
) -> st.SearchStrategy[str]:
    actions = LINE_ACTIONS + (("*",) if effect == "deny" else ())
    return st.tuples(
        role,
        tenant,
        st.sampled_from(actions),
        st.sampled_from(LINE_RESOURCES),
        st.sampled_from(LINE_PURPOSES),
        st.integers(0, 3).map(str),
        st.sampled_from(LINE_DEPARTMENTS),
    ).map(lambda values: "p, " + ", ".join((*values, effect)))


@st.composite
def _g_line(draw: st.DrawFn, tenants: Sequence[str]) -> str:
    child = draw(st.integers(0, len(ROLES) - 2))
    parent = draw(st.integers(child + 1, len(ROLES) - 1))
    return f"g, {ROLES[child]}, {ROLES[parent]}, {draw(st.sampled_from(tenants))}"


def allow_lines(tenants: Sequence[str] = (*TENANTS, "*")) -> st.SearchStrategy[str]:
    return _p_line(st.sampled_from(ROLES), st.sampled_from(tenants), "allow")


def deny_lines() -> st.SearchStrategy[str]:
    return _p_line(st.sampled_from((*ROLES, "*")), st.sampled_from((*TENANTS, "*")), "deny")


@st.composite
def policies(draw: st.DrawFn, tenants: Sequence[str] = (*TENANTS, "*")) -> list[str]:
    """Lines over the vocabulary, plus denies mirroring some allows (so that they meet)."""
    line = st.one_of(allow_lines(tenants), allow_lines(tenants), _g_line(tenants))
    if "*" in tenants:
        line = st.one_of(line, deny_lines())
    lines = draw(st.lists(line, max_size=25, unique=True))
    if "*" in tenants:
        for allow in [line for line in lines if line.endswith(", allow")]:
            _, role, rest = allow.removesuffix(", allow").split(", ", 2)
            higher = [r for r in ROLES if r > role]
            if higher and draw(st.booleans()):
                lines.append(f"p, {draw(st.sampled_from(higher))}, {rest}, deny")
    return list(dict.fromkeys(lines))


# Concrete request values each line pattern can match.
_CONCRETE = {
    "subjects:read": [Action.SUBJECT_READ],
    "subjects:find": [Action.SUBJECT_FIND],
    "subjects:*": [Action.SUBJECT_READ, Action.SUBJECT_FIND],
    "fields:clear": [Action.FIELD_CLEAR],
    "fields:masked": [Action.FIELD_MASKED],
    "fields:*": [Action.FIELD_CLEAR, Action.FIELD_MASKED],
    "audit:read": [Action.AUDIT_READ],
    "*": list(REQUEST_RESOURCES),
    "class:*": ["class:public", "class:restricted"],
    "view:*": ["view:support", "view:marketing"],
}


@st.composite
def matching_request(
    draw: st.DrawFn, line: str, *, exact: bool = False
) -> tuple[Principal, Action, str, str]:
    """A request that `line` (a p line) names, by its role (`exact`) or by a role that
    may inherit it (g links point from lower to higher roles)."""
    _, role, tenant, act, res, pur, clr, dept, _ = line.split(", ")
    lower = [role] if exact else [r for r in ROLES if r <= role]
    tenant = draw(st.sampled_from(TENANTS)) if tenant == "*" else tenant
    attributes = {"clearance": str(draw(st.integers(int(clr), 4)))}
    if dept != "*" or draw(st.booleans()):
        attributes["department"] = dept if dept != "*" else draw(st.sampled_from(("risk", "ops")))
    caller = who(draw(st.sampled_from(lower)), tenant=tenant, **attributes)
    action = draw(st.sampled_from(_CONCRETE[act]))
    resource = draw(st.sampled_from(_CONCRETE.get(res, [res])))
    purpose = draw(st.sampled_from(("support", "marketing", "analytics"))) if pur == "*" else pur
    return caller, action, purpose, resource


@st.composite
def scenarios(
    draw: st.DrawFn, tenants: Sequence[str] = (*TENANTS, "*")
) -> tuple[list[str], list[tuple[Principal, Action, str, str]]]:
    """A policy and requests: random ones, and ones its allow lines match."""
    base = draw(policies(tenants))
    asked = draw(st.lists(requests(), max_size=10))
    for line in base:
        if line.startswith("p, ") and line.endswith(", allow"):
            asked.append(draw(matching_request(line, exact=draw(st.booleans()))))
    return base, asked


@st.composite
def new_links(draw: st.DrawFn, base: list[str]) -> str:
    """A role link not in `base`, often from a role with allows to one with denies
    (the link that would narrow access if denies were inherited)."""
    roles_with = {
        effect: {line.split(", ")[1] for line in base if line.endswith(f", {effect}")}
        for effect in ("allow", "deny")
    }
    pairs = [(a, d) for a in roles_with["allow"] for d in roles_with["deny"] if a < d]
    if pairs and draw(st.booleans()):
        child, parent = draw(st.sampled_from(sorted(pairs)))
        return f"g, {child}, {parent}, {draw(st.sampled_from((*TENANTS, '*')))}"
    return draw(_g_line((*TENANTS, "*")))


@st.composite
def requests(
    draw: st.DrawFn, tenants: Sequence[str] = (*TENANTS, "initech")
) -> tuple[Principal, Action, str, str]:
    roles = draw(st.sets(st.sampled_from((*ROLES, "stranger")), min_size=1, max_size=3))
    attributes = {}
    if draw(st.booleans()):
        attributes["clearance"] = draw(st.sampled_from(("0", "1", "2", "3", "x")))
    if draw(st.booleans()):
        attributes["department"] = draw(st.sampled_from(("risk", "sales", "ops")))
    caller = who(*roles, tenant=draw(st.sampled_from(tenants)), **attributes)
    action = draw(st.sampled_from(REQUEST_ACTIONS))
    purpose = draw(st.sampled_from(("support", "marketing", "analytics")))
    return caller, action, purpose, draw(st.sampled_from(REQUEST_RESOURCES))


def _allowed(state: EngineState, request: tuple[Principal, Action, str, str]) -> bool:
    caller, action, purpose, resource = request
    return state.decide(caller, action, purpose, resource).allowed


def _state(lines: Sequence[str]) -> EngineState:
    return _state_of("\n".join(lines) + "\n")


@functools.lru_cache(maxsize=64)
def _state_of(policy: str) -> EngineState:
    return state_for(policy)


@SETTINGS
@given(scenario=scenarios(), extra=deny_lines())
def test_adding_a_deny_line_never_widens_access(
    scenario: tuple[list[str], list[tuple[Principal, Action, str, str]]], extra: str
) -> None:
    base, asked = scenario
    before, after = _state(base), _state([*base, extra] if extra not in base else base)
    for request in asked:
        if _allowed(after, request):
            assert _allowed(before, request), request


@SETTINGS
@given(data=st.data(), scenario=scenarios())
def test_adding_a_role_link_never_narrows_access(
    data: st.DataObject, scenario: tuple[list[str], list[tuple[Principal, Action, str, str]]]
) -> None:
    base, asked = scenario
    extra = data.draw(new_links(base))
    before, after = _state(base), _state([*base, extra] if extra not in base else base)
    for request in asked:
        if _allowed(before, request):
            assert _allowed(after, request), request


@SETTINGS
@given(data=st.data(), base=policies(tenants=TENANTS))
def test_every_allow_line_allows_what_it_names(data: st.DataObject, base: list[str]) -> None:
    # without deny lines (tenant-scoped policies have none here), each allow line holds
    state = _state(base)
    for line in base:
        if line.startswith("p, "):
            request = data.draw(matching_request(line, exact=True))
            decision = state.decide(*request)
            assert decision.allowed, (line, request)
            assert decision.rule.endswith(", allow")


@SETTINGS
@given(asked=st.lists(requests(), min_size=1, max_size=25))
def test_an_empty_policy_denies_everything(asked: list[tuple[Principal, Action, str, str]]) -> None:
    empty = _state(["# nothing allowed"])
    for request in asked:
        decision = empty.decide(*request)
        assert (decision.allowed, decision.rule) == (False, "default-deny")


@SETTINGS
@given(
    base=policies(tenants=TENANTS),
    asked=st.lists(requests(tenants=("initech",)), min_size=1, max_size=25),
)
def test_a_tenant_no_line_names_gets_nothing_from_tenant_scoped_lines(
    base: list[str], asked: list[tuple[Principal, Action, str, str]]
) -> None:
    state = _state(base)
    for request in asked:
        assert not _allowed(state, request), request


@SETTINGS
@given(asked=st.lists(requests(), min_size=1, max_size=25))
def test_roles_no_line_names_get_nothing(
    engine: PolicyEngine, asked: list[tuple[Principal, Action, str, str]]
) -> None:
    for caller, action, purpose, resource in asked:
        strangers = who("stranger", "visitor", tenant=caller.tenant, **caller.attributes)
        assert not engine.decide(strangers, action, purpose=purpose, resource=resource).allowed


@pytest.mark.parametrize(
    ("role", "action", "resource", "purpose"),
    [
        # dpo holds rights:* and subjects:erase on resource *; unknown names still deny
        ("dpo", "rights:forget", "*", None),
        ("dpo", "subjects:steal", "*", None),
        ("dpo", Action.SUBJECT_ERASE, "row:42", None),
        ("dpo", Action.SUBJECT_ERASE, "class:secret", None),
        ("dpo", Action.SUBJECT_READ, "view:nope", "legal"),
        ("dpo", Action.SUBJECT_READ, "view:*", "legal"),
        ("dpo", Action.FIELD_CLEAR, "class:*", "legal"),
    ],
)
def test_unknown_actions_and_resources_are_denied(
    engine: PolicyEngine, role: str, action: str, resource: str, purpose: str | None
) -> None:
    decision = engine.decide(who(role), action, purpose=purpose, resource=resource)  # type: ignore[arg-type]
    assert (decision.allowed, decision.rule) == (False, "default-deny")


def test_a_caller_without_tenant_or_roles_is_denied(engine: PolicyEngine) -> None:
    assert not engine.decide(who("dpo", tenant=""), Action.AUDIT_READ).allowed
    assert not engine.decide(who(), Action.AUDIT_READ).allowed


def test_tenant_scoped_links_and_lines_hold_in_their_tenant_only() -> None:
    state = _state(
        [
            "p, r1, acme, audit:read, *, *, 0, *, allow",
            "p, r2, *, consent:read, *, *, 0, *, allow",
            "g, r0, r1, globex",
            "g, r0, r2, acme",
        ]
    )

    def allowed(tenant: str, action: Action) -> bool:
        return state.decide(who("r0", tenant=tenant), action, None, "*").allowed

    assert not allowed("acme", Action.AUDIT_READ)  # r0 -> r1 holds in globex only
    assert not allowed("globex", Action.AUDIT_READ)  # r1's line holds in acme only
    assert allowed("acme", Action.CONSENT_READ)
    assert not allowed("globex", Action.CONSENT_READ)
    assert state.decide(who("r1", tenant="acme"), Action.AUDIT_READ, None, "*").allowed


def _with_decider(policy: str, decider: CasbinDecider | IndexedDecider) -> EngineState:
    state = state_for(policy)  # a fresh state: its decider is replaced
    state._decider = decider
    return state


def _one_enforcer(lines: PolicyLines) -> CasbinDecider:
    """Plain Casbin: one enforcer pair over all lines (no index, no split by area)."""
    model = parse_model(real_texts()[MODEL_FILE])
    pair = (
        _build(model, model.text, lines.p, lines.g),
        _build(model, model.explain_text, lines.p, lines.g),
    )
    reference = CasbinDecider.__new__(CasbinDecider)
    reference._pairs = dict.fromkeys(_AREAS, pair)
    reference._lines = {line.values: line for line in lines.p}
    return reference


@SETTINGS
@given(scenario=scenarios())
def test_the_index_and_the_split_by_area_decide_like_one_enforcer(
    scenario: tuple[list[str], list[tuple[Principal, Action, str, str]]],
) -> None:
    base, asked = scenario
    indexed = _state(base)
    assert isinstance(indexed._decider, IndexedDecider)  # the shipped matcher is indexed
    policy = "\n".join(base) + "\n"
    model = parse_model(real_texts()[MODEL_FILE])
    split = _with_decider(policy, CasbinDecider(model, indexed.lines))
    whole = _with_decider(policy, _one_enforcer(indexed.lines))
    for caller, action, purpose, resource in asked:
        expected = whole.decide(caller, action, purpose, resource)
        assert indexed.decide(caller, action, purpose, resource) == expected
        assert split.decide(caller, action, purpose, resource) == expected


# --- a 1,000-line policy: the index against plain Casbin on random requests --------

BIG_ROLES = tuple(f"role_{i}" for i in range(40))
BIG_TENANTS = ("t0", "t1", "t2", "t3", "t4", "t5")
BIG_PURPOSES = ("support", "marketing", "analytics", "fraud", "legal")
BIG_DEPARTMENTS = ("risk", "sales", "ops")
BIG_RESOURCES = (
    "*", "class:*", "view:*",
    *(f"class:{c}" for c in SENSITIVITY_CLASSES),
    *(f"view:{v}" for v in ("support", "marketing", "analytics", "fraud", "full")),
)  # fmt: skip


@functools.lru_cache(maxsize=4)
def _big_policy(seed: int) -> str:
    """1,000 distinct valid lines: allows and denies over every action pattern, deny
    lines for * and for roles, and role links (tenant-scoped and in *, lower to higher
    index within groups of five roles)."""
    rng = random.Random(seed)
    areas = sorted({action.value.partition(":")[0] for action in Action})
    patterns = [action.value for action in Action] + [f"{area}:*" for area in areas]
    lines: dict[str, None] = {}
    while len(lines) < 1_000:
        kind = rng.random()
        if kind < 0.08:
            group, child = 5 * rng.randrange(len(BIG_ROLES) // 5), rng.randrange(4)
            child, parent = group + child, group + rng.randrange(child + 1, 5)
            tenant = rng.choice((*BIG_TENANTS, "*"))
            line = f"g, {BIG_ROLES[child]}, {BIG_ROLES[parent]}, {tenant}"
        else:
            deny = kind > 0.85
            role = "*" if deny and rng.random() < 0.2 else rng.choice(BIG_ROLES)
            action = rng.choice(patterns + (["*"] if deny else []))
            line = ", ".join((
                "p", role, rng.choice((*BIG_TENANTS, "*", "*")), action,
                rng.choice(BIG_RESOURCES), rng.choice((*BIG_PURPOSES, "*", "*")),
                str(rng.randrange(4)), rng.choice((*BIG_DEPARTMENTS, "*", "*", "*")),
                "deny" if deny else "allow",
            ))  # fmt: skip
        lines[line] = None
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=4)
def _big_states(seed: int) -> tuple[EngineState, EngineState]:
    policy = _big_policy(seed)
    indexed = state_for(policy)
    return indexed, _with_decider(policy, _one_enforcer(indexed.lines))


def _concrete(pattern: str, values: Sequence[str]) -> list[str]:
    return [value for value in values if value.startswith(pattern.partition("*")[0])]


@st.composite
def big_requests(draw: st.DrawFn, seed: int) -> tuple[Principal, Action, str, str]:
    """A random request, or (half the time) one shaped after a random line of the
    policy, so that allow and deny lines are met as well as the default deny."""
    resources = [r for r in BIG_RESOURCES if not r.endswith("*")]
    actions = [action.value for action in Action]
    roles = set(draw(st.sets(st.sampled_from((*BIG_ROLES, "stranger")), max_size=2)))
    tenant = draw(st.sampled_from((*BIG_TENANTS, "other")))
    action = draw(st.sampled_from(actions))
    resource = draw(st.sampled_from(resources))
    purpose = draw(st.sampled_from(BIG_PURPOSES))
    attributes = {}
    if draw(st.booleans()):
        attributes["clearance"] = draw(st.sampled_from(("0", "1", "2", "3", "9", "x")))
    if draw(st.booleans()):
        attributes["department"] = draw(st.sampled_from((*BIG_DEPARTMENTS, "hr")))
    lines = [line for line in _big_policy(seed).splitlines() if line.startswith("p, ")]
    if draw(st.booleans()):
        _, sub, dom, act, res, pur, clr, dept, _ = draw(st.sampled_from(lines)).split(", ")
        if sub != "*":
            group = BIG_ROLES.index(sub) // 5 * 5
            roles.add(draw(st.sampled_from(BIG_ROLES[group : BIG_ROLES.index(sub) + 1])))
        tenant = tenant if dom == "*" else dom
        action = draw(st.sampled_from(_concrete(act, actions)))
        resource = draw(st.sampled_from(_concrete(res, resources)))
        purpose = purpose if pur == "*" else pur
        attributes["clearance"] = str(draw(st.integers(int(clr), 3)))
        if dept != "*":
            attributes["department"] = dept
    caller = who(*(roles or {"stranger"}), tenant=tenant, **attributes)
    return caller, Action(action), purpose, resource


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2), data=st.data())
def test_the_index_decides_like_plain_casbin_over_1000_lines(
    seed: int, data: st.DataObject
) -> None:
    indexed, casbin_state = _big_states(seed)
    asked = data.draw(st.lists(big_requests(seed), min_size=1, max_size=4))
    assert len(indexed.lines.p) + len(indexed.lines.g) == 1_000
    assert isinstance(indexed._decider, IndexedDecider)
    for caller, action, purpose, resource in asked:
        assert indexed.decide(caller, action, purpose, resource) == casbin_state.decide(
            caller, action, purpose, resource
        )
