"""Loading `policies/views.yaml` into `ViewDefinition`s, validated with line numbers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from vault.policy.errors import PolicyConfigError
from vault.policy.sources import VIEWS_FILE, LocatedDict, is_version_one, load_yaml
from vault.views.masking import GENERALIZERS, MASKS
from vault.views.model import FieldRule, Outcome, ViewDefinition

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PLAIN_OUTCOMES = {
    "clear": Outcome.CLEAR,
    "pseudonymized": Outcome.PSEUDONYMIZED,
    "tokenized": Outcome.TOKENIZED,
    "omitted": Outcome.OMITTED,
}


@dataclass(frozen=True)
class ViewCatalog:
    """The declared views and the default mask per field type."""

    views: Mapping[str, ViewDefinition]
    default_masks: Mapping[str, str]


def parse_views(text: str) -> ViewCatalog:
    """Validate `views.yaml`; any problem is a `PolicyConfigError` naming the line."""
    doc = load_yaml(VIEWS_FILE, text)
    for key in doc:
        if key not in ("version", "default_masks", "views"):
            raise _error(doc.line_of(key), f"unknown key '{key}'")
    if not is_version_one(doc.get("version")):
        raise _error(doc.line_of("version"), "version must be 1")
    masks = _mapping(doc, "default_masks")
    default_masks: dict[str, str] = {}
    for type_name, strategy in masks.items():
        # isinstance first: a YAML mapping or list is unhashable, and `in` would raise.
        if not isinstance(strategy, str) or strategy not in MASKS:
            raise _error(masks.line_of(type_name), f"unknown mask strategy '{strategy}'")
        default_masks[type_name] = strategy
    section = _mapping(doc, "views")
    views = {name: _parse_view(name, section[name], section.line_of(name)) for name in section}
    if not views:
        raise _error(doc.line_of("views"), "no views declared")
    return ViewCatalog(MappingProxyType(views), MappingProxyType(default_masks))


def _parse_view(name: str, body: object, line: int) -> ViewDefinition:
    if not _NAME.match(name):
        raise _error(line, f"invalid view name '{name}'")
    if not isinstance(body, LocatedDict):
        raise _error(line, f"view '{name}' must be a mapping")
    for key in body:
        if key not in ("description", "fields", "requires_justification"):
            raise _error(body.line_of(key), f"view '{name}': unknown key '{key}'")
    description = body.get("description", "")
    if not isinstance(description, str) or not description.strip():
        raise _error(body.line_of("description"), f"view '{name}' needs a description")
    requires = body.get("requires_justification", False)
    if not isinstance(requires, bool):
        raise _error(
            body.line_of("requires_justification"),
            f"view '{name}': requires_justification must be true or false",
        )
    fields = _mapping(body, "fields")
    rules: dict[str, FieldRule] = {}
    for field_name, spec in fields.items():
        field_line = fields.line_of(field_name)
        if not _NAME.match(field_name):
            raise _error(field_line, f"view '{name}': invalid field name '{field_name}'")
        rules[field_name] = _parse_rule(spec, field_line, f"view '{name}' field '{field_name}'")
    return ViewDefinition(name, description.strip(), MappingProxyType(rules), requires)


def _parse_rule(spec: object, line: int, where: str) -> FieldRule:
    if not isinstance(spec, str):
        raise _error(line, f"{where}: expected an outcome such as clear or masked:email")
    kind, _, strategy = spec.partition(":")
    if kind in _PLAIN_OUTCOMES and not strategy:
        return FieldRule(_PLAIN_OUTCOMES[kind])
    if kind == "masked":
        if strategy not in MASKS:
            raise _error(line, f"{where}: unknown mask strategy '{strategy}'")
        return FieldRule(Outcome.MASKED, strategy)
    if kind == "generalized":
        if strategy not in GENERALIZERS:
            raise _error(line, f"{where}: unknown generalization strategy '{strategy}'")
        return FieldRule(Outcome.GENERALIZED, strategy)
    raise _error(line, f"{where}: unknown outcome '{spec}'")


def _mapping(doc: LocatedDict, key: str) -> LocatedDict:
    value = doc.get(key)
    if not isinstance(value, LocatedDict):
        raise _error(doc.line_of(key), f"'{key}' must be a mapping")
    return value


def _error(line: int, detail: str) -> PolicyConfigError:
    return PolicyConfigError(VIEWS_FILE, line, detail)
