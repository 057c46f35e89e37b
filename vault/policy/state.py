"""One loaded, validated policy and the caches derived from it.

An `EngineState` is never changed after it is built, except for its caches, which
only ever hold answers computed from this very state. A reload builds a new state and
swaps one reference, so invalidation is free and a request never mixes two policies.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from vault.errors import FieldViolation, InvalidArgumentError, PermissionDeniedError
from vault.policy.actions import ANY, CLASS_PREFIX, SENSITIVITY_CLASSES, VIEW_PREFIX, Action
from vault.policy.decisions import (
    DEFAULT_DENY,
    OTHER,
    UNKNOWN_ROLE,
    CasbinDecider,
    CasbinRequest,
    Decision,
    IndexedDecider,
    is_shipped_matcher,
)
from vault.policy.model_config import parse_model
from vault.policy.policy_lines import MAX_CLEARANCE, PolicyLines, parse_policy
from vault.policy.purposes import Purpose, Purposes, parse_purposes
from vault.policy.sources import MODEL_FILE, POLICY_FILE, PURPOSES_FILE, VIEWS_FILE
from vault.policy.views_config import ViewCatalog, parse_views
from vault.principal import Principal
from vault.views.model import FieldPlan, FieldRef, FieldRule, Outcome, ViewPlan, WithheldReason

CLEARANCE_ATTRIBUTE = "clearance"
DEPARTMENT_ATTRIBUTE = "department"
# Caches are bounded: a miss costs one Casbin evaluation, memory must not grow without
# limit with tenants or attribute combinations. Cleared whole when full (rare; simple).
MAX_DECISIONS = 100_000
MAX_PLANS = 20_000
MAX_SIGNATURES = 64
# A reload decides up to this many of the old state's questions before the swap, so the
# requests right after it do not queue for a miss (microseconds with the shipped
# matcher, 0.1-2 ms through Casbin with any other).
WARM_DECISIONS = 1_000
_ACTIONS = frozenset(action.value for action in Action)
_RESOURCES = frozenset(
    {ANY} | {CLASS_PREFIX + name for name in SENSITIVITY_CLASSES}
)  # view resources are added per state


_DecisionKey = tuple[frozenset[str], str, str, str, str | None, str | None, str | None]
"""roles, tenant, action, resource, purpose, clearance, department: all a decision reads."""


@dataclass(frozen=True)
class _CachedPlan:
    plan: ViewPlan
    purpose: Purpose


class EngineState:
    """Purposes, views, model and policy of one version, with its decision caches."""

    def __init__(self, texts: Mapping[str, str], version: str) -> None:
        self.version = version
        self.texts: Mapping[str, str] = MappingProxyType(dict(texts))
        """The four files as read (what `vault.storage.policy_versions` keeps)."""
        self.purposes: Purposes = parse_purposes(texts[PURPOSES_FILE])
        self.views: ViewCatalog = parse_views(texts[VIEWS_FILE])
        model = parse_model(texts[MODEL_FILE])
        self.lines: PolicyLines = parse_policy(
            texts[POLICY_FILE], purposes=self.purposes, views=self.views.views
        )
        # The shipped matcher is decided by an index over the lines (microseconds per
        # cache miss); any other validated matcher by Casbin itself (milliseconds).
        self._decider: CasbinDecider | IndexedDecider = (
            IndexedDecider(self.lines)
            if is_shipped_matcher(model.matcher)
            else CasbinDecider(model, self.lines)
        )
        self._resources = _RESOURCES | {VIEW_PREFIX + name for name in self.views.views}
        self._decisions: dict[_DecisionKey, Decision] = {}
        self._plans: dict[Hashable, _CachedPlan] = {}
        self._signatures: dict[int, tuple[Sequence[FieldRef], Hashable]] = {}

    def decide(
        self, principal: Principal, action: str, purpose: str | None, resource: str
    ) -> Decision:
        """The policy's answer for the caller (cached; subject rules not applied)."""
        attributes = principal.attributes
        key: _DecisionKey = (
            principal.roles,
            principal.tenant,
            action,
            resource,
            purpose,
            attributes.get(CLEARANCE_ATTRIBUTE),
            attributes.get(DEPARTMENT_ATTRIBUTE),
        )
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide_uncached(principal, action, purpose, resource)
            if len(self._decisions) >= MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def warm(self, previous: EngineState, limit: int = WARM_DECISIONS) -> int:
        """Decide here what `previous` was asked (up to `limit` questions); the count.

        A reload calls this on the new state before swapping it in: requests keep
        using the old state meanwhile, and find a warm cache after the swap.
        """
        count = 0
        for key in list(previous._decisions)[:limit]:
            roles, tenant, action, resource, purpose, clearance, department = key
            attributes = {CLEARANCE_ATTRIBUTE: clearance, DEPARTMENT_ATTRIBUTE: department}
            caller = Principal(
                "", tenant, roles, {k: v for k, v in attributes.items() if v is not None}
            )
            try:
                self.decide(caller, action, purpose, resource)
            except InvalidArgumentError:
                continue  # a purpose the new policy no longer declares
            count += 1
        return count

    def inputs(self, role: str, action: str, tenant: str) -> Hashable | None:
        """What a decision for a caller holding only `role` reads of the policy lines
        (see `IndexedDecider.inputs`), after the same normalization as `decide`; None
        for a matcher other than the shipped one (Casbin reads everything)."""
        if not isinstance(self._decider, IndexedDecider):
            return None
        lines = self.lines
        return self._decider.inputs(
            role if role in lines.roles else UNKNOWN_ROLE,
            action,
            tenant if tenant in lines.tenants else OTHER,
        )

    def knows_resource(self, resource: str) -> bool:
        """Whether `resource` is one this policy decides on (others are denied)."""
        return resource in self._resources

    def purpose(self, name: str | None, action: str) -> Purpose | None:
        """The declared purpose, None when none is given; refuses bad input."""
        if name is None:
            if action in _ACTIONS and Action(action).needs_purpose:
                raise InvalidArgumentError([FieldViolation("purpose", "must name a purpose")])
            return None
        return self.purposes.get(name)

    def _decide_uncached(
        self, principal: Principal, action: str, purpose: str | None, resource: str
    ) -> Decision:
        self.purpose(purpose, action)  # bad input raises; it is never cached
        if action not in _ACTIONS:
            return Decision(False, DEFAULT_DENY, "unknown action")
        if resource not in self._resources:
            return Decision(False, DEFAULT_DENY, "unknown resource")
        if not principal.tenant:
            return Decision(False, DEFAULT_DENY, "caller has no tenant")
        lines = self.lines
        roles = {role if role in lines.roles else UNKNOWN_ROLE for role in principal.roles}
        tenant = principal.tenant if principal.tenant in lines.tenants else OTHER
        department = principal.attribute(DEPARTMENT_ATTRIBUTE)
        if department not in lines.departments:
            department = OTHER
        request = CasbinRequest(
            tenant,
            action,
            resource,
            purpose or "",
            _clearance(principal.attribute(CLEARANCE_ATTRIBUTE)),
            department,
        )
        return self._decider.evaluate(roles, request)

    def base_plan(
        self,
        principal: Principal,
        view: str,
        purpose: str,
        action: str,
        fields: Sequence[FieldRef],
    ) -> tuple[ViewPlan, Purpose]:
        """The plan of `view` for this caller and purpose, before subject rules (cached).

        Raises `InvalidArgumentError` for an undeclared purpose or view and
        `PermissionDeniedError` when the caller may not use the view for the purpose.
        """
        attributes = principal.attributes
        key = (
            principal.roles,
            principal.tenant,
            attributes.get(CLEARANCE_ATTRIBUTE),
            attributes.get(DEPARTMENT_ATTRIBUTE),
            view,
            purpose,
            action,
            self._fields_signature(fields),
        )
        cached = self._plans.get(key)
        if cached is None:
            cached = self._build_plan(principal, view, purpose, action, fields)
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            self._plans[key] = cached
        return cached.plan, cached.purpose

    def _fields_signature(self, fields: Sequence[FieldRef]) -> Hashable:
        """What a plan depends on in `fields` (name, type, class of each), computed once
        per fields object: renderers pass the same dictionary tuple on every call."""
        found = self._signatures.get(id(fields))
        if found is not None and found[0] is fields:
            return found[1]
        signature = tuple((f.name, f.type, f.sensitivity) for f in fields)
        if isinstance(fields, tuple):  # immutable: safe to remember (held, so id stays)
            if len(self._signatures) >= MAX_SIGNATURES:
                self._signatures.clear()
            self._signatures[id(fields)] = (fields, signature)
        return signature

    def _build_plan(
        self,
        principal: Principal,
        view: str,
        purpose_name: str,
        action: str,
        fields: Sequence[FieldRef],
    ) -> _CachedPlan:
        definition = self.views.views.get(view)
        violations = [] if definition is not None else [FieldViolation("view", "undeclared view")]
        if purpose_name not in self.purposes:
            violations.append(FieldViolation("purpose", "undeclared purpose"))
        if definition is None or violations:
            raise InvalidArgumentError(violations)
        purpose = self.purposes.get(purpose_name)
        decision = self.decide(principal, action, purpose_name, VIEW_PREFIX + view)
        if not decision.allowed:
            raise PermissionDeniedError(decision.reason, decision.rule)
        plans = tuple(
            self._field_plan(principal, purpose_name, f, definition.rule_for(f.name))
            for f in fields
        )
        plan = ViewPlan(view, purpose_name, decision.rule, self.version, plans)
        return _CachedPlan(plan, purpose)

    def _field_plan(
        self, principal: Principal, purpose: str, field: FieldRef, rule: FieldRule
    ) -> FieldPlan:
        """Apply the field class rule (vault_policy.csv header) to the view's rule."""
        if rule.outcome is Outcome.OMITTED:
            return FieldPlan(field.name, Outcome.OMITTED)
        resource = CLASS_PREFIX + field.sensitivity
        clear = self.decide(principal, Action.FIELD_CLEAR, purpose, resource).allowed
        if clear:
            return FieldPlan(field.name, rule.outcome, rule.strategy)
        masked = self.decide(principal, Action.FIELD_MASKED, purpose, resource).allowed
        if masked and rule.outcome is not Outcome.CLEAR:
            return FieldPlan(field.name, rule.outcome, rule.strategy)
        default_mask = self.views.default_masks.get(field.type)
        if masked and default_mask is not None:
            return FieldPlan(field.name, Outcome.MASKED, default_mask)
        return FieldPlan(field.name, Outcome.WITHHELD, "", WithheldReason.POLICY)


def _clearance(raw: str) -> int:
    """The clearance attribute as a level; anything but a small number counts as 0."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 2:
        return min(int(raw), MAX_CLEARANCE)
    return 0
