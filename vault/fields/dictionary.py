"""The data dictionary: the fields a subject may have, and how each is checked.

`policies/data_dictionary.yaml` declares each field's type, sensitivity class, whether it
is searchable or required, and what anonymization keeps of it. Writes pass through
`DataDictionary.normalize`, which returns canonical values (emails lower-cased, phones in
E.164, dates ISO-8601) or raises `InvalidArgumentError` carrying every violation found.
Violation descriptions are fixed text: they never quote the value, which is PII.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import phonenumbers

from vault.errors import FieldViolation, InvalidArgumentError
from vault.fields.normalizers import (
    ISO_COUNTRY_CODES,
    Context,
    InvalidValueError,
    comparison_form,
    normalize_value,
    violation_path,
)
from vault.fields.spec import (
    FIELD_NAME,
    AnonymizationRule,
    DictionaryError,
    FieldSpec,
    FieldType,
    Sensitivity,
)
from vault.policy.errors import PolicyConfigError
from vault.policy.sources import LocatedDict, load_yaml
from vault.views.masking import GENERALIZERS

__all__ = [
    "ISO_COUNTRY_CODES",
    "AnonymizationRule",
    "DataDictionary",
    "DictionaryError",
    "FieldSpec",
    "FieldType",
    "Sensitivity",
]


class DataDictionary:
    """The declared fields, and validation and normalization of values against them."""

    def __init__(
        self, *, version: int, fields: Mapping[str, FieldSpec], default_phone_region: str | None
    ) -> None:
        self.version = version
        self.fields: Mapping[str, FieldSpec] = MappingProxyType(dict(fields))
        self.searchable_fields = frozenset(n for n, s in fields.items() if s.searchable)
        # Each searchable field's comparison form (`normalizers.comparison_form`): what
        # its blind index is computed over, for writes, searches and the re-index alike.
        self.index_forms: Mapping[str, Callable[[str], str]] = MappingProxyType(
            {n: comparison_form(s.type) for n, s in fields.items() if s.searchable}
        )
        self.default_phone_region = default_phone_region
        self._required = tuple(n for n, s in fields.items() if s.required)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its constructor arguments (the retention job hands the dictionary
        it loaded to a child process, `vault.retention.preparer`)."""
        arguments = {
            "version": self.version,
            "fields": dict(self.fields),
            "default_phone_region": self.default_phone_region,
        }
        return (_rebuild, (arguments,))

    @classmethod
    def from_file(cls, path: Path) -> DataDictionary:
        """Load and validate a dictionary file; any problem is a `DictionaryError`."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            detail = f"cannot read file ({type(exc).__name__})"
            raise DictionaryError(path.name, None, detail) from exc
        try:
            doc = load_yaml(path.name, text)
        except PolicyConfigError as exc:
            raise DictionaryError(exc.file, exc.line, exc.detail) from exc
        return cls.from_mapping(doc, source=path.name)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<mapping>") -> DataDictionary:
        """Validate an already parsed dictionary; `source` names it in errors."""
        return _Loader(source).dictionary(data)

    def field(self, name: str) -> FieldSpec:
        """The spec of a field; an unknown name is an `InvalidArgumentError`."""
        spec = self.fields.get(name)
        if spec is None:
            raise InvalidArgumentError([FieldViolation("field", "unknown field")])
        return spec

    def normalize(
        self, values: Mapping[str, str], *, require_all: bool, today: date, path: str = "fields"
    ) -> dict[str, str]:
        """Every value validated and normalized, in dictionary order.

        Collects all violations (at ``{path}.{field}``) before raising. With
        `require_all`, each required field that is absent is a violation too.
        """
        context = Context(today, self.default_phone_region)
        normalized: dict[str, str] = {}
        violations: list[FieldViolation] = []
        for name, raw in values.items():
            try:
                normalized[name] = normalize_value(self.fields.get(name), raw, context)
            except InvalidValueError as exc:
                violations.append(FieldViolation(violation_path(path, name), exc.description))
        if require_all:
            missing = (n for n in self._required if n not in values)
            violations.extend(FieldViolation(f"{path}.{n}", "required") for n in missing)
        if violations:
            raise InvalidArgumentError(violations)
        return {name: normalized[name] for name in self.fields if name in normalized}

    def normalize_one(self, name: str, value: str, *, today: date, path: str = "field") -> str:
        """One value validated and normalized; a violation is reported at `path`."""
        context = Context(today, self.default_phone_region)
        try:
            return normalize_value(self.fields.get(name), value, context)
        except InvalidValueError as exc:
            raise InvalidArgumentError([FieldViolation(path, exc.description)]) from None

    def generalize(self, name: str, value: str, *, today: date) -> str | None:
        """What anonymization keeps of a normalized value: None when it is dropped."""
        rule = self.field(name).anonymization
        if rule.kind == "drop":
            return None
        if rule.kind == "keep":
            return value
        return GENERALIZERS[rule.strategy](value, today)


# --- Loading ------------------------------------------------------------------------

_ENUM_VALUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_TOP_KEYS = frozenset({"version", "default_phone_region", "fields"})
_FIELD_KEYS = frozenset(
    {
        "type",
        "sensitivity",
        "pii",
        "searchable",
        "required",
        "max_length",
        "pattern",
        "values",
        "anonymization",
        "description",
    }
)
_MANDATORY_FIELD_KEYS = ("type", "sensitivity", "pii", "anonymization", "description")
_MAX_LENGTH_LIMIT = 100_000
_DEFAULT_MAX_LENGTH: Mapping[str, int] = MappingProxyType(
    {
        FieldType.NAME: 100,
        FieldType.EMAIL: 254,
        FieldType.PHONE: 16,
        FieldType.DATE: 10,
        FieldType.STRING: 200,
        FieldType.POSTAL_CODE: 12,
        FieldType.COUNTRY: 2,
        FieldType.NATIONAL_ID: 32,
        FieldType.ENUM: 32,
        FieldType.FREE_TEXT: 2000,
    }
)
# The types a generalizer can read; any other value it would turn into "****".
_GENERALIZER_TYPES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "decade_band": frozenset({FieldType.DATE}),
        "age_band": frozenset({FieldType.DATE}),
        "postal_prefix": frozenset({FieldType.POSTAL_CODE}),
        "country": frozenset({FieldType.COUNTRY}),
    }
)


_E = TypeVar("_E", bound=StrEnum)


def _line(mapping: Mapping[str, Any], key: str | None = None) -> int | None:
    if not isinstance(mapping, LocatedDict):
        return None
    return mapping.line if key is None else mapping.line_of(key)


@dataclass(frozen=True)
class _Loader:
    """Validates a parsed dictionary; every error names the source and line."""

    source: str

    def error(self, mapping: Mapping[str, Any], key: str | None, detail: str) -> DictionaryError:
        return DictionaryError(self.source, _line(mapping, key), detail)

    def dictionary(self, doc: Mapping[str, Any]) -> DataDictionary:
        if not isinstance(doc, Mapping):
            raise DictionaryError(self.source, 1, "the document must be a mapping")
        self.reject_unknown(doc, _TOP_KEYS, "")
        version = doc.get("version")
        if type(version) is not int or version != 1:
            raise self.error(doc, "version", "version must be 1")
        region = doc.get("default_phone_region")
        # isinstance first: a YAML mapping or list is unhashable, and `in` would raise.
        if region is not None and (
            not isinstance(region, str) or region not in phonenumbers.SUPPORTED_REGIONS
        ):
            raise self.error(doc, "default_phone_region", "unknown phone region")
        section = doc.get("fields")
        if not isinstance(section, Mapping) or not section:
            raise self.error(doc, "fields", "'fields' must be a non-empty mapping")
        fields = {name: self.field(section, name) for name in section}
        return DataDictionary(version=version, fields=fields, default_phone_region=region)

    def reject_unknown(self, body: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
        for key in body:
            if key not in allowed:
                raise self.error(body, key, f"{where}unknown key '{key}'")

    def field(self, section: Mapping[str, Any], name: object) -> FieldSpec:
        if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
            key = name if isinstance(name, str) else None
            raise self.error(section, key, f"invalid field name '{name}'")
        body = section[name]
        where = f"field '{name}': "
        if not isinstance(body, Mapping):
            raise self.error(section, name, f"{where}must be a mapping")
        self.reject_unknown(body, _FIELD_KEYS, where)
        for key in _MANDATORY_FIELD_KEYS:
            if key not in body:
                raise self.error(section, name, f"{where}missing '{key}'")
        field_type = self.choice(body, "type", FieldType, where)
        searchable = self.flag(body, "searchable", where)
        if searchable and field_type == FieldType.FREE_TEXT:
            raise self.error(body, "searchable", f"{where}free text cannot be searchable")
        pii = self.flag(body, "pii", where)
        return FieldSpec(
            name=name,
            type=field_type,
            sensitivity=self.choice(body, "sensitivity", Sensitivity, where),
            pii=pii,
            searchable=searchable,
            required=self.flag(body, "required", where),
            max_length=self.max_length(body, field_type, where),
            pattern=self.pattern(body, where),
            enum_values=self.enum_values(body, field_type, where),
            anonymization=self.anonymization(body, field_type, pii, where),
            description=self.description(body, where),
        )

    def choice(self, body: Mapping[str, Any], key: str, enum: type[_E], where: str) -> _E:
        value = body[key]
        if not isinstance(value, str) or value not in {member.value for member in enum}:
            raise self.error(body, key, f"{where}unknown {key} '{value}'")
        return enum(value)

    def flag(self, body: Mapping[str, Any], key: str, where: str) -> bool:
        value = body.get(key, False)
        if not isinstance(value, bool):
            raise self.error(body, key, f"{where}'{key}' must be true or false")
        return value

    def max_length(self, body: Mapping[str, Any], field_type: str, where: str) -> int:
        value = body.get("max_length", _DEFAULT_MAX_LENGTH[field_type])
        if type(value) is not int or not 0 < value <= _MAX_LENGTH_LIMIT:
            detail = f"'max_length' must be a positive integer up to {_MAX_LENGTH_LIMIT}"
            raise self.error(body, "max_length", where + detail)
        return value

    def pattern(self, body: Mapping[str, Any], where: str) -> re.Pattern[str] | None:
        if "pattern" not in body:
            return None
        try:
            return re.compile(body["pattern"])
        except (re.error, TypeError):
            raise self.error(body, "pattern", f"{where}invalid regular expression") from None

    def enum_values(self, body: Mapping[str, Any], field_type: str, where: str) -> tuple[str, ...]:
        values = body.get("values")
        if field_type != FieldType.ENUM:
            if values is not None:
                raise self.error(body, "values", f"{where}only enum fields have values")
            return ()
        if not isinstance(values, list) or not values:
            raise self.error(body, "values", f"{where}an enum needs a non-empty list of values")
        for value in values:
            if not isinstance(value, str) or not _ENUM_VALUE.fullmatch(value):
                raise self.error(body, "values", f"{where}invalid enum value '{value}'")
        if len(set(values)) != len(values):
            raise self.error(body, "values", f"{where}duplicate enum value")
        return tuple(values)

    def anonymization(
        self, body: Mapping[str, Any], field_type: str, pii: bool, where: str
    ) -> AnonymizationRule:
        spec = body["anonymization"]
        if spec == "keep" and pii:
            detail = "anonymization cannot keep a pii field; drop or generalize it"
            raise self.error(body, "anonymization", where + detail)
        if spec in ("drop", "keep"):
            return AnonymizationRule(spec)
        kind, colon, strategy = spec.partition(":") if isinstance(spec, str) else ("", "", "")
        if kind != "generalize" or not colon:
            detail = "anonymization must be drop, keep or generalize:<strategy>"
            raise self.error(body, "anonymization", where + detail)
        if strategy not in GENERALIZERS:
            detail = f"unknown generalization strategy '{strategy}'"
            raise self.error(body, "anonymization", where + detail)
        if field_type not in _GENERALIZER_TYPES.get(strategy, frozenset({field_type})):
            detail = f"strategy '{strategy}' does not apply to type '{field_type}'"
            raise self.error(body, "anonymization", where + detail)
        return AnonymizationRule("generalize", strategy)

    def description(self, body: Mapping[str, Any], where: str) -> str:
        value = body["description"]
        if not isinstance(value, str) or not value.strip():
            raise self.error(body, "description", f"{where}needs a description")
        return value.strip()


def _rebuild(arguments: dict[str, Any]) -> DataDictionary:
    return DataDictionary(**arguments)
