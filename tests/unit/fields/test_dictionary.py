"""The data dictionary: the real policies file, normalization per type, violations that
never quote the value, anonymization rules, and every way to break a dictionary file."""

from __future__ import annotations

import inspect
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from vault.errors import FieldViolation, InvalidArgumentError, VaultError
from vault.fields import dictionary as dictionary_module
from vault.fields import normalizers as normalizers_module
from vault.fields.dictionary import (
    ISO_COUNTRY_CODES,
    AnonymizationRule,
    DataDictionary,
    DictionaryError,
    FieldType,
    Sensitivity,
)
from vault.policy.actions import SENSITIVITY_CLASSES

DICTIONARY_FILE = REPO_ROOT / "policies" / "data_dictionary.yaml"
TODAY = date(2025, 6, 15)
FIELD_NAMES = (
    "given_name",
    "family_name",
    "email",
    "phone",
    "date_of_birth",
    "street_address",
    "city",
    "postal_code",
    "country",
    "national_id",
    "loyalty_tier",
    "notes",
)
VALID_CUSTOMER = {
    "given_name": "Jane",
    "family_name": "Doe",
    "email": "jane@example.com",
    "country": "US",
}


@pytest.fixture(scope="module")
def dictionary() -> DataDictionary:
    return DataDictionary.from_file(DICTIONARY_FILE)


def _violations(excinfo: pytest.ExceptionInfo[InvalidArgumentError]) -> list[FieldViolation]:
    return list(excinfo.value.violations)


# --- The real dictionary ------------------------------------------------------------


def test_real_dictionary_declares_the_customer_fields(dictionary: DataDictionary) -> None:
    assert dictionary.version == 1
    assert tuple(dictionary.fields) == FIELD_NAMES
    assert dictionary.searchable_fields == {"email", "phone", "national_id", "family_name"}
    required = {name for name, spec in dictionary.fields.items() if spec.required}
    assert required == {"given_name", "family_name", "email", "country"}


@pytest.mark.parametrize(
    ("name", "field_type", "sensitivity"),
    [
        ("given_name", FieldType.NAME, Sensitivity.INTERNAL),
        ("family_name", FieldType.NAME, Sensitivity.INTERNAL),
        ("email", FieldType.EMAIL, Sensitivity.CONFIDENTIAL),
        ("phone", FieldType.PHONE, Sensitivity.CONFIDENTIAL),
        ("date_of_birth", FieldType.DATE, Sensitivity.CONFIDENTIAL),
        ("street_address", FieldType.STRING, Sensitivity.CONFIDENTIAL),
        ("city", FieldType.STRING, Sensitivity.INTERNAL),
        ("postal_code", FieldType.POSTAL_CODE, Sensitivity.INTERNAL),
        ("country", FieldType.COUNTRY, Sensitivity.PUBLIC),
        ("national_id", FieldType.NATIONAL_ID, Sensitivity.RESTRICTED),
        ("loyalty_tier", FieldType.ENUM, Sensitivity.INTERNAL),
        ("notes", FieldType.FREE_TEXT, Sensitivity.CONFIDENTIAL),
    ],
)
def test_real_dictionary_types_and_classes(
    dictionary: DataDictionary, name: str, field_type: FieldType, sensitivity: Sensitivity
) -> None:
    spec = dictionary.field(name)
    assert (spec.name, spec.type, spec.sensitivity) == (name, field_type, sensitivity)
    assert spec.description
    # A vault.views.model.FieldRef: plain strings for name, type and sensitivity.
    assert all(isinstance(v, str) for v in (spec.name, spec.type, spec.sensitivity))


def test_anonymization_keeps_only_birth_decade_postal_prefix_country_and_tier(
    dictionary: DataDictionary,
) -> None:
    kept = {
        name: spec.anonymization
        for name, spec in dictionary.fields.items()
        if spec.anonymization.kind != "drop"
    }
    assert kept == {
        "date_of_birth": AnonymizationRule("generalize", "decade_band"),
        "postal_code": AnonymizationRule("generalize", "postal_prefix"),
        "country": AnonymizationRule("keep"),
        "loyalty_tier": AnonymizationRule("keep"),
    }
    assert dictionary.field("loyalty_tier").enum_values == ("bronze", "silver", "gold", "platinum")


def test_sensitivity_ranks_follow_the_policy_classes() -> None:
    assert [s.value for s in sorted(Sensitivity, key=lambda s: s.rank)] == list(SENSITIVITY_CLASSES)
    assert [s.rank for s in Sensitivity] == [0, 1, 2, 3]


def test_country_list_is_iso_3166_1() -> None:
    assert len(ISO_COUNTRY_CODES) == 249
    assert {"US", "GB", "DE", "JP", "AQ", "SS", "BQ"} <= ISO_COUNTRY_CODES
    assert not {"UK", "EU", "XK", "ZZ"} & ISO_COUNTRY_CODES


def test_fields_mapping_is_read_only(dictionary: DataDictionary) -> None:
    with pytest.raises(TypeError):
        dictionary.fields["x"] = dictionary.field("email")  # type: ignore[index]


def test_field_unknown_name(dictionary: DataDictionary) -> None:
    with pytest.raises(InvalidArgumentError) as excinfo:
        dictionary.field("shoe_size")
    assert _violations(excinfo) == [FieldViolation("field", "unknown field")]


# --- Normalization, valid values ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("given_name", "  Jane  ", "Jane"),
        ("given_name", "Mary   Ann", "Mary Ann"),
        ("given_name", "Jean-Luc", "Jean-Luc"),
        ("family_name", "O\u2019Brien", "O'Brien"),
        ("family_name", "St. John", "St. John"),
        ("family_name", "Mu\u0308ller", "M\u00fcller"),  # NFC composes u + diaeresis
        ("family_name", "\u5c71\u7530", "\u5c71\u7530"),
        ("given_name", "Zo\u00eb\u00a0Anne", "Zo\u00eb Anne"),  # no-break space collapsed
        ("email", "Jane.Doe@Example.COM", "jane.doe@example.com"),
        ("email", "  a+tag@sub.example.co.uk ", "a+tag@sub.example.co.uk"),
        ("email", "jane@B\u00fccher.DE", "jane@b\u00fccher.de"),
        ("email", "o'hara@xn--bcher-kva.de", "o'hara@xn--bcher-kva.de"),
        ("phone", "(415) 555-2671", "+14155552671"),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("phone", "+14155552671", "+14155552671"),
        ("phone", "415.555.2671", "+14155552671"),
        ("date_of_birth", "1984-06-15", "1984-06-15"),
        ("date_of_birth", "1900-01-01", "1900-01-01"),
        ("date_of_birth", "2024-02-29", "2024-02-29"),
        ("date_of_birth", TODAY.isoformat(), TODAY.isoformat()),
        ("street_address", " 1  Main   St,  Apt 4 ", "1 Main St, Apt 4"),
        ("city", "S\u00e3o Paulo", "S\u00e3o Paulo"),
        ("postal_code", "sw1a  1aa", "SW1A 1AA"),
        ("postal_code", "94107", "94107"),
        ("postal_code", "1234-567", "1234-567"),
        ("country", "us", "US"),
        ("country", " De ", "DE"),
        ("national_id", "123-45-6789", "123-45-6789"),
        ("national_id", "qq 12 34 56 c", "QQ 12 34 56 C"),
        ("loyalty_tier", "Gold", "gold"),
        ("loyalty_tier", " PLATINUM ", "platinum"),
        ("notes", "  Called on Monday.\r\nPrefers\temail.  ", "Called on Monday.\nPrefers\temail."),
        ("notes", "Caf\u0065\u0301 \U0001f600", "Caf\u00e9 \U0001f600"),
    ],
)
def test_normalizes_valid_values(
    dictionary: DataDictionary, name: str, raw: str, expected: str
) -> None:
    assert dictionary.normalize_one(name, raw, today=TODAY) == expected
    assert dictionary.normalize({name: raw}, require_all=False, today=TODAY) == {name: expected}


# --- Normalization, invalid values --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "description"),
    [
        ("given_name", "", "must not be empty"),
        ("given_name", "   \t ", "must not be empty"),
        ("given_name", "R2D2", "may contain only letters"),
        ("given_name", "Jane\tDoe", "control"),
        ("given_name", "Ja\u200bne", "invisible"),
        ("given_name", "--", "must contain a letter"),
        ("given_name", "J" * 101, "at most 100 characters"),
        ("email", "jane.example.com", "exactly one @"),
        ("email", "jane@@example.com", "exactly one @"),
        ("email", "@example.com", "local part"),
        ("email", "jane..doe@example.com", "local part"),
        ("email", ".jane@example.com", "local part"),
        ("email", "j\u00fcrgen@example.com", "local part"),
        ("email", "x" * 65 + "@example.com", "local part"),
        ("email", "jane@localhost", "domain"),
        ("email", "jane@-example.com", "domain"),
        ("email", "jane@example-.com", "domain"),
        ("email", "jane@exa_mple.com", "domain"),
        ("email", "jane@example..com", "domain"),
        ("email", "jane@192.168.0.1", "domain"),
        ("email", "jane@" + "a" * 64 + ".com", "domain"),
        ("email", "jane doe@example.com", "local part"),
        ("phone", "12", "not a valid phone number"),
        ("phone", "call me", "not a valid phone number"),
        ("phone", "+1 415 555 267", "not a valid phone number"),
        ("phone", "(415) 555-2671 ext. 12", "extension"),
        ("date_of_birth", "1815-02-30", "not a valid calendar date"),
        ("date_of_birth", "2023-02-29", "not a valid calendar date"),
        ("date_of_birth", "1899-12-31", "before 1900-01-01"),
        ("date_of_birth", (TODAY + timedelta(days=1)).isoformat(), "in the future"),
        ("date_of_birth", "2024/01/01", "YYYY-MM-DD"),
        ("date_of_birth", "20240101", "YYYY-MM-DD"),
        ("date_of_birth", "2024-W01-1", "YYYY-MM-DD"),
        ("date_of_birth", "2024-01-01T00:00:00", "YYYY-MM-DD"),
        ("date_of_birth", "\u0661\u0669\u0668\u0664-01-01", "YYYY-MM-DD"),  # Arabic-Indic
        ("street_address", "1 Main St\x00", "control"),
        ("postal_code", "9", "2 to 12"),
        ("postal_code", "94107-12345678", "2 to 12"),
        ("postal_code", "941_07", "2 to 12"),
        ("postal_code", "-9410", "2 to 12"),
        ("postal_code", "stra\u00dfe", "2 to 12"),  # would upper-case to STRASSE
        ("country", "USA", "ISO 3166-1"),
        ("country", "UK", "ISO 3166-1"),
        ("country", "\u0131t", "ISO 3166-1"),  # dotless i upper-cases to I
        ("national_id", "123", "4 to 32"),
        ("national_id", "123/45/6789", "4 to 32"),
        ("loyalty_tier", "diamond", "must be one of: bronze, silver, gold, platinum"),
        ("notes", "line\x1bescape", "control"),
        ("notes", "n" * 2001, "at most 2000 characters"),
    ],
)
def test_rejects_invalid_values(
    dictionary: DataDictionary, name: str, raw: str, description: str
) -> None:
    with pytest.raises(InvalidArgumentError) as excinfo:
        dictionary.normalize_one(name, raw, today=TODAY, path="value")
    [violation] = _violations(excinfo)
    assert violation.field == "value"
    assert description in violation.description
    if len(raw.strip()) >= 4:
        assert raw.strip() not in violation.description


def test_max_length_counts_characters_after_normalization(dictionary: DataDictionary) -> None:
    words = ["Jo"] * 33 + ["J"]
    spaced = "  ".join(words)  # 100 characters once the double spaces collapse
    assert len(spaced) > 100
    assert dictionary.normalize_one("given_name", spaced, today=TODAY) == " ".join(words)
    assert dictionary.normalize_one("given_name", "\u00e9" * 100, today=TODAY) == "\u00e9" * 100


def test_huge_values_are_refused_before_parsing(dictionary: DataDictionary) -> None:
    huge = "9" * 5_000_000
    started = time.perf_counter()
    for name in FIELD_NAMES:
        with pytest.raises(InvalidArgumentError) as excinfo:
            dictionary.normalize_one(name, huge, today=TODAY)
        assert "at most" in _violations(excinfo)[0].description
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("value", [None, 42, b"jane@example.com", ["a"]])
def test_non_string_values(dictionary: DataDictionary, value: object) -> None:
    with pytest.raises(InvalidArgumentError) as excinfo:
        dictionary.normalize({"email": value}, require_all=False, today=TODAY)  # type: ignore[dict-item]
    assert _violations(excinfo) == [FieldViolation("fields.email", "must be a string")]


# --- Whole records ------------------------------------------------------------------


def test_normalize_returns_dictionary_order_and_only_given_fields(
    dictionary: DataDictionary,
) -> None:
    values = {"country": "us", "email": "Jane@Example.com", "family_name": "Doe", "given_name": "J"}
    result = dictionary.normalize(values, require_all=True, today=TODAY)
    assert list(result) == ["given_name", "family_name", "email", "country"]
    assert result["email"] == "jane@example.com"


def test_every_violation_is_reported_at_once(dictionary: DataDictionary) -> None:
    values = {
        "given_name": "R2D2",
        "email": "not-an-email",
        "phone": "12",
        "date_of_birth": "2024/01/01",
        "shoe_size": "44",
        "country": "Atlantis",
        "city": "Springfield",
    }
    with pytest.raises(InvalidArgumentError) as excinfo:
        dictionary.normalize(values, require_all=True, today=TODAY, path="items[37].fields")
    fields = [v.field for v in _violations(excinfo)]
    assert fields == [
        "items[37].fields.given_name",
        "items[37].fields.email",
        "items[37].fields.phone",
        "items[37].fields.date_of_birth",
        "items[37].fields.shoe_size",
        "items[37].fields.country",
        "items[37].fields.family_name",
    ]
    by_field = {v.field.rsplit(".", 1)[1]: v.description for v in _violations(excinfo)}
    assert by_field["shoe_size"] == "unknown field"
    assert by_field["family_name"] == "required"


def test_require_all_reports_each_missing_required_field(dictionary: DataDictionary) -> None:
    with pytest.raises(InvalidArgumentError) as excinfo:
        dictionary.normalize({"notes": "hello"}, require_all=True, today=TODAY)
    assert _violations(excinfo) == [
        FieldViolation("fields.given_name", "required"),
        FieldViolation("fields.family_name", "required"),
        FieldViolation("fields.email", "required"),
        FieldViolation("fields.country", "required"),
    ]


def test_partial_updates_need_no_required_fields(dictionary: DataDictionary) -> None:
    result = dictionary.normalize(
        {"phone": "(415) 555-2671"}, require_all=False, today=TODAY, path="set_fields"
    )
    assert result == {"phone": "+14155552671"}
    assert dictionary.normalize({}, require_all=False, today=TODAY) == {}


def test_a_valid_customer_passes(dictionary: DataDictionary) -> None:
    assert dictionary.normalize(VALID_CUSTOMER, require_all=True, today=TODAY) == VALID_CUSTOMER


def test_normalize_one_unknown_field(dictionary: DataDictionary) -> None:
    with pytest.raises(InvalidArgumentError) as excinfo:
        dictionary.normalize_one("shoe_size", "44", today=TODAY)
    assert _violations(excinfo) == [FieldViolation("field", "unknown field")]


# --- Properties ---------------------------------------------------------------------

# Hypothesis draws string constants from the code under test, so a generated value may
# be a piece of our own fixed text; a description holding such a value quotes the code,
# not the caller. A leak is a value the dictionary did not write itself.
_OWN_TEXT = (
    inspect.getsource(dictionary_module)
    + inspect.getsource(normalizers_module)  # the violations' texts ("must be one of: ")
    + DICTIONARY_FILE.read_text(encoding="utf-8")
)


def _normalized_or_violations(
    dictionary: DataDictionary, name: str, value: str
) -> str | tuple[FieldViolation, ...]:
    try:
        return dictionary.normalize({name: value}, require_all=False, today=TODAY)[name]
    except InvalidArgumentError as exc:
        return exc.violations


def _check_outcome(dictionary: DataDictionary, name: str, value: str) -> None:
    """Either a normalized value that normalizes to itself (searches re-normalize the
    query), or violations that never quote the value; never another exception."""
    outcome = _normalized_or_violations(dictionary, name, value)
    if isinstance(outcome, str):
        assert dictionary.normalize_one(name, outcome, today=TODAY) == outcome
        return
    assert outcome
    for violation in outcome:
        for shown in {value, value.strip()}:
            if len(shown) >= 4 and shown not in _OWN_TEXT:
                assert shown not in violation.description


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(FIELD_NAMES), value=st.text(max_size=80))
def test_any_string_normalizes_or_is_rejected_without_quoting_it(
    dictionary: DataDictionary, name: str, value: str
) -> None:
    _check_outcome(dictionary, name, value)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(FIELD_NAMES),
    value=st.text(alphabet=st.characters(codec="ascii"), max_size=40),
)
def test_any_ascii_string_normalizes_or_is_rejected_without_quoting_it(
    dictionary: DataDictionary, name: str, value: str
) -> None:
    _check_outcome(dictionary, name, value)


@settings(deadline=None)
@given(address=st.emails())
def test_well_formed_emails_are_accepted_lower_cased(
    dictionary: DataDictionary, address: str
) -> None:
    if len(address) > 254 or len(address.partition("@")[0]) > 64:
        return
    normalized = dictionary.normalize_one("email", address, today=TODAY)
    assert normalized == address.lower()


@given(day=st.dates())
def test_dates_between_1900_and_today_are_accepted(dictionary: DataDictionary, day: date) -> None:
    text = day.isoformat()
    if date(1900, 1, 1) <= day <= TODAY:
        assert dictionary.normalize_one("date_of_birth", text, today=TODAY) == text
    else:
        with pytest.raises(InvalidArgumentError):
            dictionary.normalize_one("date_of_birth", text, today=TODAY)


# --- Anonymization ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("date_of_birth", "1984-06-15", "1980-1989"),
        ("postal_code", "94107", "941"),
        ("postal_code", "SW1A 1AA", "SW1"),
        ("country", "US", "US"),
        ("loyalty_tier", "gold", "gold"),
        ("email", "jane@example.com", None),
        ("given_name", "Jane", None),
        ("national_id", "123-45-6789", None),
        ("notes", "anything", None),
    ],
)
def test_generalize_applies_the_anonymization_rule(
    dictionary: DataDictionary, name: str, value: str, expected: str | None
) -> None:
    assert dictionary.generalize(name, value, today=TODAY) == expected


def test_generalize_unknown_field(dictionary: DataDictionary) -> None:
    with pytest.raises(InvalidArgumentError):
        dictionary.generalize("shoe_size", "44", today=TODAY)


# --- Dictionaries built in code -----------------------------------------------------


def _one_field(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "type": "string",
        "sensitivity": "internal",
        "pii": False,
        "anonymization": "drop",
        "description": "A test field.",
    }
    body.update(overrides)
    return {"version": 1, "fields": {"code": body}}


def test_pattern_must_fully_match_the_normalized_value() -> None:
    custom = DataDictionary.from_mapping(_one_field(pattern=r"[A-Z]{3}-[0-9]{3}"))
    assert custom.normalize_one("code", " ABC-123 ", today=TODAY) == "ABC-123"
    for bad in ("ABC-1234", "xABC-123", "abc-123"):
        with pytest.raises(InvalidArgumentError) as excinfo:
            custom.normalize_one("code", bad, today=TODAY)
        assert _violations(excinfo)[0].description == "does not match the required format"


def test_defaults_for_optional_keys() -> None:
    spec = DataDictionary.from_mapping(_one_field()).field("code")
    assert (spec.searchable, spec.required, spec.pattern, spec.enum_values) == (
        False,
        False,
        None,
        (),
    )
    assert spec.max_length == 200


def test_without_a_default_region_phones_need_a_country_code() -> None:
    custom = DataDictionary.from_mapping(_one_field(type="phone"))
    assert custom.normalize_one("code", "+1 415 555 2671", today=TODAY) == "+14155552671"
    with pytest.raises(InvalidArgumentError):
        custom.normalize_one("code", "(415) 555-2671", today=TODAY)


def test_mapping_errors_name_the_source_without_a_line() -> None:
    with pytest.raises(DictionaryError) as excinfo:
        DataDictionary.from_mapping(_one_field(type="telepathy"), source="inline")
    assert excinfo.value.line is None
    assert str(excinfo.value) == "inline: field 'code': unknown type 'telepathy'"


# --- Malformed dictionary files -----------------------------------------------------

_HEADER = "version: 1\nfields:\n  code:\n"  # the field body starts on line 4
_BODY = """\
type: string
sensitivity: internal
pii: false
anonymization: drop
description: A test field.
"""


def _field_doc(body: str = _BODY, extra: str = "") -> str:
    return _HEADER + textwrap.indent(body + extra, "    ")


def _swap(line: str) -> str:
    """The standard body with one `key: value` line replaced (same line number)."""
    key = line.split(":", 1)[0]
    return "".join(
        line + "\n" if old.startswith(key + ":") else old for old in _BODY.splitlines(True)
    )


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        ("version: 1\nfields: [", 2, "invalid YAML"),
        ("- just\n- a list\n", 1, "must be a mapping"),
        ("version: 2\nfields:\n  code: {}\n", 1, "version must be 1"),
        ("version: true\nfields:\n  code: {}\n", 1, "version must be 1"),
        ("version: 1\nowner: me\nfields: {}\n", 2, "unknown key 'owner'"),
        ("version: 1\nfields: {}\n", 2, "non-empty mapping"),
        ("version: 1\ndefault_phone_region: XX\nfields: {}\n", 2, "unknown phone region"),
        (_field_doc(extra="colour: red\n"), 9, "unknown key 'colour'"),
        (_field_doc(_swap("type: telepathy")), 4, "unknown type 'telepathy'"),
        (_field_doc(_swap("sensitivity: secret")), 5, "unknown sensitivity 'secret'"),
        (_field_doc(_swap("pii: 1")), 6, "'pii' must be true or false"),
        (_field_doc(extra="required: maybe\n"), 9, "'required' must be true or false"),
        (_field_doc(_swap("anonymization: shred")), 7, "drop, keep or generalize"),
        (_field_doc(_swap("anonymization: generalize")), 7, "drop, keep or generalize"),
        (_field_doc(_swap("anonymization: generalize:blur")), 7, "unknown generalization"),
        (_field_doc(_swap("anonymization: generalize:decade_band")), 7, "does not apply"),
        (_field_doc(_swap("anonymization: [drop]")), 7, "drop, keep or generalize"),
        (_field_doc(extra="pattern: '(['\n"), 9, "invalid regular expression"),
        (_field_doc(extra="pattern: 12\n"), 9, "invalid regular expression"),
        (_field_doc(extra="max_length: 0\n"), 9, "'max_length' must be a positive integer"),
        (_field_doc(extra="max_length: -5\n"), 9, "'max_length' must be a positive integer"),
        (_field_doc(extra="max_length: ten\n"), 9, "'max_length' must be a positive integer"),
        (_field_doc(extra="max_length: true\n"), 9, "'max_length' must be a positive integer"),
        (_field_doc(extra="max_length: 1000000\n"), 9, "'max_length' must be a positive integer"),
        (_field_doc(extra="values: [a, b]\n"), 9, "only enum fields have values"),
        (_field_doc(_swap("type: enum")), 4, "non-empty list of values"),
        (_field_doc(_swap("type: enum"), "values: []\n"), 9, "non-empty list of values"),
        (_field_doc(_swap("type: enum"), "values: [Gold]\n"), 9, "invalid enum value 'Gold'"),
        (_field_doc(_swap("type: enum"), "values: [a, a]\n"), 9, "duplicate enum value"),
        (_field_doc(_swap("type: free_text"), "searchable: true\n"), 9, "cannot be searchable"),
        (_field_doc(_swap("description: ''")), 8, "needs a description"),
        (_HEADER + "    type: string\n", 3, "missing 'sensitivity'"),
        ("version: 1\nfields:\n  code: string\n", 3, "must be a mapping"),
        ("version: 1\nfields:\n  Email: {}\n", 3, "invalid field name 'Email'"),
        ("version: 1\nfields:\n  'a|b': {}\n", 3, "invalid field name 'a|b'"),
        ("version: 1\nfields:\n  " + "x" * 64 + ": {}\n", 3, "invalid field name"),
        (_field_doc() + "  code:\n    type: name\n", 9, "duplicate key 'code'"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, text: str, line: int, detail: str) -> None:
    path = tmp_path / "data_dictionary.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DictionaryError) as excinfo:
        DataDictionary.from_file(path)
    error = excinfo.value
    assert isinstance(error, VaultError)
    assert error.line == line
    assert str(error).startswith(f"data_dictionary.yaml:{line}: ")
    assert detail in error.detail


def test_keep_is_refused_for_pii_fields(tmp_path: Path) -> None:
    path = tmp_path / "data_dictionary.yaml"
    path.write_text(_field_doc(_swap("pii: true").replace("drop", "keep")), encoding="utf-8")
    with pytest.raises(DictionaryError) as excinfo:
        DataDictionary.from_file(path)
    assert excinfo.value.line == 7
    assert "cannot keep a pii field" in excinfo.value.detail


def test_the_minimal_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "data_dictionary.yaml"
    path.write_text(_field_doc(), encoding="utf-8")
    assert list(DataDictionary.from_file(path).fields) == ["code"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DictionaryError) as excinfo:
        DataDictionary.from_file(tmp_path / "data_dictionary.yaml")
    assert str(excinfo.value) == "data_dictionary.yaml: cannot read file (FileNotFoundError)"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("type: email", "type: [email]"),
        ("default_phone_region: US", "default_phone_region: {a: b}"),
    ],
)
def test_unhashable_values_are_refused(tmp_path: Path, old: str, new: str) -> None:
    # Found by tests/fuzz/fuzz_policy.py: `in` on a YAML list or mapping raised TypeError.
    text = DICTIONARY_FILE.read_text(encoding="utf-8")
    path = tmp_path / "data_dictionary.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(DictionaryError):
        DataDictionary.from_file(path)


def test_national_ids_are_compared_without_separators_other_fields_as_normalized(
    dictionary: DataDictionary,
) -> None:
    forms = dictionary.index_forms
    assert set(forms) == dictionary.searchable_fields
    for written in ("QQ 12 34 56 C", "QQ-123456-C", "QQ123456C"):
        assert forms["national_id"](written) == "QQ123456C"
    assert forms["email"]("ada.lovelace@example.com") == "ada.lovelace@example.com"
    assert forms["family_name"]("Lovelace King") == "Lovelace King"
