"""Validating and normalizing one value by its field type.

Each normalizer returns the canonical form (emails lower-cased, phones in E.164, dates
ISO-8601) or raises `InvalidValueError` with fixed text: never the value, which is PII.
"""

from __future__ import annotations

import encodings.idna
import functools
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

import phonenumbers

from vault.fields.spec import FIELD_NAME, FieldSpec, FieldType


@dataclass(frozen=True)
class Context:
    today: date
    phone_region: str | None


class InvalidValueError(Exception):
    """One violation of one value; the description is fixed text, never the value."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


_EARLIEST_DATE = date(1900, 1, 1)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A phone number as the vault stores it: "+", a country code and at most 15 digits.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
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


def violation_path(path: str, name: object) -> str:
    """Where a violation is: ``{path}.{name}``, unless the name is not shaped like a field
    name. A key is schema, not data, but a caller may have put a value in it by mistake,
    and error details must never echo a value."""
    if isinstance(name, str) and FIELD_NAME.fullmatch(name):
        return f"{path}.{name}"
    return f"{path}.<unknown>"


def normalize_value(spec: FieldSpec | None, raw: object, context: Context) -> str:
    if spec is None:
        raise InvalidValueError("unknown field")
    if not isinstance(raw, str):
        raise InvalidValueError("must be a string")
    # Cheap bound before any parsing, so a huge input costs nothing; normalization may
    # shrink a value (collapsed spaces), hence the slack.
    if len(raw) > 4 * spec.max_length + 64:
        raise _too_long(spec)
    text = unicodedata.normalize("NFC", raw).strip()
    if not text:
        raise InvalidValueError("must not be empty")
    _check_characters(text, free_text=spec.type == FieldType.FREE_TEXT)
    value = _NORMALIZERS[spec.type](text, spec, context)
    if len(value) > spec.max_length:
        raise _too_long(spec)
    if spec.pattern is not None and not spec.pattern.fullmatch(value):
        raise InvalidValueError("does not match the required format")
    return value


def _too_long(spec: FieldSpec) -> InvalidValueError:
    return InvalidValueError(f"must be at most {spec.max_length} characters")


def _check_characters(text: str, *, free_text: bool) -> None:
    # Fast path, in C: a printable string has no character of category C* at all
    # (str.isprintable is False for Cc, Cf, Cs, Co, Cn and separators but the space).
    # Free text may also hold line breaks and tabs. Anything else takes the loop.
    if free_text:
        if text.replace("\n", "").replace("\r", "").replace("\t", "").isprintable():
            return
    elif text.isprintable():
        return
    for char in text:
        category = unicodedata.category(char)
        if free_text:
            if category == "Cs" or (category == "Cc" and char not in _FREE_TEXT_CONTROLS):
                raise InvalidValueError("must not contain control characters")
        elif category in _HIDDEN_CATEGORIES:
            raise InvalidValueError("must not contain control or invisible characters")


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _name(text: str, spec: FieldSpec, context: Context) -> str:
    # The typographic apostrophe (U+2019) becomes the plain one, so an exact-match search
    # for O'Brien finds the customer however the name was typed.
    value = _collapse(text.replace("\u2019", "'"))
    kinds = {c if c in _NAME_PUNCTUATION else unicodedata.category(c)[0] for c in value}
    if not kinds <= _NAME_PUNCTUATION | {"L", "M"}:
        detail = "may contain only letters, spaces, hyphens, apostrophes and periods"
        raise InvalidValueError(detail)
    if "L" not in kinds:
        raise InvalidValueError("must contain a letter")
    return value


def _string(text: str, spec: FieldSpec, context: Context) -> str:
    value = _collapse(text)
    if not value.isprintable():
        raise InvalidValueError("must contain only printable characters")
    return value


def _free_text(text: str, spec: FieldSpec, context: Context) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _email(text: str, spec: FieldSpec, context: Context) -> str:
    value = unicodedata.normalize("NFC", text.lower())
    if value.count("@") != 1:
        raise InvalidValueError("must contain exactly one @")
    local, _, domain = value.partition("@")
    if not local or len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
        raise InvalidValueError("has an invalid local part (before the @)")
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
        raise InvalidValueError("has an invalid domain (after the @)")


def _phone(text: str, spec: FieldSpec, context: Context) -> str:
    if _E164.fullmatch(text):
        number = _e164_number(text)
        if number is not None:
            if not phonenumbers.is_valid_number(number):
                raise InvalidValueError("not a valid phone number")
            return text
    return phone_by_parsing(text, context.phone_region)


def phone_by_parsing(text: str, region: str | None) -> str:
    """`text` parsed as a phone number (`region`: the default when it has no country
    code), validated and formatted in E.164; the general path of `_phone`."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidValueError("not a valid phone number") from None
    # E.164 has no extensions: storing the number would silently lose it.
    if number.extension:
        raise InvalidValueError("must not have an extension")
    if not phonenumbers.is_valid_number(number):
        raise InvalidValueError("not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _e164_number(text: str) -> phonenumbers.PhoneNumber | None:
    """The number `phonenumbers.parse` makes of `text`, already in E.164 form, without
    its general parsing (half a batch-created subject's validation); None where parse
    could make another (a national prefix it might strip, a leading zero, a non-geographic
    code or none at all), which takes the general path. For the rest, parse extracts the
    same country code (the first of one to three digits that is one) and keeps the
    digits after it as the national number; formatting that in E.164 gives `text` back.
    tests/unit/fields/test_phone_fast_path.py checks both paths agree."""
    digits = text[1:]
    for size in (1, 2, 3):
        code = int(digits[:size])
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
        if regions is not None:
            break
    else:
        return None
    national = digits[size:]
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(regions[0], None)
    if metadata is None or not national or national[0] == "0":
        return None
    prefix = metadata.national_prefix_for_parsing
    if prefix and _prefix_pattern(prefix).match(national):
        return None
    return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))


@functools.lru_cache(maxsize=512)
def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(prefix)


def _date(text: str, spec: FieldSpec, context: Context) -> str:
    # date.fromisoformat also takes 20240101 and week dates; only one form is allowed.
    if not _DATE.fullmatch(text):
        raise InvalidValueError("must be a date in the form YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(text)
    except ValueError:
        raise InvalidValueError("not a valid calendar date") from None
    if parsed < _EARLIEST_DATE:
        raise InvalidValueError("must not be before 1900-01-01")
    if parsed > context.today:
        raise InvalidValueError("must not be in the future")
    return parsed.isoformat()


def _code(text: str, low: int, high: int) -> str:
    # Checked before upper-casing: "ß".upper() is "SS", which would pass afterwards.
    value = _collapse(text)
    if not (low <= len(value) <= high and _CODE.fullmatch(value)):
        raise InvalidValueError(f"must be {low} to {high} letters, digits, spaces or hyphens")
    return value.upper()


def _postal_code(text: str, spec: FieldSpec, context: Context) -> str:
    return _code(text, 2, 12)


def _national_id(text: str, spec: FieldSpec, context: Context) -> str:
    return _code(text, 4, 32)


def _compact_identifier(value: str) -> str:
    """An identifier without its separators (`QQ 12 34 56 C` and `QQ-123456-C` are both
    `QQ123456C`): what blind indexes are computed over, while the stored value keeps the
    form it was written in."""
    return value.replace(" ", "").replace("-", "")


def _as_is(value: str) -> str:
    return value


def comparison_form(field_type: str) -> Callable[[str], str]:
    """How a normalized value of `field_type` is compared (blind-indexed and searched):
    national ids without their spaces and hyphens; every other type as normalized."""
    return _compact_identifier if field_type == FieldType.NATIONAL_ID else _as_is


def _country(text: str, spec: FieldSpec, context: Context) -> str:
    value = text.upper() if text.isascii() else ""
    if value not in ISO_COUNTRY_CODES:
        raise InvalidValueError("must be an ISO 3166-1 alpha-2 country code")
    return value


def _enum(text: str, spec: FieldSpec, context: Context) -> str:
    value = text.lower()
    if value not in spec.enum_values:
        raise InvalidValueError("must be one of: " + ", ".join(spec.enum_values))
    return value


_Normalizer = Callable[[str, FieldSpec, Context], str]
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
