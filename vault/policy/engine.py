"""`PolicyEngine`: the one object the rest of the vault asks for access decisions.

The engine holds one immutable `EngineState` (files, Casbin enforcers and the decision
caches of one policy version) behind a single reference. Every call reads that
reference once and decides entirely from it; a reload builds a complete new state and
then swaps the reference. A request therefore never mixes two policies, invalidation is
free (the old caches go with the old state), and a bad file never replaces a good one.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from vault.errors import FieldViolation, InvalidArgumentError, PermissionDeniedError
from vault.policy.actions import Action
from vault.policy.decisions import DEFAULT_DENY, Decision
from vault.policy.errors import PolicyConfigError
from vault.policy.policy_lines import MAX_CLEARANCE
from vault.policy.purposes import Purposes
from vault.policy.sources import POLICY_FILES, content_version, read_text, stat_signature
from vault.policy.state import EngineState
from vault.policy.subject import SubjectContext, consent_refusal, state_refusal
from vault.policy.view_decision import ViewDecision, apply_subject
from vault.policy.watcher import PolicyWatcher
from vault.principal import Principal
from vault.views.model import FieldRef, FieldRule, Outcome, ViewPlan

_log = logging.getLogger(__name__)

# Consent and opt-outs bind processing of personal data for a purpose, i.e. reads.
# Writing consent, erasing or rectifying must work precisely when consent is missing.
_CONSENT_BOUND = frozenset(action for action in Action if action.needs_purpose)


@dataclass(frozen=True)
class JustificationRule:
    """What a caller's justification must be for one purpose (and view)."""

    required: bool
    case_reference: re.Pattern[str] | None = None


Signature = tuple[tuple[int, int], ...]
VersionListener = Callable[[str, Mapping[str, str]], None]
"""Told (version, file texts) of every policy the engine puts in force."""
IN_MEMORY = Path("<in-memory>")
"""The `directory` of an engine built from texts (a draft or a stored version)."""


class PolicyEngine:
    """Casbin RBAC + ABAC over the files in `policies/`, cached and hot-reloadable.

    Thread-safe: decisions may run on any number of threads while one thread reloads.
    """

    def __init__(self, directory: Path, state: EngineState, signature: Signature) -> None:
        self._directory = directory
        self._state = state
        self._signature = signature
        self._reload_lock = threading.Lock()
        self._watch_lock = threading.Lock()
        self._watcher: PolicyWatcher | None = None
        self._listeners: list[VersionListener] = []
        self.last_reload_error: PolicyConfigError | None = None
        """Why the latest reload kept the old policy; None after a good (re)load."""

    @classmethod
    def from_dir(cls, path: Path) -> PolicyEngine:
        """Load and validate the four policy files in `path`.

        Raises `PolicyConfigError` naming the file and line of the first problem.
        """
        signature = stat_signature(path)
        return cls(path, _load(path), signature)

    @classmethod
    def from_texts(cls, texts: Mapping[str, str]) -> PolicyEngine:
        """An engine over the four files' texts (a draft, or a stored past version),
        validated exactly as `from_dir` validates files; it never reloads or watches.

        Raises `PolicyConfigError` naming the file and line of the first problem, or
        the first of `POLICY_FILES` missing from `texts`.
        """
        missing = [name for name in POLICY_FILES if name not in texts]
        if missing:
            raise PolicyConfigError(missing[0], None, "file missing from the policy")
        ordered = {name: texts[name] for name in POLICY_FILES}
        state = EngineState(ordered, content_version(ordered.items()))
        return cls(IN_MEMORY, state, ())

    def on_version(self, listener: VersionListener) -> None:
        """Tell `listener` the policy in force now and every one a reload puts in force
        (on the reloading thread; a failing listener is logged, never un-does a reload)."""
        self._listeners.append(listener)
        self._tell(listener, self._state)

    def _tell(self, listener: VersionListener, state: EngineState) -> None:
        try:
            listener(state.version, state.texts)
        except Exception:  # noqa: BLE001 - a listener's failure must not fail the policy
            _log.exception("policy version listener failed for version %s", state.version)

    # --- what is loaded ------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The folder the policy files are read from."""
        return self._directory

    @property
    def version(self) -> str:
        """Content hash of the loaded files (16 hex digits); audit entries cite it."""
        return self._state.version

    @property
    def texts(self) -> Mapping[str, str]:
        """The files of the policy in force, by name (read-only)."""
        return self._state.texts

    def decision_inputs(self, role: str, action: Action, tenant: str) -> Hashable | None:
        """What this policy's decisions for a caller holding only `role`, asking
        `action` in `tenant`, depend on besides the resource, purpose, clearance and
        department: two engines with equal inputs (and the same purposes and resources
        declared) decide all of them alike. None when that cannot be told (a matcher
        other than the shipped one)."""
        return self._state.inputs(role, action.value, tenant)

    def knows_resource(self, resource: str) -> bool:
        """Whether `resource` (``*``, ``class:<c>``, ``view:<v>``) is one this policy
        decides on; any other is denied."""
        return self._state.knows_resource(resource)

    @property
    def clearance_levels(self) -> frozenset[int]:
        """The minimum clearances the `p` lines name (where decisions can change)."""
        return frozenset(int(line.values[5]) for line in self._state.lines.p)

    @property
    def purposes(self) -> Purposes:
        """The declared purposes of the loaded policy."""
        return self._state.purposes

    @property
    def views(self) -> tuple[str, ...]:
        """Names of the declared views, in file order."""
        return tuple(self._state.views.views)

    @property
    def line_count(self) -> int:
        """How many `p` and `g` lines the policy in force has."""
        lines = self._state.lines
        return len(lines.p) + len(lines.g)

    # --- decisions ---------------------------------------------------------------------

    def decide(
        self,
        principal: Principal,
        action: Action,
        *,
        purpose: str | None = None,
        resource: str = "*",
    ) -> Decision:
        """The policy's answer, allowed or not (for `customer-vault policy check`).

        `resource` is ``*``, ``class:<sensitivity>`` or ``view:<name>``. Raises
        `InvalidArgumentError` (field ``purpose``) for an undeclared purpose, or for a
        missing one when the action reads personal data. Subject rules are not applied.
        """
        return self._state.decide(principal, action, purpose, resource)

    def authorize(
        self,
        principal: Principal,
        action: Action,
        *,
        purpose: str | None = None,
        resource: str = "*",
    ) -> Decision:
        """The allowing decision, or `PermissionDeniedError(reason, rule)`.

        `Decision.rule` is the text of the policy line that allowed the request.
        """
        decision = self._state.decide(principal, action, purpose, resource)
        if not decision.allowed:
            raise PermissionDeniedError(decision.reason, decision.rule)
        return decision

    def decide_deterministic_token(
        self, principal: Principal, purpose: str, resource: str
    ) -> Decision:
        """May `principal` mint a deterministic token of a field of class `resource`?

        Equal values give equal tokens, so such a token is an equality oracle on the
        field: it needs the right to read the field in clear for the purpose
        (fields:clear), or the narrow tokens:deterministic grant on its class. Both
        also need tokens:tokenize (asked separately). A refusal names a deny line when
        one decided, else the default deny.
        """
        clear = self.decide(principal, Action.FIELD_CLEAR, purpose=purpose, resource=resource)
        if clear.allowed:
            return clear
        narrow = self.decide(
            principal, Action.TOKENIZE_DETERMINISTIC, purpose=purpose, resource=resource
        )
        if narrow.allowed or clear.rule == DEFAULT_DENY:
            return narrow
        return clear

    def plan_view(  # noqa: PLR0917 - the positional signature callers were written against
        self,
        principal: Principal,
        view: str,
        purpose: str,
        action: Action,
        fields: Sequence[FieldRef],
        subject: SubjectContext,
    ) -> ViewDecision:
        """What `principal` sees of one subject through `view`, for `purpose`.

        The caller's plan comes from the cache (policy lines and field classes); the
        subject's state and consent then narrow it (see `apply_subject`). Raises
        `InvalidArgumentError` for an undeclared view or purpose (fields ``view`` and
        ``purpose``), `PermissionDeniedError` when the caller may not use the view for
        the purpose with `action` (subjects:read, find or export), and
        `FailedPreconditionError` for an erased or anonymized subject.
        """
        state = self._state
        plan, declared = state.base_plan(principal, view, purpose, action, fields)
        return apply_subject(plan, state.purposes, declared, action, subject)

    def caller_plan(
        self,
        principal: Principal,
        view: str,
        purpose: str,
        action: Action,
        fields: Sequence[FieldRef],
    ) -> ViewPlan:
        """The plan `plan_view` starts from: the policy lines and field classes only,
        before any subject's state or consent (what `policy simulate` compares).
        Raises as `plan_view` does for the view, purpose and caller."""
        return self._state.base_plan(principal, view, purpose, action, fields)[0]

    def view_rule(self, view: str, field: str) -> FieldRule | None:
        """What `view` does with `field` at best (None for an undeclared view)."""
        definition = self._state.views.views.get(view)
        return None if definition is None else definition.rule_for(field)

    @property
    def roles(self) -> frozenset[str]:
        """Every role a policy line or role link names (``*`` aside)."""
        return frozenset(self._state.lines.roles - {"*"})

    @property
    def departments(self) -> frozenset[str]:
        """Every department a policy line names (``*`` aside)."""
        return frozenset(self._state.lines.departments - {"*"})

    def fields_usable_for(
        self, tenant: str, purpose: str, fields: Sequence[FieldRef]
    ) -> tuple[str, ...]:
        """The fields some role of the policy in force may see, in any form, through any
        view, for `purpose` in `tenant` (what a consent receipt may say a purpose uses).

        Every role the policy names is asked with the highest clearance and each
        department it names, for each view and each view action; a field is counted when
        one of those plans shows it (clear, masked, pseudonymized, tokenized or
        generalized), never when every plan withholds or omits it.
        """
        state = self._state
        departments = ("", *sorted(state.lines.departments - {"*"}))
        usable: set[str] = set()
        for role in sorted(state.lines.roles - {"*"}):
            for department in departments:
                attributes = {"clearance": str(MAX_CLEARANCE)}
                if department:
                    attributes["department"] = department
                caller = Principal(
                    "receipt-categories", tenant, frozenset({role}), MappingProxyType(attributes)
                )
                for view in state.views.views:
                    for action in _VIEW_ACTIONS:
                        try:
                            plan, _ = state.base_plan(caller, view, purpose, action, fields)
                        except PermissionDeniedError:
                            continue
                        usable.update(
                            item.field
                            for item in plan.fields
                            if item.outcome not in (Outcome.WITHHELD, Outcome.OMITTED)
                        )
        return tuple(f.name for f in fields if f.name in usable)

    def justification_rule(self, purpose: str, view: str | None = None) -> JustificationRule:
        """Whether a use of personal data for `purpose` (through `view`) must say why.

        Required for a purpose whose legal basis is a legal obligation (it overrides
        consent and opt-outs) and for a full clear-text view; a purpose marked
        case_reference must cite a reference matching purposes.yaml's pattern.
        Raises `InvalidArgumentError` for an undeclared purpose or view.
        """
        state = self._state
        declared = state.purposes.get(purpose)
        needs_view = False
        if view is not None:
            definition = state.views.views.get(view)
            if definition is None:
                raise InvalidArgumentError([FieldViolation("view", "undeclared view")])
            needs_view = definition.needs_justification
        return JustificationRule(
            required=needs_view or declared.needs_justification,
            case_reference=state.purposes.case_reference if declared.case_reference else None,
        )

    def check_subject(
        self, action: Action, purpose: str | None, subject: SubjectContext
    ) -> Decision | None:
        """A refusal of `action` on this subject, or None when the subject allows it.

        For operations outside views (update, erase, reveal, detokenize, rights...):
        the subject's state and legal hold, and, for actions that read personal data
        for a purpose, its consent and opt-outs. Call it after `authorize`. Raises
        `InvalidArgumentError` for an undeclared purpose.
        """
        state = self._state
        declared = state.purposes.get(purpose) if purpose is not None else None
        refusal = state_refusal(subject, action, declared)
        if refusal is None and declared is not None and action in _CONSENT_BOUND:
            refusal = consent_refusal(state.purposes, declared, subject)
        return refusal

    # --- reloading -----------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the files; True when a new, valid policy replaced the old one.

        An invalid new policy keeps the old one in force: the error goes to
        `last_reload_error` and the log (file and line only), and this returns False.
        """
        with self._reload_lock:
            signature = stat_signature(self._directory)
            current = self._state
            try:
                texts = _read(self._directory)
                version = content_version(texts.items())
                if version == current.version:
                    self._signature, self.last_reload_error = signature, None
                    return False
                state = EngineState(texts, version)
                state.warm(current)
            except PolicyConfigError as exc:
                # Remember the signature: the watcher retries only when the files change.
                self._signature, self.last_reload_error = signature, exc
                _log.error(
                    "policy reload refused: %s line %s is invalid; keeping version %s",
                    exc.file,
                    exc.line,
                    current.version,
                )
                return False
            self._state = state
            self._signature, self.last_reload_error = signature, None
        _log.info("policy reloaded: version %s replaces %s", state.version, current.version)
        for listener in tuple(self._listeners):
            self._tell(listener, state)
        return True

    def start_watching(self, interval: float) -> None:
        """Poll the files every `interval` seconds and reload on change (daemon thread).

        Calling it again while watching does nothing.
        """
        with self._watch_lock:
            if self._watcher is not None:
                return
            self._watcher = PolicyWatcher(
                self._directory, self.reload, lambda: self._signature, interval
            )
            self._watcher.start()

    def stop_watching(self) -> None:
        """Stop the watcher thread, if any, and wait for it."""
        with self._watch_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()


def _read(directory: Path) -> dict[str, str]:
    return {name: read_text(directory, name) for name in POLICY_FILES}


def _load(directory: Path) -> EngineState:
    texts = _read(directory)
    return EngineState(texts, content_version(texts.items()))


_VIEW_ACTIONS = (Action.SUBJECT_READ, Action.SUBJECT_FIND, Action.SUBJECT_EXPORT)
