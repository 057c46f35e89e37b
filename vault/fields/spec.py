"""What the data dictionary says about one field: its type, class and anonymization."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from vault.errors import VaultError

FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
"""The shape of a field name (never containing `|`, which derived-key labels use)."""


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
