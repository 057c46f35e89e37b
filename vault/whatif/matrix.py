"""The static decision matrix: roles x actions x purposes x resources (``*``, every
sensitivity class, every view), decided by two policies, and the cells that differ,
so that changes for combinations no one has exercised yet show too.

A cell says who holding the role gets the access: the lowest clearance that is allowed,
for callers of no named department and for each department a line names.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from vault.errors import FieldViolation, InvalidArgumentError
from vault.policy import SENSITIVITY_CLASSES, Action, PolicyEngine, class_resource, view_resource
from vault.principal import Principal
from vault.whatif.changes import ChangeKind

MATRIX_TENANT = "~matrix"
"""The tenant asked: one no line names, i.e. what lines for every tenant (*) decide."""

MAX_MATRIX_DECISIONS = 4_000_000
"""Decisions one engine may be asked for a matrix (the shipped policy: 76,824). Every
cell is decided for each department and clearance level a line names, so a short
draft naming a few hundred of each would otherwise ask billions and keep a core busy
for days."""

Cell = tuple[tuple[str, int | None], ...]
"""(department, lowest clearance allowed or None) for "" (no named department) first."""


@dataclass(frozen=True)
class MatrixChange:
    """One cell that differs between the two policies."""

    role: str
    action: str
    purpose: str
    resource: str
    before: str
    after: str
    kind: ChangeKind

    @property
    def sensitivity(self) -> str:
        """The class the resource names, ``-`` for none."""
        return self.resource.removeprefix("class:") if self.resource.startswith("class:") else "-"


@dataclass(frozen=True)
class MatrixDiff:
    """How many cells were compared and those that differ."""

    cells: int
    changes: tuple[MatrixChange, ...]


def matrix_decisions(before: PolicyEngine, after: PolicyEngine) -> int:
    """The most decisions `matrix_diff` asks of one engine: cells x departments x levels."""
    purposes = len(set(before.purposes) | set(after.purposes))
    resources = 1 + len(SENSITIVITY_CLASSES) + len(set(before.views) | set(after.views))
    per_role = sum(purposes if a.needs_purpose else 1 for a in Action) * resources
    departments = 1 + len(before.departments | after.departments)
    levels = len({0} | before.clearance_levels | after.clearance_levels)
    return len(before.roles | after.roles) * per_role * departments * levels


def check_matrix_size(before: PolicyEngine, after: PolicyEngine) -> None:
    """INVALID_ARGUMENT when the matrix of the two would ask too many decisions."""
    planned = matrix_decisions(before, after)
    if planned > MAX_MATRIX_DECISIONS:
        raise InvalidArgumentError(
            [
                FieldViolation(
                    "draft_files",
                    f"the decision matrix would ask {planned} decisions (at most "
                    f"{MAX_MATRIX_DECISIONS}): fewer roles, purposes, views, departments "
                    "or clearance levels",
                )
            ]
        )


def matrix_diff(
    before: PolicyEngine, after: PolicyEngine, *, skip_unchanged: bool = True
) -> MatrixDiff:
    """Decide every cell with both engines and keep those that differ.

    A (role, action) row whose decision inputs are equal in both (`PolicyEngine
    .decision_inputs`: the same candidate lines and inherited roles) is decided alike
    in every cell whose purpose and resource both policies declare alike, so those
    cells are counted without being asked (`skip_unchanged=False` asks every cell; the
    property tests compare both ways). INVALID_ARGUMENT when it would ask more than
    `MAX_MATRIX_DECISIONS` of one engine (`check_matrix_size`)."""
    check_matrix_size(before, after)
    roles = sorted(before.roles | after.roles)
    purposes = sorted(set(before.purposes) | set(after.purposes))
    resources = [
        "*",
        *(class_resource(c) for c in SENSITIVITY_CLASSES),
        *(view_resource(v) for v in sorted(set(before.views) | set(after.views))),
    ]
    departments = ("", *sorted(before.departments | after.departments))
    levels = sorted({0} | before.clearance_levels | after.clearance_levels)
    cells = 0
    found: list[MatrixChange] = []
    for role in roles:
        for action in Action:
            inputs = before.decision_inputs(role, action, MATRIX_TENANT)
            same = (
                skip_unchanged
                and inputs is not None
                and inputs == after.decision_inputs(role, action, MATRIX_TENANT)
            )
            for purpose in purposes if action.needs_purpose else [""]:
                for resource in resources:
                    cells += 1
                    if same and _alike(before, after, purpose, resource):
                        continue  # both decide every caller of the cell alike
                    args = (role, action, purpose, resource, departments, levels)
                    was, now = _cell(before, *args), _cell(after, *args)
                    if was != now:
                        found.append(
                            MatrixChange(
                                role,
                                action.value,
                                purpose,
                                resource,
                                describe(was),
                                describe(now),
                                _kind(was, now),
                            )
                        )
    return MatrixDiff(cells, tuple(found))


def _alike(before: PolicyEngine, after: PolicyEngine, purpose: str, resource: str) -> bool:
    """Both declare the purpose and know the resource, or neither does."""
    return (purpose in before.purposes) == (purpose in after.purposes) and (
        before.knows_resource(resource) == after.knows_resource(resource)
    )


def _cell(  # noqa: PLR0917 - one cell's coordinates, passed as `args` above
    engine: PolicyEngine,
    role: str,
    action: Action,
    purpose: str,
    resource: str,
    departments: tuple[str, ...],
    levels: list[int],
) -> Cell:
    cell = []
    for department in departments:
        lowest = None
        for level in levels:
            attributes = {"clearance": str(level)}
            if department:
                attributes["department"] = department
            caller = Principal("", MATRIX_TENANT, frozenset({role}), MappingProxyType(attributes))
            try:
                allowed = engine.decide(
                    caller, action, purpose=purpose or None, resource=resource
                ).allowed
            except InvalidArgumentError:
                break  # a purpose this policy does not declare: denied at every level
            if allowed:
                lowest = level
                break
        cell.append((department, lowest))
    return tuple(cell)


def describe(cell: Cell) -> str:
    """``deny``, ``allow``, ``allow clearance>=2``, plus ``dept marketing: ...`` where a
    department differs from callers of no named department."""
    base = cell[0][1]
    parts = [_level(base)]
    parts.extend(f"dept {dept}: {_level(level)}" for dept, level in cell[1:] if level != base)
    return "; ".join(parts)


def _level(level: int | None) -> str:
    if level is None:
        return "deny"
    return "allow" if level == 0 else f"allow clearance>={level}"


def _kind(was: Cell, now: Cell) -> ChangeKind:
    wider = narrower = False
    for (_, a), (_, b) in zip(was, now, strict=True):
        a_rank = 99 if a is None else a
        b_rank = 99 if b is None else b
        wider |= b_rank < a_rank
        narrower |= b_rank > a_rank
    if wider and not narrower:
        return ChangeKind.DENY_TO_ALLOW if all(a is None for _, a in was) else ChangeKind.WIDENED
    if narrower and not wider:
        return ChangeKind.ALLOW_TO_DENY if all(b is None for _, b in now) else ChangeKind.NARROWED
    return ChangeKind.CHANGED
