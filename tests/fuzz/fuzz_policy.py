"""Fuzz target: the policy files' parsers (`vault.policy`, retention rules, data dictionary).

Each input edits one of the real files in `policies/` (replaces, inserts, duplicates or
cuts lines, changes characters, nests a value deeply, chains roles) or replaces it
with fuzz text, and loads it with its real parser.
Contract: a parser returns its result or raises its `PolicyConfigError` (retention:
`RetentionRulesError`, dictionary: `DictionaryError`) naming that file and a line
inside the text (or no line); `identities.yaml` raises `IdentityMapError` naming the
file; nothing else escapes. Loading all four policy files into
an `EngineState` (which builds the Casbin enforcers) raises nothing else either.

Run: `.venv/bin/python tests/fuzz/fuzz_policy.py [corpus dirs] [-max_total_time=60]`.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(
    include=["vault.policy", "vault.retention", "vault.records", "vault.identity"]
):
    from vault.fields.dictionary import DataDictionary, DictionaryError
    from vault.identity import IdentityMap, IdentityMapError
    from vault.policy.errors import PolicyConfigError
    from vault.policy.model_config import parse_model
    from vault.policy.policy_lines import parse_policy
    from vault.policy.purposes import parse_purposes
    from vault.policy.sources import (
        MODEL_FILE,
        POLICY_FILE,
        POLICY_FILES,
        PURPOSES_FILE,
        VIEWS_FILE,
        load_yaml,
    )
    from vault.policy.state import EngineState
    from vault.policy.views_config import parse_views
    from vault.retention.rules import RULES_FILE, RetentionRules

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DICTIONARY_FILE = "data_dictionary.yaml"
IDENTITIES_FILE = "identities.yaml"
TEXTS = {
    name: (POLICIES / name).read_text(encoding="utf-8")
    for name in (*POLICY_FILES, RULES_FILE, DICTIONARY_FILE, IDENTITIES_FILE)
}
SCRATCH = Path(tempfile.mkdtemp(prefix="fuzz-policy-")) / IDENTITIES_FILE
PURPOSES = parse_purposes(TEXTS[PURPOSES_FILE])
VIEWS = parse_views(TEXTS[VIEWS_FILE]).views


def _dictionary(text: str) -> object:
    # `DataDictionary.from_file` without the file: YAML errors become DictionaryError.
    try:
        doc = load_yaml(DICTIONARY_FILE, text)
    except PolicyConfigError as exc:
        raise DictionaryError(exc.file, exc.line, exc.detail) from exc
    return DataDictionary.from_mapping(doc, source=DICTIONARY_FILE)


def _identities(text: str) -> object:
    # `IdentityMap.from_file` reads a path (and is what the server calls).
    SCRATCH.write_bytes(text.encode("utf-8", "surrogatepass"))
    return IdentityMap.from_file(SCRATCH)


PARSERS: list[tuple[str, Callable[[str], object]]] = [
    (POLICY_FILE, lambda text: parse_policy(text, purposes=PURPOSES, views=VIEWS)),
    (MODEL_FILE, parse_model),
    (PURPOSES_FILE, parse_purposes),
    (VIEWS_FILE, parse_views),
    (RULES_FILE, lambda text: RetentionRules.parse(text, source=RULES_FILE)),
    (DICTIONARY_FILE, _dictionary),
    (IDENTITIES_FILE, _identities),
]


def _edited(fdp: atheris.FuzzedDataProvider, name: str) -> str:
    """The real file with a few line-level edits, or fuzz text."""
    if fdp.ConsumeIntInRange(0, 7) == 0:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 2000))
    lines = TEXTS[name].split("\n")
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        at = fdp.ConsumeIntInRange(0, len(lines) - 1)
        kind = fdp.ConsumeIntInRange(0, 7)
        if kind == 0:
            lines[at] = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 120))
        elif kind == 1:
            lines.insert(at, fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 120)))
        elif kind == 2:
            lines.insert(at, lines[fdp.ConsumeIntInRange(0, len(lines) - 1)])
        elif kind == 3 and len(lines) > 1:
            del lines[at]
        elif kind == 4 and lines[at]:
            column = fdp.ConsumeIntInRange(0, len(lines[at]) - 1)
            text = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 4))
            lines[at] = lines[at][:column] + text + lines[at][column + 1 :]
        elif kind == 5:  # a value nested deeply (YAML flow collections)
            depth = fdp.ConsumeIntInRange(1, 3000)
            lines[at] = lines[at] + " " + "[" * depth + "]" * depth
        elif kind == 6:  # a very long value
            lines[at] += fdp.ConsumeUnicode(1) * fdp.ConsumeIntInRange(1, 200_000)
        else:  # a chain of role links
            count = fdp.ConsumeIntInRange(1, 3000)
            links = (f"g, chain_{i}, chain_{i + 1}, *" for i in range(count))
            lines[at:at] = list(links)
    return "\n".join(lines)


def _check_error(exc: PolicyConfigError | DictionaryError, name: str, text: str) -> None:
    assert exc.file == name, f"error names {exc.file!r}, not {name!r}"
    # YAML counts U+0085, U+2028 and U+2029 as line breaks too, as str.splitlines does.
    last = max(text.count("\n"), len(text.splitlines())) + 1
    assert exc.line is None or 1 <= exc.line <= last, f"line {exc.line} is outside the file"


def _one_file(fdp: atheris.FuzzedDataProvider) -> None:
    name, parse = PARSERS[fdp.ConsumeIntInRange(0, len(PARSERS) - 1)]
    text = _edited(fdp, name)
    try:
        parse(text)
    except (PolicyConfigError, DictionaryError) as exc:
        _check_error(exc, name, text)
    except IdentityMapError as exc:
        _check_identity_error(exc, name)


def _check_identity_error(exc: IdentityMapError, name: str) -> None:
    assert name == IDENTITIES_FILE and str(exc).startswith(f"{IDENTITIES_FILE}: "), str(exc)


def _engine(fdp: atheris.FuzzedDataProvider) -> None:
    """All four policy files loaded together, Casbin included, with one edited."""
    name = fdp.PickValueInList(list(POLICY_FILES))
    texts = {**TEXTS, name: _edited(fdp, name)}
    try:
        EngineState(texts, "fuzz")
    except PolicyConfigError as exc:
        named = exc.file if exc.file in POLICY_FILES else "one of the four policy files"
        _check_error(exc, named, texts.get(exc.file, ""))


def fuzz_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    # The engine builds Casbin enforcers (milliseconds): one input in eight.
    (_engine if fdp.ConsumeIntInRange(0, 7) == 0 else _one_file)(fdp)


def main() -> None:
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
