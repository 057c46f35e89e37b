"""What anonymization keeps of one subject: its generalized attributes and a pseudonym.

The retained fields are decrypted here, in the transaction that then destroys the data
key, generalized by the data dictionary's rules (decade band, postal prefix, country,
loyalty tier), and only the generalized values leave this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date

from vault.crypto import new_random_id
from vault.errors import DecryptionError, FailedPreconditionError
from vault.fields.dictionary import DataDictionary
from vault.records.cipher import RecordCipher
from vault.retention.store import DueNotice

PSEUDONYM_PREFIX = "anon"


class Anonymizer:
    """Generalizes the fields the dictionary lets anonymization keep."""

    def __init__(self, sealing: RecordCipher, dictionary: DataDictionary) -> None:
        self._sealing = sealing
        self._dictionary = dictionary
        self.retained = tuple(
            name for name, spec in dictionary.fields.items() if spec.anonymization.kind != "drop"
        )

    def attributes(self, notice: DueNotice, today: date) -> dict[str, str] | None:
        """The generalized attributes, or None when the sealed fields cannot be opened
        (the subject is still anonymized: its data is then already unreadable)."""
        key = (notice.kek_version, notice.wrapped_dek, notice.dek_id)
        try:
            opened = self._sealing.open_values(
                notice.tenant, notice.subject_id, key, notice.fields, self.retained
            )
        except (DecryptionError, FailedPreconditionError):
            return None
        finally:
            # The batch shreds this key next: it must not outlive it in the key cache.
            self._sealing.forget_wrapped(notice.kek_version, notice.wrapped_dek)
        kept = {}
        for name, value in opened.items():
            general = self._dictionary.generalize(name, value, today=today)
            if general is not None:
                kept[name] = general
        return kept


def encode_attributes(attributes: Mapping[str, str]) -> str:
    """Canonical JSON: equal attribute combinations are equal strings (k-anonymity groups)."""
    return json.dumps(dict(attributes), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_pseudonym() -> str:
    """A fresh random pseudonym, unrelated to the subject id."""
    return new_random_id(PSEUDONYM_PREFIX)
