"""Purposes of processing and their legal basis, from `policies/purposes.yaml`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from vault.errors import FieldViolation, InvalidArgumentError
from vault.policy.errors import PolicyConfigError
from vault.policy.sources import PURPOSES_FILE, LocatedDict, is_version_one, load_yaml

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# A notice version is a short label such as 2026-01 or v3.1 (never free text).
_NOTICE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_FLAGS = ("marketing", "sharing")
_PURPOSE_KEYS = frozenset(
    {"legal_basis", "description", "allowed_when_restricted", "case_reference", *_FLAGS}
)
DEFAULT_CASE_REFERENCE = r"\b[A-Z][A-Z0-9]{1,11}-[0-9][0-9A-Za-z-]{0,40}\b"
"""A case reference inside a justification: letters, a dash, a number (DSR-2026-114)."""


class LegalBasis(StrEnum):
    """Why processing is lawful; decides how consent and opt-outs apply."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGITIMATE_INTEREST = "legitimate_interest"
    LEGAL_OBLIGATION = "legal_obligation"


@dataclass(frozen=True)
class Purpose:
    """One declared purpose of processing."""

    name: str
    legal_basis: LegalBasis
    description: str
    marketing: bool = False
    sharing: bool = False
    allowed_when_restricted: bool = False
    case_reference: bool = False

    @property
    def needs_justification(self) -> bool:
        """A legal obligation overrides consent and opt-outs, so its use must say why."""
        return self.legal_basis is LegalBasis.LEGAL_OBLIGATION or self.case_reference


class Purposes:
    """The declared purposes, and the opt-out markers that stop groups of them."""

    def __init__(
        self,
        purposes: Mapping[str, Purpose],
        markers: Mapping[str, str],
        notice_versions: Iterable[str] = (),
        case_reference: str = DEFAULT_CASE_REFERENCE,
    ) -> None:
        self._purposes = MappingProxyType(dict(purposes))
        self.case_reference = re.compile(case_reference)
        """What a justification must contain for a purpose with case_reference: true."""
        # marker -> flag name ("marketing" | "sharing")
        self._markers = MappingProxyType(dict(markers))
        self._notice_versions = frozenset(notice_versions)

    @property
    def notice_versions(self) -> frozenset[str]:
        """The privacy-notice versions a consent change may name (`notice_versions`)."""
        return self._notice_versions

    def get(self, name: str) -> Purpose:
        """The purpose called `name`; an undeclared one is the caller's mistake."""
        purpose = self._purposes.get(name)
        if purpose is None:
            raise InvalidArgumentError([FieldViolation("purpose", "undeclared purpose")])
        return purpose

    def __contains__(self, name: object) -> bool:
        return name in self._purposes

    def __iter__(self) -> Iterator[str]:
        return iter(self._purposes)

    def __len__(self) -> int:
        return len(self._purposes)

    @property
    def markers(self) -> Mapping[str, str]:
        """Opt-out marker -> the purpose flag it covers (``all_sharing`` -> ``sharing``)."""
        return self._markers

    def opt_out_blocks(self, purpose: Purpose, opted_out: frozenset[str]) -> str | None:
        """The opt-out entry that stops `purpose`, or None.

        An opt-out of the purpose itself always counts; a marker counts when the
        purpose carries the flag the marker covers.
        """
        if purpose.name in opted_out:
            return purpose.name
        for marker, flag in self._markers.items():
            if marker in opted_out and getattr(purpose, flag):
                return marker
        return None


def parse_purposes(text: str) -> Purposes:
    """Validate `purposes.yaml`; any problem is a `PolicyConfigError` naming the line."""
    doc = load_yaml(PURPOSES_FILE, text)
    _check_keys(
        doc,
        {"version", "opt_out_markers", "notice_versions", "case_reference_pattern", "purposes"},
    )
    if not is_version_one(doc.get("version")):
        raise _error(doc.line_of("version"), "version must be 1")
    markers = _parse_markers(
        doc.get("opt_out_markers", LocatedDict()), doc.line_of("opt_out_markers")
    )
    section = doc.get("purposes")
    if not isinstance(section, LocatedDict) or not section:
        raise _error(doc.line_of("purposes"), "'purposes' must be a non-empty mapping")
    purposes = {
        name: _parse_purpose(name, section[name], section.line_of(name)) for name in section
    }
    notices = _parse_notice_versions(doc.get("notice_versions"), doc.line_of("notice_versions"))
    pattern = doc.get("case_reference_pattern", DEFAULT_CASE_REFERENCE)
    if not isinstance(pattern, str) or not _compiles(pattern):
        raise _error(
            doc.line_of("case_reference_pattern"),
            "case_reference_pattern must be a regular expression",
        )
    return Purposes(purposes, markers, notices, pattern)


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return bool(pattern)


def _parse_notice_versions(section: object, line: int) -> list[str]:
    if not isinstance(section, list) or not section:
        raise _error(line, "'notice_versions' must be a non-empty list of notice versions")
    for version in section:
        if not isinstance(version, str) or not _NOTICE_VERSION.match(version):
            raise _error(line, "each notice version must be a quoted label such as '2026-01'")
    if len(set(section)) != len(section):
        raise _error(line, "a notice version is listed twice")
    return list(section)


def _parse_markers(section: object, line: int) -> dict[str, str]:
    if not isinstance(section, LocatedDict):
        raise _error(line, "'opt_out_markers' must be a mapping")
    markers = {}
    for marker, flag in section.items():
        if not _NAME.match(marker) or flag not in _FLAGS:
            raise _error(section.line_of(marker), f"marker '{marker}' must map to one of {_FLAGS}")
        markers[marker] = flag
    return markers


def _parse_purpose(name: str, body: object, line: int) -> Purpose:
    if not _NAME.match(name):
        raise _error(line, f"invalid purpose name '{name}'")
    if not isinstance(body, LocatedDict):
        raise _error(line, f"purpose '{name}' must be a mapping")
    _check_keys(body, _PURPOSE_KEYS)
    raw_basis = body.get("legal_basis")
    try:
        basis = LegalBasis(raw_basis if isinstance(raw_basis, str) else "")
    except ValueError:
        bases = ", ".join(LegalBasis)
        raise _error(
            body.line_of("legal_basis"), f"purpose '{name}': legal_basis must be one of {bases}"
        ) from None
    description = body.get("description", "")
    if not isinstance(description, str) or not description.strip():
        raise _error(body.line_of("description"), f"purpose '{name}' needs a description")
    return Purpose(
        name=name,
        legal_basis=basis,
        description=description.strip(),
        marketing=_flag(body, name, "marketing"),
        sharing=_flag(body, name, "sharing"),
        allowed_when_restricted=_flag(body, name, "allowed_when_restricted"),
        case_reference=_flag(body, name, "case_reference"),
    )


def _flag(body: LocatedDict, name: str, key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise _error(body.line_of(key), f"purpose '{name}': {key} must be true or false")
    return value


def _check_keys(mapping: LocatedDict, allowed: frozenset[str] | set[str]) -> None:
    for key in mapping:
        if key not in allowed:
            raise _error(mapping.line_of(key), f"unknown key '{key}'")


def _error(line: int, detail: str) -> PolicyConfigError:
    return PolicyConfigError(PURPOSES_FILE, line, detail)
