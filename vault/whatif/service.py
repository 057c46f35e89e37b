"""`WhatIfService`: the authorized, audited door to simulation and explanation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

import audit
from vault.access.guard import authorize
from vault.clock import Clock, to_micros
from vault.context import CallContext
from vault.errors import FieldViolation, InvalidArgumentError, NotFoundError
from vault.policy import Action, PolicyEngine
from vault.storage.db import Database
from vault.storage.policy_versions import StoredVersion
from vault.whatif.changes import Side
from vault.whatif.explain import Explainer, Explanation
from vault.whatif.simulate import Simulation, draft_engine, simulate
from vault.whatif.versions import PolicyVersions, descriptors

DEFAULT_WINDOW = timedelta(days=30)
MAX_VERSIONS = 100


class WhatIfService:
    """Simulates drafts (`policy:simulate`) and explains entries (`audit:read`), each
    call audited with what it looked at (versions, counts, never a draft's text)."""

    def __init__(
        self,
        log_engine: Engine,
        db: Database,
        policy: PolicyEngine,
        versions: PolicyVersions,
        clock: Clock,
    ) -> None:
        self._log = log_engine
        self._policy = policy
        self._versions = versions
        self._clock = clock
        self._explainer = Explainer(log_engine, db, versions, policy, clock)

    def simulate(
        self,
        call: CallContext,
        *,
        draft_files: Mapping[str, str],
        draft_version: str = "",
        since: datetime | None = None,
        fail_on: Sequence[str] = (),
        matrix_only: bool = False,
    ) -> Simulation:
        """What the draft (files over the policy in force, or a kept version) changes."""
        principal = authorize(self._policy, call, Action.POLICY_SIMULATE)
        if draft_version and draft_files:
            raise InvalidArgumentError(
                [FieldViolation("draft_version", "give draft_files or draft_version, not both")]
            )
        base = Side(self._policy, descriptors(self._versions.fields))
        if draft_version:
            kept = self._versions.engine(draft_version)
            if kept is None:
                raise NotFoundError("no kept policy version with this id")
            draft = Side(*kept)
        else:
            draft = Side(draft_engine(draft_files, self._policy.texts), base.fields)
        start = since or self._clock.now() - DEFAULT_WINDOW
        entries = (
            None
            if matrix_only
            else audit.iter_documents(self._log, tenant=principal.tenant, since=start)
        )
        result = simulate(base, draft, entries=entries, version_side=self._side, fail_on=fail_on)
        replay = result.replay
        call.extra = {
            "draft_version": result.draft_version,
            "matrix_changes": str(len(result.matrix.changes)),
            "failed_checks": ",".join(result.failed) or "none",
        }
        if replay is not None:
            call.extra |= {
                "entries_replayed": str(replay.replayed),
                "entries_changed": str(replay.changed),
            }
        return result

    def versions(
        self, call: CallContext, limit: int = 0, page_token: str = ""
    ) -> tuple[list[StoredVersion], str, str]:
        """A page of the kept versions (most recent first), the version in force, and
        the cursor of the next page ("" on the last)."""
        authorize(self._policy, call, Action.POLICY_SIMULATE)
        if limit < 0 or limit > MAX_VERSIONS:
            raise InvalidArgumentError(
                [FieldViolation("page_size", f"between 0 and {MAX_VERSIONS}")]
            )
        after = _version_cursor(page_token)
        size = limit or MAX_VERSIONS
        found = self._versions.listing(size + 1, after)
        page = found[:size]
        call.extra = {"versions": str(len(page))}
        last = page[-1] if len(found) > size else None
        cursor = f"{to_micros(last.last_served)}.{last.version}" if last is not None else ""
        return page, self._policy.version, cursor

    def explain(self, call: CallContext, leaf_index: int) -> Explanation:
        """The entry at `leaf_index` of the caller's tenant, explained as of its moment."""
        principal = authorize(self._policy, call, Action.AUDIT_READ)
        if leaf_index < 0:
            raise InvalidArgumentError([FieldViolation("index", "must not be negative")])
        explanation = self._explainer.explain(leaf_index, principal.tenant)
        call.subject_ids = list(explanation.logged.entry.subject_ids[:100])
        call.extra = {"explained_index": str(leaf_index), "verdict": explanation.verdict}
        return explanation

    def _side(self, version: str) -> Side | None:
        kept = self._versions.engine(version)
        return None if kept is None else Side(*kept)


def _version_cursor(token: str) -> tuple[int, str] | None:
    """The (last served, version) position a page starts after; None for the first."""
    if not token:
        return None
    served, _, version = token.partition(".")
    if not served.isdigit() or not version:
        raise InvalidArgumentError([FieldViolation("page_token", "not a token this call gave")])
    return int(served), version
