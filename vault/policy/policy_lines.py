"""Parsing and validating `policies/vault_policy.csv` line by line.

Casbin accepts any string in any column; a typo there (`subject:read`, `class:restricetd`)
would silently never match. Every column is checked against what the engine knows, so
such a line stops start-up (or a reload) with its line number.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from vault.policy.actions import ANY, CLASS_PREFIX, SENSITIVITY_CLASSES, VIEW_PREFIX, Action
from vault.policy.errors import PolicyConfigError
from vault.policy.sources import POLICY_FILE

ROLE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DEPARTMENT = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
MAX_CLEARANCE = 9
# Casbin's role manager stops following links after 10 levels and then answers "no link".
MAX_ROLE_DEPTH = 9
_ACTION_VALUES = frozenset(action.value for action in Action)
_AREAS = frozenset(action.value.partition(":")[0] for action in Action)
_P_ARITY = 8
_G_ARITY = 3


@dataclass(frozen=True)
class PolicyLine:
    """One policy line: its line number and values without the leading `p`/`g`."""

    ptype: str
    line: int
    values: tuple[str, ...]

    @property
    def text(self) -> str:
        """The canonical text of the line, as decisions and audit entries cite it."""
        return ", ".join((self.ptype, *self.values))


@dataclass(frozen=True)
class PolicyLines:
    """A validated policy: `p` and `g` lines and the names they mention."""

    p: tuple[PolicyLine, ...]
    g: tuple[PolicyLine, ...]
    roles: frozenset[str]
    tenants: frozenset[str]
    departments: frozenset[str]


def parse_policy(text: str, *, purposes: Collection[str], views: Collection[str]) -> PolicyLines:
    """Parse the policy CSV; any bad line is a `PolicyConfigError` naming it."""
    p_lines: list[PolicyLine] = []
    g_lines: list[PolicyLine] = []
    seen: dict[tuple[str, ...], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            values = next(csv.reader([stripped], skipinitialspace=True))
        except csv.Error as exc:  # e.g. a value over the csv module's field size limit
            raise _error(number, f"malformed CSV line ({exc})") from exc
        row = tuple(value.strip() for value in values)
        if row in seen:
            raise _error(number, f"duplicate of line {seen[row]}")
        seen[row] = number
        line = PolicyLine(row[0], number, row[1:])
        if line.ptype == "p":
            _check_p(line, purposes, views)
            p_lines.append(line)
        elif line.ptype == "g":
            _check_g(line)
            g_lines.append(line)
        else:
            raise _error(number, f"unknown line type '{line.ptype}' (expected p or g)")
    _check_hierarchy(g_lines)
    return PolicyLines(
        p=tuple(p_lines),
        g=tuple(g_lines),
        roles=frozenset(_roles(p_lines, g_lines)),
        tenants=frozenset(
            line.values[1 if line.ptype == "p" else 2] for line in (*p_lines, *g_lines)
        )
        - {ANY},
        departments=frozenset(line.values[6] for line in p_lines) - {ANY},
    )


def _check_p(line: PolicyLine, purposes: Collection[str], views: Collection[str]) -> None:
    if len(line.values) != _P_ARITY:
        raise _error(
            line.line,
            f"a p line has {_P_ARITY} values after 'p' "
            "(sub, dom, act, res, pur, clr, dept, eft), found " + str(len(line.values)),
        )
    sub, dom, act, res, pur, clr, dept, eft = line.values
    if eft not in ("allow", "deny"):
        raise _error(line.line, f"effect must be allow or deny, found '{eft}'")
    if not (ROLE.match(sub) or (sub == ANY and eft == "deny")):
        raise _error(line.line, f"invalid role '{sub}' (* is allowed only in deny lines)")
    if not (dom == ANY or TENANT.match(dom)):
        raise _error(line.line, f"invalid tenant '{dom}'")
    _check_action(line.line, act, eft)
    _check_resource(line.line, res, views)
    if not (pur == ANY or pur in purposes):
        raise _error(line.line, f"unknown purpose '{pur}'")
    if not (len(clr) == 1 and clr.isascii() and clr.isdigit()):
        raise _error(line.line, f"clearance must be a level 0-{MAX_CLEARANCE}, found '{clr}'")
    if not (dept == ANY or DEPARTMENT.match(dept)):
        raise _error(line.line, f"invalid department '{dept}'")


def _check_action(number: int, act: str, eft: str) -> None:
    if act in _ACTION_VALUES:
        return
    if act == ANY and eft == "deny":
        return
    area, sep, rest = act.partition(":")
    if sep and rest == ANY and area in _AREAS:
        return
    raise _error(number, f"unknown action '{act}'")


def _check_resource(number: int, res: str, views: Collection[str]) -> None:
    if res in (ANY, CLASS_PREFIX + ANY, VIEW_PREFIX + ANY):
        return
    if res.startswith(CLASS_PREFIX):
        if res[len(CLASS_PREFIX) :] not in SENSITIVITY_CLASSES:
            raise _error(number, f"unknown field class '{res}'")
        return
    if res.startswith(VIEW_PREFIX):
        if res[len(VIEW_PREFIX) :] not in views:
            raise _error(number, f"unknown view '{res}'")
        return
    raise _error(number, f"unknown resource '{res}' (expected *, class:<class> or view:<view>)")


def _check_g(line: PolicyLine) -> None:
    if len(line.values) != _G_ARITY:
        raise _error(
            line.line,
            f"a g line has {_G_ARITY} values after 'g' (role, inherited role, tenant), "
            f"found {len(line.values)}",
        )
    role, parent, dom = line.values
    for name in (role, parent):
        if not ROLE.match(name):
            raise _error(line.line, f"invalid role '{name}'")
    if role == parent:
        raise _error(line.line, f"role '{role}' cannot inherit itself")
    if not (dom == ANY or TENANT.match(dom)):
        raise _error(line.line, f"invalid tenant '{dom}'")


def _check_hierarchy(g_lines: list[PolicyLine]) -> None:
    """Refuse cycles and chains deeper than Casbin follows (both across all tenants)."""
    parents: dict[str, list[tuple[str, int]]] = {}
    for line in g_lines:
        parents.setdefault(line.values[0], []).append((line.values[1], line.line))
    depths: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(role: str, chain: int) -> int:
        if role in depths:
            return depths[role]
        if chain > MAX_ROLE_DEPTH:
            # The role that started this chain is already too deep, and this error is
            # raised: stop here, so a chain of thousands of links cannot exhaust the
            # interpreter's recursion limit. (A cycle this long is refused as too deep.)
            return 0
        visiting.add(role)
        deepest = 0
        for parent, number in parents.get(role, []):
            if parent in visiting:
                raise _error(number, f"role inheritance cycle through '{parent}'")
            deepest = max(deepest, 1 + depth(parent, chain + 1))
        visiting.discard(role)
        depths[role] = deepest
        return deepest

    for role, links in parents.items():
        if depth(role, 0) > MAX_ROLE_DEPTH:
            raise _error(links[0][1], f"role '{role}' inherits more than {MAX_ROLE_DEPTH} levels")


def _roles(p_lines: Iterable[PolicyLine], g_lines: Iterable[PolicyLine]) -> set[str]:
    roles = {line.values[0] for line in p_lines} - {ANY}
    for line in g_lines:
        roles.update(line.values[:2])
    return roles


def _error(line: int, detail: str) -> PolicyConfigError:
    return PolicyConfigError(POLICY_FILE, line, detail)
