"""`audit explain LEAF`: one past entry decided again as of its moment.

Under the policy version the entry cites (kept by `PolicyVersions`) and the subject's
consent ledger as it stood then (the events up to the consent version the entry
recorded, expiry judged at the entry's time), the production engine names the rule
that decided and the consent event relied on; the policy in force today and the ledger
today then say whether the same question would be decided the same way now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.engine import Engine

import audit
from vault.clock import Clock
from vault.consent import ledger
from vault.consent.models import ConsentEvent
from vault.errors import InvalidArgumentError, NotFoundError
from vault.policy import Decision, PolicyEngine, SubjectContext
from vault.policy.subject import ACTIVE
from vault.storage import subjects as subject_rows
from vault.storage.db import Database
from vault.whatif.changes import Side
from vault.whatif.question import Question, question_of
from vault.whatif.versions import PolicyVersions, descriptors

ALLOWED = "allowed"
WITHHELD = "withheld"
DENIED = "denied"


@dataclass(frozen=True)
class Outcome:
    """A decision at one moment: the policy's, then the subject's rules."""

    policy_version: str
    allowed: bool
    rule: str
    reason: str
    subject_rule: str = ""
    consent_version: str = ""

    @property
    def word(self) -> str:
        """allowed, withheld (the policy allowed, the subject's consent or state did
        not) or denied."""
        if not self.allowed:
            return DENIED
        return WITHHELD if self.subject_rule else ALLOWED


@dataclass(frozen=True)
class Explanation:
    """Why an entry was decided as it was, and what would be decided now."""

    logged: audit.LoggedEntry
    question: Question | None
    then: Outcome | None
    """None when the entry recorded no question or its version was never kept."""
    now: Outcome | None
    consent_event: ConsentEvent | None
    """The ledger event for the entry's purpose (or the opt-out) the decision relied on."""
    agrees: bool
    """Whether `then` matches what the entry recorded (decision and subject rule)."""
    verdict: str
    note: str = ""

    @property
    def same_now(self) -> bool:
        """Whether today's policy and ledger reach the same outcome as then."""
        return self.then is not None and self.now is not None and self.then.word == self.now.word


class Explainer:
    """Explains entries of the caller's tenant."""

    def __init__(
        self,
        log_engine: Engine,
        db: Database,
        versions: PolicyVersions,
        policy: PolicyEngine,
        clock: Clock,
    ) -> None:
        self._log = log_engine
        self._db = db
        self._versions = versions
        self._policy = policy
        self._clock = clock

    def explain(self, leaf_index: int, tenant: str) -> Explanation:
        """The explanation of the entry at `leaf_index`; `NotFoundError` when there is
        none in `tenant`."""
        logged = audit.entry_at(self._log, leaf_index, tenant=tenant)
        if logged is None:
            raise NotFoundError("no audit entry at this index")
        entry = logged.entry
        question = question_of(entry)
        if question is None:
            return Explanation(
                logged, None, None, None, None, agrees=False,
                verdict="not a policy decision recorded with its question",
            )  # fmt: skip
        kept = self._versions.engine(entry.policy_version)
        now_side = Side(self._policy, descriptors(self._versions.fields))
        subject = entry.subject_ids[0] if len(entry.subject_ids) == 1 else ""
        events_then, events_now, state_now = self._ledger(
            subject, entry.consent_version, entry.time
        )
        now = _outcome(now_side, question, _context(events_now, self._clock.now(), state_now))
        if kept is None:
            return Explanation(
                logged, question, None, now, None, agrees=False,
                verdict="policy version not kept by this vault",
            )  # fmt: skip
        then_side = Side(*kept)
        context_then = _context(events_then, entry.time, ACTIVE)
        then = _outcome(then_side, question, context_then)
        relied = _relied_on(then_side.engine, question, events_then, then)
        agrees = _agrees(entry, then)
        note = (
            "" if subject else "subject rules not evaluated: the entry concerns no single subject"
        )
        if agrees and then.allowed and entry.decision == audit.DENY and not then.subject_rule:
            note = f"the policy allowed it; the call was refused by: {entry.reason}"
        return Explanation(logged, question, then, now, relied, agrees, verdict(then, now), note)

    def _ledger(
        self, subject: str, consent_version: str, at: datetime
    ) -> tuple[list[ConsentEvent] | None, list[ConsentEvent] | None, str]:
        if not subject:
            return None, None, ACTIVE
        with self._db.read() as conn:
            every = ledger.events_for(conn, subject)
            row = subject_rows.get(conn, subject)
        if consent_version.isdigit():
            then = [e for e in every if e.id <= int(consent_version)]
        else:
            then = [e for e in every if e.recorded_at <= at]
        return then, every, row.meta.state.value if row is not None else "erased"


def _context(
    events: Sequence[ConsentEvent] | None, at: datetime, state: str
) -> SubjectContext | None:
    if events is None:
        return None
    consent = ledger.derive(list(events), at)
    return SubjectContext(
        state=state,
        consented_purposes=consent.consented,
        opted_out_purposes=consent.opted_out,
        consent_version=consent.version,
    )


def _outcome(side: Side, question: Question, subject: SubjectContext | None) -> Outcome:
    decision: Decision = side.decide(question)
    result = Outcome(side.engine.version, decision.allowed, decision.rule, decision.reason)
    if not decision.allowed or subject is None:
        return result
    try:
        refusal = side.engine.check_subject(question.action, question.purpose or None, subject)
    except InvalidArgumentError:  # a purpose this policy does not declare
        return result
    if refusal is None:
        return replace(result, consent_version=subject.consent_version)
    return replace(result, subject_rule=refusal.rule, consent_version=subject.consent_version)


def _relied_on(
    engine: PolicyEngine,
    question: Question,
    events: Sequence[ConsentEvent] | None,
    then: Outcome,
) -> ConsentEvent | None:
    """The latest event for the purpose, or for the opt-out that refused."""
    if not events or not question.purpose:
        return None
    wanted = {question.purpose}
    if then.subject_rule.startswith("opt-out:"):
        wanted = {then.subject_rule.removeprefix("opt-out:")}
    for event in reversed(events):
        if event.purpose in wanted:
            return event
    return None


def _agrees(entry: audit.AuditEntry, then: Outcome) -> bool:
    """The recorded entry says what `then` says: a policy denial was recorded as a
    denial citing the same line; an allowed call cites the same line; a subject rule
    (consent, opt-out) withheld what the entry records as withheld or denied."""
    recorded_rule = entry.extra.get("subject_rule", "")
    if not then.allowed:
        return entry.decision == audit.DENY and entry.reason == then.rule
    if then.subject_rule:
        return then.subject_rule in (recorded_rule, entry.reason)
    if entry.decision == audit.DENY:
        # Refused after the policy allowed it, for a reason outside the policy and the
        # consent ledger (another tenant's subject, the subject's state, bad input).
        return not entry.reason.startswith(("p, ", "consent:", "opt-out:"))
    return entry.reason.split("; ")[0] == then.rule and not recorded_rule


def verdict(then: Outcome, now: Outcome) -> str:
    """``allowed then, would be withheld now`` and the like."""
    if then.word == now.word:
        return f"{then.word} then, {now.word} now"
    would = {ALLOWED: "would be allowed", WITHHELD: "would be withheld", DENIED: "would be denied"}
    return f"{then.word} then, {would[now.word]} now"
