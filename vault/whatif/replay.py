"""Replay recorded decisions against a draft: each entry's question is asked again of
the policy version that decided it (kept by `PolicyVersions`) and of the draft, and the
differences are grouped. Identical questions are decided once (the log repeats the same
few thousand questions; 100,000 entries replay in a few seconds, see
benchmarks/policy_simulate.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vault.whatif.changes import Change, GroupKey, Side, changes
from vault.whatif.question import Question, question_in

EXAMPLES = 5
"""Example entries kept per group (leaf indexes and subject ids, never values)."""
EXAMPLE_SUBJECTS = 3


@dataclass(frozen=True)
class Example:
    """One entry of a group: its leaf index (-1 before integration) and subjects."""

    leaf_index: int
    subject_ids: tuple[str, ...]


@dataclass
class ChangeGroup:
    """Entries whose decision or field disclosure changes the same way."""

    key: GroupKey
    count: int = 0
    causes: set[str] = field(default_factory=set)
    resources: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    examples: list[Example] = field(default_factory=list)


@dataclass
class ReplayReport:
    """Counts over the window and the groups of changes, largest first."""

    scanned: int = 0
    replayed: int = 0
    without_question: int = 0
    """Entries that recorded no policy question (not a policy decision, or older)."""
    unknown_version: int = 0
    """Entries whose policy version this vault never kept."""
    changed: int = 0
    distinct_questions: int = 0
    groups: list[ChangeGroup] = field(default_factory=list)


VersionLookup = Callable[[str], Side | None]
Document = tuple[int | None, Mapping[str, Any]]
"""An entry's leaf index (None before integration) and its JSON document."""


class Replayer:
    """Accumulates a `ReplayReport` entry by entry."""

    def __init__(self, draft: Side, version_side: VersionLookup, examples: int = EXAMPLES) -> None:
        self._draft = draft
        self._version_side = version_side
        self._sides: dict[str, Side | None] = {}
        self._cache: dict[tuple[str, Question], tuple[Change, ...]] = {}
        self._groups: dict[GroupKey, ChangeGroup] = {}
        self._examples = examples
        self.report = ReplayReport()

    def add_all(self, entries: Iterable[Document]) -> ReplayReport:
        """Replay every (leaf index, entry document) (`audit.iter_documents`); the report."""
        for leaf_index, document in entries:
            self.add(leaf_index, document)
        return self.finish()

    def add(self, leaf_index: int | None, document: Mapping[str, Any]) -> None:
        """Replay one entry, given as its JSON document."""
        report = self.report
        report.scanned += 1
        question = question_in(document)
        if question is None:
            report.without_question += 1
            return
        version = str(document.get("policy_version", ""))
        key = (version, question)
        found = self._cache.get(key)
        if found is None:
            side = self._side(version)
            if side is None:
                report.unknown_version += 1
                return
            found = changes(question, side, self._draft)
            self._cache[key] = found
        report.replayed += 1
        if not found:
            return
        report.changed += 1
        example = Example(
            -1 if leaf_index is None else leaf_index,
            tuple(document.get("subject_ids", ())[:EXAMPLE_SUBJECTS]),
        )
        for change in found:
            group = self._groups.get(change.key)
            if group is None:
                group = self._groups[change.key] = ChangeGroup(change.key)
            group.count += 1
            group.causes.update(change.causes)
            group.resources.add(change.resource)
            group.fields.update(change.fields)
            if len(group.examples) < self._examples:
                group.examples.append(example)

    def finish(self) -> ReplayReport:
        """The report, groups largest first."""
        self.report.distinct_questions = len(self._cache)
        self.report.groups = sorted(
            self._groups.values(),
            key=lambda g: (-g.count, g.key.kind, g.key.roles, g.key.action, g.key.purpose),
        )
        return self.report

    def _side(self, version: str) -> Side | None:
        if version not in self._sides:
            self._sides[version] = self._version_side(version)
        return self._sides[version]
