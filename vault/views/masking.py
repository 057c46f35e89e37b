"""Masking and generalization strategies: plain string code over known field types.

Each strategy takes the normalized value and `today` (only age bands use it) and returns
what the caller may see. None of them raises: a value a strategy cannot read comes back
fully starred rather than partly revealed, and no strategy ever shows more than its name
says. Values arrive normalized by the data dictionary (E.164 phones, ISO-8601 dates,
lower-cased emails), so slices do the work; no regular expressions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from types import MappingProxyType

Strategy = Callable[[str, date], str]
"""(value, today) -> the masked or generalized value."""

REDACTED = "[redacted]"
UNREADABLE = "****"
_DIGITS = frozenset("0123456789")
# Below these lengths "last four" would show most or all of the value, so nothing is shown.
_MIN_PHONE_DIGITS = 7
_MIN_NATIONAL_ID_CHARS = 8
_POSTAL_PREFIX = 3


def mask_email(value: str, today: date) -> str:
    """``jane@example.com`` -> ``j***@example.com`` (first character of the local part)."""
    at = value.rfind("@")
    if at < 0:
        return "***"
    # A one-character local part would be shown whole, so it is starred too.
    first = value[0] if at >= 2 else ""
    return first + "***" + value[at:]


def mask_phone_last4(value: str, today: date) -> str:
    """``+14155552671`` -> ``*******2671``: one star per hidden digit, last four digits."""
    digits = value[1:] if value[:1] == "+" else value
    if not (digits.isascii() and digits.isdigit()):
        digits = "".join(c for c in value if c in _DIGITS)
    if len(digits) < _MIN_PHONE_DIGITS:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_national_id_last4(value: str, today: date) -> str:
    """``123-45-6789`` -> ``*****6789``: separators dropped, last four characters kept."""
    chars = value if value.isalnum() else value.replace("-", "").replace(" ", "")
    if not chars.isalnum():  # other separators: keep only letters and digits
        chars = "".join(c for c in value if c.isalnum())
    if len(chars) < _MIN_NATIONAL_ID_CHARS:
        return "*" * len(chars)
    return "*" * (len(chars) - 4) + chars[-4:]


def mask_name_initial(value: str, today: date) -> str:
    """``jane`` -> ``J.``; an empty name stays empty."""
    name = value.strip()
    if not name:
        return ""
    initial = name[0]
    upper = initial.upper()
    # Some letters upper-case to two characters (ß -> SS); keep the letter as written then.
    return (upper if len(upper) == 1 else initial) + "."


def mask_date_year(value: str, today: date) -> str:
    """``1984-06-15`` -> ``1984``."""
    parsed = _parse_date(value)
    return UNREADABLE if parsed is None else f"{parsed.year:04d}"


def mask_age_band(value: str, today: date) -> str:
    """A date of birth -> the ten-year age band on `today`: ``30-39`` (``100+`` at the top)."""
    born = _parse_date(value)
    if born is None:
        return UNREADABLE
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < 0:
        return UNREADABLE
    low = age // 10 * 10
    return "100+" if low >= 100 else f"{low}-{low + 9}"


def mask_postal_prefix(value: str, today: date) -> str:
    """``94107`` -> ``941**``: the first three characters, one star per hidden one."""
    code = value.strip()
    if len(code) <= _POSTAL_PREFIX:
        return "*" * len(code)
    return code[:_POSTAL_PREFIX] + "*" * (len(code) - _POSTAL_PREFIX)


def redact(value: str, today: date) -> str:
    """Free text -> ``[redacted]``, whatever it held."""
    return REDACTED


def generalize_decade_band(value: str, today: date) -> str:
    """A date -> its decade: ``1984-06-15`` -> ``1980-1989``."""
    parsed = _parse_date(value)
    if parsed is None:
        return UNREADABLE
    low = parsed.year // 10 * 10
    return f"{low}-{low + 9}"


def generalize_postal_prefix(value: str, today: date) -> str:
    """``94107`` -> ``941`` (the area, without the local part)."""
    code = value.strip()
    return code[:_POSTAL_PREFIX] if len(code) > _POSTAL_PREFIX else "***"


def keep_country(value: str, today: date) -> str:
    """A country is already coarse; anonymized records keep it as it is."""
    return value.strip()


def _parse_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


MASKS: Mapping[str, Strategy] = MappingProxyType(
    {
        "email": mask_email,
        "phone_last4": mask_phone_last4,
        "name_initial": mask_name_initial,
        "national_id_last4": mask_national_id_last4,
        "date_year": mask_date_year,
        "age_band": mask_age_band,
        "postal_prefix": mask_postal_prefix,
        "redact": redact,
    }
)
"""Mask strategies by the name views.yaml uses."""

GENERALIZERS: Mapping[str, Strategy] = MappingProxyType(
    {
        "decade_band": generalize_decade_band,
        "age_band": mask_age_band,
        "postal_prefix": generalize_postal_prefix,
        "country": keep_country,
    }
)
"""Generalization strategies (what anonymization may keep) by their views.yaml name."""
