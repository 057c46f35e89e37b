"""The data dictionary: the fields a subject may have, and how each is checked.

`policies/data_dictionary.yaml` declares each field's type, sensitivity class, whether it
is searchable or required, and what anonymization keeps of it. Writes pass through
`DataDictionary.normalize`, which returns canonical values (emails lower-cased, phones in
E.164, dates ISO-8601) or raises `InvalidArgumentError` carrying every violation found.
Violation descriptions are fixed text: they never quote the value, which is PII.
"""

from __future__ import annotations

import encodings.idna
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import phonenumbers

from vault.errors import FieldViolation, InvalidArgumentError, VaultError
from vault.policy.errors import PolicyConfigError
from vault.policy.sources import LocatedDict, load_yaml
from vault.views.masking import GENERALIZERS


class FieldType(StrEnum):
    """What kind of value a field holds; decides its normalization."""

    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    DATE = "date"
    STRING = "string"
    POSTAL_CODE = "postal_code"
    COUNTRY = "country"
    NATIONAL_ID = "national_id"
    ENUM = "enum"
    FREE_TEXT = "free_text"


class Sensitivity(StrEnum):
    """Sensitivity classes, least to most sensitive (policy grants access per class)."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        """0 for public up to 3 for restricted."""
        return list(Sensitivity).index(self)


@dataclass(frozen=True)
class AnonymizationRule:
    """What anonymization does with a field: ``drop``, ``keep`` or ``generalize``
    with a strategy from `vault.views.masking.GENERALIZERS`."""

    kind: str
    strategy: str = ""


@dataclass(frozen=True)
class FieldSpec:
    """One field of the dictionary (a `vault.views.model.FieldRef`)."""

    name: str
    type: str
    sensitivity: str
    pii: bool
    searchable: bool
    required: bool
    max_length: int
    pattern: re.Pattern[str] | None
    enum_values: tuple[str, ...]
    anonymization: AnonymizationRule
    description: str


class DictionaryError(VaultError):
    """The dictionary file is malformed; the message names the file, the line and the
    problem. The file holds no personal data, so quoting a token from it is safe."""

    def __init__(self, file: str, line: int | None, detail: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {detail}")
        self.file = file
        self.line = line
        self.detail = detail


class DataDictionary:
    """The declared fields, and validation and normalization of values against them."""

    def __init__(
        self, *, version: int, fields: Mapping[str, FieldSpec], default_phone_region: str | None
    ) -> None:
        self.version = version
        self.fields: Mapping[str, FieldSpec] = MappingProxyType(dict(fields))
        self.searchable_fields = frozenset(n for n, s in fields.items() if s.searchable)
        self.default_phone_region = default_phone_region
        self._required = tuple(n for n, s in fields.items() if s.required)

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
        context = _Context(today, self.default_phone_region)
        normalized: dict[str, str] = {}
        violations: list[FieldViolation] = []
        for name, raw in values.items():
            try:
                normalized[name] = _normalize_value(self.fields.get(name), raw, context)
            except _InvalidValueError as exc:
                violations.append(FieldViolation(_violation_path(path, name), exc.description))
        if require_all:
            missing = (n for n in self._required if n not in values)
            violations.extend(FieldViolation(f"{path}.{n}", "required") for n in missing)
        if violations:
            raise InvalidArgumentError(violations)
        return {name: normalized[name] for name in self.fields if name in normalized}

    def normalize_one(self, name: str, value: str, *, today: date, path: str = "field") -> str:
        """One value validated and normalized; a violation is reported at `path`."""
        context = _Context(today, self.default_phone_region)
        try:
            return _normalize_value(self.fields.get(name), value, context)
        except _InvalidValueError as exc:
            raise InvalidArgumentError([FieldViolation(path, exc.description)]) from None

    def generalize(self, name: str, value: str, *, today: date) -> str | None:
        """What anonymization keeps of a normalized value: None when it is dropped."""
        rule = self.field(name).anonymization
        if rule.kind == "drop":
            return None
        if rule.kind == "keep":
            return value
        return GENERALIZERS[rule.strategy](value, today)


# --- Values -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    today: date
    phone_region: str | None


class _InvalidValueError(Exception):
    """One violation of one value; the description is fixed text, never the value."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


_EARLIEST_DATE = date(1900, 1, 1)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EMAIL_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 -]*[A-Za-z0-9])?")
_NAME_PUNCTUATION = frozenset(" -'.")
# Categories no value but free text may hold: controls, format (invisible) characters,
# surrogates, private use and unassigned code points.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# Line breaks and tabs; a carriage return only survives as part of a line break,
# normalized to "\n".
_FREE_TEXT_CONTROLS = frozenset("\n\r\t")

# The 249 officially assigned ISO 3166-1 alpha-2 codes.
ISO_COUNTRY_CODES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - 249 quoted codes would take five times the lines
)


def _violation_path(path: str, name: object) -> str:
    """Where a violation is: ``{path}.{name}``, unless the name is not shaped like a field
    name. A key is schema, not data, but a caller may have put a value in it by mistake,
    and error details must never echo a value."""
    if isinstance(name, str) and _FIELD_NAME.fullmatch(name):
        return f"{path}.{name}"
    return f"{path}.<unknown>"


def _normalize_value(spec: FieldSpec | None, raw: object, context: _Context) -> str:
    if spec is None:
        raise _InvalidValueError("unknown field")
    if not isinstance(raw, str):
        raise _InvalidValueError("must be a string")
    # Cheap bound before any parsing, so a huge input costs nothing; normalization may
    # shrink a value (collapsed spaces), hence the slack.
    if len(raw) > 4 * spec.max_length + 64:
        raise _too_long(spec)
    text = unicodedata.normalize("NFC", raw).strip()
    if not text:
        raise _InvalidValueError("must not be empty")
    _check_characters(text, free_text=spec.type == FieldType.FREE_TEXT)
    value = _NORMALIZERS[spec.type](text, spec, context)
    if len(value) > spec.max_length:
        raise _too_long(spec)
    if spec.pattern is not None and not spec.pattern.fullmatch(value):
        raise _InvalidValueError("does not match the required format")
    return value


def _too_long(spec: FieldSpec) -> _InvalidValueError:
    return _InvalidValueError(f"must be at most {spec.max_length} characters")


def _check_characters(text: str, *, free_text: bool) -> None:
    for char in text:
        category = unicodedata.category(char)
        if free_text:
            if category == "Cs" or (category == "Cc" and char not in _FREE_TEXT_CONTROLS):
                raise _InvalidValueError("must not contain control characters")
        elif category in _HIDDEN_CATEGORIES:
            raise _InvalidValueError("must not contain control or invisible characters")


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _name(text: str, spec: FieldSpec, context: _Context) -> str:
    # The typographic apostrophe (U+2019) becomes the plain one, so an exact-match search
    # for O'Brien finds the customer however the name was typed.
    value = _collapse(text.replace("\u2019", "'"))
    kinds = {c if c in _NAME_PUNCTUATION else unicodedata.category(c)[0] for c in value}
    if not kinds <= _NAME_PUNCTUATION | {"L", "M"}:
        detail = "may contain only letters, spaces, hyphens, apostrophes and periods"
        raise _InvalidValueError(detail)
    if "L" not in kinds:
        raise _InvalidValueError("must contain a letter")
    return value


def _string(text: str, spec: FieldSpec, context: _Context) -> str:
    value = _collapse(text)
    if not value.isprintable():
        raise _InvalidValueError("must contain only printable characters")
    return value


def _free_text(text: str, spec: FieldSpec, context: _Context) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _email(text: str, spec: FieldSpec, context: _Context) -> str:
    value = unicodedata.normalize("NFC", text.lower())
    if value.count("@") != 1:
        raise _InvalidValueError("must contain exactly one @")
    local, _, domain = value.partition("@")
    if not local or len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
        raise _InvalidValueError("has an invalid local part (before the @)")
    _check_domain(domain)
    return value


def _check_domain(domain: str) -> None:
    """A DNS name of two or more labels; internationalized labels are checked in their
    ASCII (punycode) form and stored as written. No DNS lookup."""
    labels = domain.split(".")
    try:
        ascii_labels = [
            label if label.isascii() else encodings.idna.ToASCII(label).decode("ascii")
            for label in labels
        ]
    except UnicodeError:
        ascii_labels = []
    if (
        len(ascii_labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in ascii_labels)
        or ascii_labels[-1].isdigit()
        or len(".".join(ascii_labels)) > 253
    ):
        raise _InvalidValueError("has an invalid domain (after the @)")


def _phone(text: str, spec: FieldSpec, context: _Context) -> str:
    try:
        number = phonenumbers.parse(text, context.phone_region)
    except phonenumbers.NumberParseException:
        raise _InvalidValueError("not a valid phone number") from None
    # E.164 has no extensions: storing the number would silently lose it.
    if number.extension:
        raise _InvalidValueError("must not have an extension")
    if not phonenumbers.is_valid_number(number):
        raise _InvalidValueError("not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _date(text: str, spec: FieldSpec, context: _Context) -> str:
    # date.fromisoformat also takes 20240101 and week dates; only one form is allowed.
    if not _DATE.fullmatch(text):
        raise _InvalidValueError("must be a date in the form YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise _InvalidValueError("not a valid calendar date") from None
    if parsed < _EARLIEST_DATE:
        raise _InvalidValueError("must not be before 1900-01-01")
    if parsed > context.today:
        raise _InvalidValueError("must not be in the future")
    return parsed.isoformat()


def _code(text: str, low: int, high: int) -> str:
    # Checked before upper-casing: "ß".upper() is "SS", which would pass afterwards.
    value = _collapse(text)
    if not (low <= len(value) <= high and _CODE.fullmatch(value)):
        raise _InvalidValueError(f"must be {low} to {high} letters, digits, spaces or hyphens")
    return value.upper()


def _postal_code(text: str, spec: FieldSpec, context: _Context) -> str:
    return _code(text, 2, 12)


def _national_id(text: str, spec: FieldSpec, context: _Context) -> str:
    return _code(text, 4, 32)


def _country(text: str, spec: FieldSpec, context: _Context) -> str:
    value = text.upper() if text.isascii() else ""
    if value not in ISO_COUNTRY_CODES:
        raise _InvalidValueError("must be an ISO 3166-1 alpha-2 country code")
    return value


def _enum(text: str, spec: FieldSpec, context: _Context) -> str:
    value = text.lower()
    if value not in spec.enum_values:
        raise _InvalidValueError("must be one of: " + ", ".join(spec.enum_values))
    return value


_Normalizer = Callable[[str, FieldSpec, _Context], str]
_NORMALIZERS: Mapping[str, _Normalizer] = MappingProxyType(
    {
        FieldType.NAME: _name,
        FieldType.EMAIL: _email,
        FieldType.PHONE: _phone,
        FieldType.DATE: _date,
        FieldType.STRING: _string,
        FieldType.POSTAL_CODE: _postal_code,
        FieldType.COUNTRY: _country,
        FieldType.NATIONAL_ID: _national_id,
        FieldType.ENUM: _enum,
        FieldType.FREE_TEXT: _free_text,
    }
)


# --- Loading ------------------------------------------------------------------------

_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
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
        if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
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
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
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
        if value not in {member.value for member in enum}:
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
