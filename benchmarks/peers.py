"""In-process peers: presidio-anonymizer against the vault's masking, and sqlalchemy-utils'
AES-GCM column type against the vault's sealing, on the same records.

Masking: the vault renders the `support` view for a support agent (clearance 2) through
`vault.views.apply_view` with the plan the real policy gives. presidio-anonymizer gets
each record as one text (``field: value`` lines) with the entity spans already built
(no analyzer, no spaCy: spans and texts are prepared before the clock starts, which
favours presidio) and operators that do the same job: keep, ``mask`` (built in) for
phone, postal code and national id, ``custom`` lambdas for email and year, ``replace``
for redaction. One `anonymize` call per record.

Crypto: sealing ten fields per record. sqlalchemy-utils' `StringEncryptedType` with
`AesGcmEngine` encrypts each value under one key (no per-record key, no associated
data, base64 text); the vault makes a data key per subject, wraps it, seals ten fields
with associated data binding tenant, subject and field, and computes four blind indexes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from types import MappingProxyType

import sqlalchemy as sa
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult
from report import Results
from sqlalchemy_utils import StringEncryptedType
from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine
from workload import FIELD_NAMES, rate_of

from vault.crypto import FieldProvenance, KeyRing
from vault.fields.dictionary import DataDictionary
from vault.policy import Action, PolicyEngine, SubjectContext
from vault.principal import Principal
from vault.records.cipher import RecordCipher
from vault.views import Outcome, ViewPlan, apply_view

GROUP_MASK = "masking (in-process)"
GROUP_CRYPTO = "field encryption (in-process)"
TODAY = date(2026, 1, 1)

PROV = FieldProvenance(1, "bench", 0)


def support_plan(policies: Path, dictionary: DataDictionary) -> ViewPlan:
    """The plan the real policy gives a support agent (clearance 2) for the support view."""
    engine = PolicyEngine.from_dir(policies)
    agent = Principal(
        "agent", "acme", frozenset({"support_agent"}), MappingProxyType({"clearance": "2"})
    )
    decision = engine.plan_view(
        agent,
        "support",
        "support",
        Action.SUBJECT_READ,
        tuple(dictionary.fields.values()),
        SubjectContext(state="active"),
    )
    return decision.plan


def _presidio_operator(strategy: str) -> OperatorConfig:
    if strategy == "email":
        return OperatorConfig("custom", {"lambda": lambda s: s[0] + "***" + s[s.rfind("@") :]})
    if strategy == "phone_last4":
        return OperatorConfig("mask", {"masking_char": "*", "chars_to_mask": 8, "from_end": False})
    if strategy == "postal_prefix":
        return OperatorConfig("mask", {"masking_char": "*", "chars_to_mask": 2, "from_end": True})
    if strategy == "national_id_last4":
        return OperatorConfig("mask", {"masking_char": "*", "chars_to_mask": 7, "from_end": False})
    if strategy == "date_year":
        return OperatorConfig("custom", {"lambda": lambda s: s[:4]})
    if strategy == "name_initial":
        return OperatorConfig("custom", {"lambda": lambda s: s[:1].upper() + "."})
    return OperatorConfig("replace", {"new_value": "[redacted]"})


def presidio_inputs(
    plan: ViewPlan, records: Sequence[dict[str, str]]
) -> tuple[list[tuple[str, list[RecognizerResult]]], dict[str, OperatorConfig]]:
    """Texts with their spans, and one operator per field (entity type = field name)."""
    operators: dict[str, OperatorConfig] = {}
    for item in plan.fields:
        entity = item.field.upper()
        if item.outcome is Outcome.MASKED:
            operators[entity] = _presidio_operator(item.strategy)
        elif item.outcome is Outcome.CLEAR:
            operators[entity] = OperatorConfig("keep")
        else:
            operators[entity] = OperatorConfig("replace", {"new_value": ""})
    inputs = []
    for values in records:
        parts, spans, at = [], [], 0
        for name in FIELD_NAMES:
            prefix = f"{name}: "
            value = values[name]
            start = at + len(prefix)
            spans.append(RecognizerResult(name.upper(), start, start + len(value), 1.0))
            parts.append(prefix + value)
            at = start + len(value) + 1
        inputs.append(("\n".join(parts), spans))
    return inputs, operators


def run_masking(
    results: Results,
    policies: Path,
    dictionary: DataDictionary,
    records: Sequence[dict[str, str]],
    repetitions: int,
) -> None:
    plan = support_plan(policies, dictionary)

    def keyed(tenant: str, field: str, value: str) -> str:
        return value

    def vault_once() -> None:
        for values in records:
            apply_view(plan, values, tenant="acme", pseudonymize=keyed, tokenize=keyed, today=TODAY)

    inputs, operators = presidio_inputs(plan, records)
    engine = AnonymizerEngine()

    def presidio_once() -> None:
        for text, spans in inputs:
            engine.anonymize(text=text, analyzer_results=spans, operators=operators)

    rates = _interleaved(
        {"vault": vault_once, "presidio": presidio_once}, len(records), repetitions
    )
    vault_rate, presidio_rate = rates["vault"], rates["presidio"]
    sample_vault = apply_view(
        plan, records[0], tenant="acme", pseudonymize=keyed, tokenize=keyed, today=TODAY
    )
    sample_presidio = engine.anonymize(
        text=inputs[0][0], analyzer_results=inputs[0][1], operators=operators
    )
    results.add(GROUP_MASK, "presidio-anonymizer, support view", None, presidio_rate, "records/s",
                "one anonymize() per record, spans given")  # fmt: skip
    results.add(
        GROUP_MASK,
        "vault apply_view, support view",
        None,
        vault_rate,
        "records/s",
        f"{vault_rate / presidio_rate:.1f}x presidio",
        sample_vault=sample_vault.fields,
        sample_presidio=sample_presidio.text,
    )
    results.target("masking vs presidio-anonymizer", "-", vault_rate / presidio_rate, 10, "x")


def _interleaved(
    runs: dict[str, Callable[[], object]], count: int, repetitions: int
) -> dict[str, float]:
    """Records/s of each run (median), the runs taking turns so load drift hits all alike."""
    for once in runs.values():
        once()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repetitions):
        for name, once in runs.items():
            started = time.perf_counter()
            once()
            samples[name].append(count / (time.perf_counter() - started))
    return {name: rate_of(values).median for name, values in samples.items()}


def run_crypto(
    results: Results,
    keyring: KeyRing,
    dictionary: DataDictionary,
    records: Sequence[dict[str, str]],
    repetitions: int,
) -> None:
    dialect = sa.dialects.sqlite.dialect()
    column = StringEncryptedType(sa.String, "benchmark-key-" + "k" * 32, AesGcmEngine)
    sealing = RecordCipher(keyring, dictionary.index_forms)

    def peer_seal() -> list[list[str]]:
        return [[column.process_bind_param(r[n], dialect) for n in FIELD_NAMES] for r in records]

    sealed_peer = peer_seal()

    def peer_open() -> None:
        for row in sealed_peer:
            for value in row:
                column.process_result_value(value, dialect)

    def vault_seal() -> None:
        for values in records:
            sealing.prepare_new("acme", "bench", values, 0)

    prepared = []
    for values in records:
        dek, wrapped = keyring.new_data_key()
        sealer = keyring.sealer(dek, "acme", "sub_" + "a" * 26)
        prepared.append((wrapped, {n: sealer.seal(n, v.encode(), PROV) for n, v in values.items()}))

    def vault_open() -> None:
        for wrapped, fields in prepared:
            sealer = keyring.sealer(keyring.unwrap(wrapped), "acme", "sub_" + "a" * 26)
            for name, sealed in fields.items():
                sealer.open(name, sealed, PROV)

    n = len(records)
    rates = _interleaved(
        {
            "peer_seal": peer_seal,
            "vault_seal": vault_seal,
            "peer_open": peer_open,
            "vault_open": vault_open,
        },
        n,
        repetitions,
    )
    results.add(GROUP_CRYPTO, "sqlalchemy-utils AesGcmEngine: seal 10 fields", None,
                rates["peer_seal"], "records/s", "one key for all rows")  # fmt: skip
    results.add(
        GROUP_CRYPTO,
        "vault prepare_new: seal 10 fields",
        None,
        rates["vault_seal"],
        "records/s",
        f"+ data key, wrap, 4 blind indexes; {rates['vault_seal'] / rates['peer_seal']:.2f}x peer",
    )
    results.add(GROUP_CRYPTO, "sqlalchemy-utils AesGcmEngine: open 10 fields", None,
                rates["peer_open"], "records/s", "")  # fmt: skip
    results.add(
        GROUP_CRYPTO,
        "vault: unwrap + open 10 fields",
        None,
        rates["vault_open"],
        "records/s",
        f"{rates['vault_open'] / rates['peer_open']:.2f}x peer",
    )
