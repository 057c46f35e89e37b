"""`policy simulate`: a draft policy against the recorded log and the static matrix,
and the CI gate over the result (`--fail-on`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from vault.errors import FieldViolation, InvalidArgumentError
from vault.policy import PolicyConfigError, PolicyEngine
from vault.policy.sources import POLICY_FILES
from vault.views.model import FieldRef
from vault.whatif.changes import NARROWING, WIDENING, ChangeKind, Side
from vault.whatif.matrix import MatrixDiff, check_matrix_size, matrix_diff
from vault.whatif.replay import Document, Replayer, ReplayReport

MAX_DRAFT_FILE = 256 * 1024
"""Bytes per draft file (the shipped files are a few KiB)."""

GATES: Mapping[str, str] = {
    "widen-restricted": "the draft widens access to restricted fields",
    "widen-confidential": "the draft widens access to confidential fields",
    "widen-any": "the draft widens some access",
    "narrow-any": "the draft narrows some access",
    "any-change": "the draft changes some decision",
}
"""`--fail-on` checks: name -> what a failure says."""


@dataclass(frozen=True)
class Simulation:
    """What a draft would change: over the log (None offline) and in the matrix."""

    base_version: str
    draft_version: str
    replay: ReplayReport | None
    matrix: MatrixDiff
    failed: tuple[str, ...]


def draft_engine(files: Mapping[str, str], base: Mapping[str, str]) -> PolicyEngine:
    """An engine over the draft: the files given, the base's for any not given.

    Raises `InvalidArgumentError` for an unknown or oversized file, or a draft the
    policy loader refuses (naming the file and line, never echoing its content).
    """
    # A name is echoed only when it is one of the known files (never the caller's text).
    violations = [
        FieldViolation(
            f"draft_files[{i}].name", f"not a policy file (one of {', '.join(POLICY_FILES)})"
        )
        for i, name in enumerate(files)
        if name not in POLICY_FILES
    ]
    violations += [
        FieldViolation(f"draft_files[{i}].content", f"larger than {MAX_DRAFT_FILE} bytes")
        for i, (name, text) in enumerate(files.items())
        if name in POLICY_FILES and len(text.encode("utf-8", "surrogatepass")) > MAX_DRAFT_FILE
    ]
    if violations:
        raise InvalidArgumentError(violations)
    try:
        return PolicyEngine.from_texts({**base, **files})
    except PolicyConfigError as exc:
        raise InvalidArgumentError([FieldViolation("draft_files", str(exc))]) from None


def check_gates(fail_on: Sequence[str]) -> None:
    """Refuse an unknown `--fail-on` name."""
    unknown = [name for name in fail_on if name not in GATES]
    if unknown:
        raise InvalidArgumentError(
            [FieldViolation("fail_on", f"unknown check; one of: {', '.join(GATES)}")]
        )


def simulate(
    base: Side,
    draft: Side,
    *,
    entries: Iterable[Document] | None,
    version_side: Callable[[str], Side | None],
    fail_on: Sequence[str] = (),
) -> Simulation:
    """Replay `entries` (skipped when None: offline, matrix only) and diff the matrix."""
    check_gates(fail_on)
    check_matrix_size(base.engine, draft.engine)  # before any replay
    replay = None
    if entries is not None:
        replay = Replayer(draft, version_side).add_all(entries)
    matrix = matrix_diff(base.engine, draft.engine)
    failed = tuple(name for name in fail_on if _fails(name, replay, matrix))
    return Simulation(base.engine.version, draft.engine.version, replay, matrix, failed)


def _fails(name: str, replay: ReplayReport | None, matrix: MatrixDiff) -> bool:
    seen: list[tuple[ChangeKind, str]] = [(c.kind, c.sensitivity) for c in matrix.changes]
    if replay is not None:
        seen += [(g.key.kind, g.key.sensitivity) for g in replay.groups]
    if name == "any-change":
        return bool(seen)
    if name == "narrow-any":
        return any(kind in NARROWING for kind, _ in seen)
    if name == "widen-any":
        return any(kind in WIDENING for kind, _ in seen)
    wanted = name.removeprefix("widen-")
    return any(kind in WIDENING and sensitivity == wanted for kind, sensitivity in seen)


def side(engine: PolicyEngine, fields: Sequence[FieldRef]) -> Side:
    """A policy and the fields its views are planned over."""
    return Side(engine, fields)
