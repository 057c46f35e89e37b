"""Retention rules from `policies/retention.yaml`, validated at start-up.

Every problem is a `RetentionRulesError` naming the file and line, so the vault refuses
to start with a message an operator can act on. The file holds no personal data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from vault.policy.errors import PolicyConfigError
from vault.policy.sources import LocatedDict, content_version, is_version_one, load_yaml
from vault.subject import SubjectState

RULES_FILE = "retention.yaml"
ANY_TENANT = "*"
MAX_DAYS = 36_500
# States a rule may move to pending_anonymization; the others belong to the lifecycle.
RULE_STATES = frozenset({SubjectState.ACTIVE, SubjectState.RESTRICTED})

_TENANT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_TOP_KEYS = frozenset({"version", "tenants", "rules"})
_RULE_KEYS = frozenset({"tenant", "anonymize_after_days", "notice_days", "applies_to"})


class RetentionRulesError(PolicyConfigError):
    """`retention.yaml` is malformed or inconsistent (file:line: problem)."""


@dataclass(frozen=True)
class RetentionRule:
    """When subjects of one tenant (or of every tenant without a rule: `*`) are anonymized."""

    tenant: str
    anonymize_after: timedelta
    notice: timedelta
    applies_to: tuple[SubjectState, ...]
    line: int

    @property
    def name(self) -> str:
        """How audit entries and reports name the rule: `retention.yaml:<line>`."""
        return f"{RULES_FILE}:{self.line}"

    def notice_threshold(self, now: datetime) -> datetime:
        """Subjects whose last activity is at or before this get their notice now."""
        return now - (self.anonymize_after - self.notice)

    def deadline(self, last_activity: datetime, noticed_at: datetime) -> datetime:
        """When a subject noticed at `noticed_at` is anonymized: never before the full
        notice period has run, even when the job finds it dormant late."""
        return max(last_activity + self.anonymize_after, noticed_at + self.notice)


class RetentionRules:
    """The validated rules, and which one covers a tenant."""

    def __init__(
        self, tenants: Sequence[str], rules: Sequence[RetentionRule], version: str
    ) -> None:
        self.tenants = tuple(tenants)
        self.rules = tuple(rules)
        self.version = version
        self._by_tenant = {r.tenant: r for r in rules}

    @classmethod
    def from_file(cls, path: Path) -> RetentionRules:
        """Load and validate a rules file; any problem is a `RetentionRulesError`."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            detail = f"cannot read file ({type(exc).__name__})"
            raise RetentionRulesError(path.name, None, detail) from exc
        return cls.parse(text, source=path.name)

    @classmethod
    def parse(cls, text: str, *, source: str = RULES_FILE) -> RetentionRules:
        try:
            doc = load_yaml(source, text)
        except PolicyConfigError as exc:
            raise RetentionRulesError(exc.file, exc.line, exc.detail) from exc
        tenants, rules = _Parser(source).document(doc)
        return cls(tenants, rules, content_version([(source, text)]))

    def rule_for(self, tenant: str) -> RetentionRule | None:
        """The tenant's own rule, else the `*` rule, else None (its subjects are kept)."""
        return self._by_tenant.get(tenant) or self._by_tenant.get(ANY_TENANT)


@dataclass(frozen=True)
class _Parser:
    source: str

    def error(self, line: int | None, detail: str) -> RetentionRulesError:
        return RetentionRulesError(self.source, line, detail)

    def document(self, doc: LocatedDict) -> tuple[list[str], list[RetentionRule]]:
        self.known_keys(doc, _TOP_KEYS, "")
        if not is_version_one(doc.get("version")):
            raise self.error(doc.line_of("version"), "version must be 1")
        tenants = self.tenants(doc.get("tenants"), doc.line_of("tenants"))
        raw_rules = doc.get("rules")
        if not isinstance(raw_rules, list):
            raise self.error(doc.line_of("rules"), "'rules' must be a list")
        rules: list[RetentionRule] = []
        for raw in raw_rules:
            rule = self.rule(raw, tenants, doc.line_of("rules"))
            if any(r.tenant == rule.tenant for r in rules):
                raise self.error(rule.line, f"a second rule for tenant '{rule.tenant}'")
            rules.append(rule)
        return tenants, rules

    def known_keys(self, body: LocatedDict, allowed: frozenset[str], where: str) -> None:
        for key in body:
            if key not in allowed:
                raise self.error(body.line_of(key), f"{where}unknown key '{key}'")

    def tenants(self, value: object, line: int) -> list[str]:
        if not isinstance(value, list) or not value:
            raise self.error(line, "'tenants' must be a non-empty list of tenant names")
        for tenant in value:
            if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
                raise self.error(line, f"invalid tenant name '{tenant}'")
        if len(set(value)) != len(value):
            raise self.error(line, "a tenant is listed twice")
        return list(value)

    def rule(self, raw: object, tenants: list[str], list_line: int) -> RetentionRule:
        if not isinstance(raw, LocatedDict):
            raise self.error(list_line, "each rule must be a mapping")
        self.known_keys(raw, _RULE_KEYS, "rule: ")
        for key in ("tenant", "anonymize_after_days", "notice_days"):
            if key not in raw:
                raise self.error(raw.line, f"rule: missing '{key}'")
        tenant = raw["tenant"]
        if tenant != ANY_TENANT and tenant not in tenants:
            detail = f"rule: unknown tenant '{tenant}' (not under 'tenants', and not '*')"
            raise self.error(raw.line_of("tenant"), detail)
        after = self.days(raw, "anonymize_after_days", low=1)
        notice = self.days(raw, "notice_days", low=0)
        if notice >= after:
            detail = "rule: notice_days must be shorter than anonymize_after_days"
            raise self.error(raw.line_of("notice_days"), detail)
        return RetentionRule(
            tenant=tenant,
            anonymize_after=timedelta(days=after),
            notice=timedelta(days=notice),
            applies_to=self.states(raw),
            line=raw.line,
        )

    def days(self, raw: Mapping[str, Any], key: str, *, low: int) -> int:
        value = raw[key]
        if type(value) is not int or not low <= value <= MAX_DAYS:
            assert isinstance(raw, LocatedDict)
            raise self.error(
                raw.line_of(key),
                f"rule: '{key}' must be a whole number of days, {low} to {MAX_DAYS}",
            )
        return value

    def states(self, raw: LocatedDict) -> tuple[SubjectState, ...]:
        value = raw.get("applies_to", [SubjectState.ACTIVE.value])
        line = raw.line_of("applies_to")
        if not isinstance(value, list) or not value:
            raise self.error(line, "rule: 'applies_to' must be a non-empty list of states")
        states = []
        for name in value:
            if not isinstance(name, str) or name not in {s.value for s in SubjectState}:
                raise self.error(line, f"rule: unknown state '{name}'")
            state = SubjectState(name)
            if state not in RULE_STATES:
                allowed = ", ".join(sorted(RULE_STATES))
                raise self.error(
                    line, f"rule: state '{name}' cannot be retained by a rule ({allowed})"
                )
            states.append(state)
        if len(set(states)) != len(states):
            raise self.error(line, "rule: a state is listed twice")
        return tuple(states)
