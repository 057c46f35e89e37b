"""Who is calling: built by the authentication interceptor from verified credentials only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Principal:
    """An authenticated caller (an internal service or an employee acting through one).

    `tenant` is the only tenant the caller may touch; `roles` feed Casbin's RBAC and
    `attributes` (e.g. ``department``, ``clearance``) its ABAC conditions.
    `subject` is set only for a customer: the one subject this caller may act on (a
    signed claim of its token); every other subject is missing to it.
    """

    id: str
    tenant: str
    roles: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    subject: str | None = None

    def attribute(self, name: str, default: str = "") -> str:
        """An attribute's value, or `default` when the credential did not carry it."""
        return self.attributes.get(name, default)
