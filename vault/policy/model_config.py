"""Validating `policies/vault_model.conf` before Casbin sees it.

The engine passes request values in a fixed order and relies on the allow-and-deny
effect, so the model's shape is a contract: anything else is refused with the file
and line, instead of Casbin failing (or, worse, deciding differently) at request time.
"""

from __future__ import annotations

import ast
import re
import threading
from dataclasses import dataclass

from vault.policy.errors import PolicyConfigError
from vault.policy.sources import MODEL_FILE

REQUEST_TOKENS = ("sub", "dom", "act", "res", "pur", "clr", "dept")
POLICY_TOKENS = (*REQUEST_TOKENS, "eft")
ALLOW_AND_DENY = "some(where (p.eft == allow)) && !some(where (p.eft == deny))"
FIRST_ALLOW = "some(where (p.eft == allow))"

MATCHER_FUNCTIONS = frozenset({"g", "keyMatch", "atLeast"})
_MATCHER_NAMES = frozenset(
    {f"r_{token}" for token in REQUEST_TOKENS} | {f"p_{token}" for token in POLICY_TOKENS}
)
_MATCHER_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare,
    ast.Eq, ast.NotEq, ast.Call, ast.Name, ast.Load, ast.Constant,
)  # fmt: skip
MAX_MATCHER_NODES = 400
"""Syntax-tree nodes a matcher may have (the shipped one has 101). Casbin parses the
matcher again on every decision and a matrix of a draft asks thousands, so a larger
one would let a single what-if draft keep a core busy for hours."""
_NOT = re.compile(r"!(?!=)")
_DOTTED = re.compile(r"\b([rp])\.")

AST_LOCK = threading.Lock()
"""Held around every `ast.parse` of a matcher, ours and Casbin's (which parses the
matcher again on every `enforce` call). On CPython 3.11 two threads parsing at once can
fail with ``SystemError: AST constructor recursion depth mismatch``; requests decide on
cache misses while a reload parses the new model, so the lock is one per process."""

_SECTIONS = {
    "request_definition": "r",
    "policy_definition": "p",
    "role_definition": "g",
    "policy_effect": "e",
    "matchers": "m",
}


@dataclass(frozen=True)
class ModelSpec:
    """A validated model: its text, and the same model with a first-allow effect.

    The second text exists only to name the line that allowed a request: with the
    allow-and-deny effect Casbin reports the deciding line for a deny but not for an
    allow. Both share the matcher, so they agree on which lines match.
    """

    text: str
    explain_text: str
    matcher_line: int
    matcher: str = ""
    """The matcher expression as written (one line)."""


def parse_model(text: str) -> ModelSpec:
    """Check the model's sections and definitions; return it ready for Casbin."""
    entries = _entries(text)
    for section, key in _SECTIONS.items():
        if key not in entries:
            raise PolicyConfigError(MODEL_FILE, None, f"missing '{key} = ...' in [{section}]")
    _expect_tokens(entries["r"], REQUEST_TOKENS)
    _expect_tokens(entries["p"], POLICY_TOKENS)
    _expect_tokens(entries["g"], ("_", "_", "_"))
    effect_line, effect = entries["e"]
    if " ".join(effect.split()) != ALLOW_AND_DENY:
        raise PolicyConfigError(
            MODEL_FILE, effect_line, f"the effect must be '{ALLOW_AND_DENY}' (deny by default)"
        )
    matcher_line, matcher = entries["m"]
    if "eval(" in matcher.replace(" ", ""):
        raise PolicyConfigError(MODEL_FILE, matcher_line, "eval() is not allowed in the matcher")
    if "#" in matcher:
        # Casbin cuts a matcher at '#', which would silently drop conditions.
        raise PolicyConfigError(MODEL_FILE, matcher_line, "'#' is not allowed in the matcher")
    _check_matcher(matcher_line, matcher)
    explain = _rebuild(entries, effect=FIRST_ALLOW)
    return ModelSpec(_rebuild(entries, effect=ALLOW_AND_DENY), explain, matcher_line, matcher)


def _check_matcher(number: int, matcher: str) -> None:
    """Accept only comparisons, boolean logic and our three functions.

    Casbin evaluates the matcher lazily, so a misspelt name behind a false condition
    would only fail on some later request; this checks the whole expression up front,
    rewritten the way Casbin rewrites it (``r.sub`` -> ``r_sub``, ``&&`` -> ``and``).
    """
    python = _NOT.sub(" not ", matcher.replace("&&", " and ").replace("||", " or "))
    try:
        with AST_LOCK:
            tree = ast.parse(_DOTTED.sub(r"\1_", python), mode="eval")
    except SyntaxError as exc:
        raise PolicyConfigError(
            MODEL_FILE, number, "the matcher is not a valid expression"
        ) from exc
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_MATCHER_NODES:
        raise PolicyConfigError(
            MODEL_FILE, number, f"the matcher is too long (at most {MAX_MATCHER_NODES} terms)"
        )
    for node in nodes:
        if not isinstance(node, _MATCHER_NODES):
            raise PolicyConfigError(
                MODEL_FILE, number, f"the matcher may not use {type(node).__name__}"
            )
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in MATCHER_FUNCTIONS
        ):
            raise PolicyConfigError(MODEL_FILE, number, "the matcher calls an unknown function")
        if isinstance(node, ast.Name) and node.id not in _MATCHER_NAMES | MATCHER_FUNCTIONS:
            raise PolicyConfigError(MODEL_FILE, number, f"the matcher names unknown '{node.id}'")
        if isinstance(node, ast.Constant) and not isinstance(node.value, str):
            raise PolicyConfigError(MODEL_FILE, number, "the matcher may compare strings only")


def _entries(text: str) -> dict[str, tuple[int, str]]:
    entries: dict[str, tuple[int, str]] = {}
    section = ""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if not pending and line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            if section not in _SECTIONS:
                raise PolicyConfigError(MODEL_FILE, number, f"unknown section [{section}]")
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        _add_entry(entries, section, start, " ".join(pending))
        pending = []
    if pending:
        raise PolicyConfigError(MODEL_FILE, start, "line continuation runs past the end of file")
    return entries


def _add_entry(entries: dict[str, tuple[int, str]], section: str, number: int, line: str) -> None:
    if not section:
        raise PolicyConfigError(MODEL_FILE, number, "definition outside a [section]")
    key, sep, value = line.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise PolicyConfigError(MODEL_FILE, number, "expected 'key = value'")
    expected = _SECTIONS[section]
    if key != expected:
        raise PolicyConfigError(
            MODEL_FILE, number, f"[{section}] defines only '{expected}', found '{key}'"
        )
    if key in entries:
        raise PolicyConfigError(MODEL_FILE, number, f"'{key}' is defined twice")
    entries[key] = (number, value)


def _expect_tokens(entry: tuple[int, str], expected: tuple[str, ...]) -> None:
    number, value = entry
    tokens = tuple(token.strip() for token in value.split(","))
    if tokens != expected:
        raise PolicyConfigError(
            MODEL_FILE, number, f"expected '{', '.join(expected)}', found '{', '.join(tokens)}'"
        )


def _rebuild(entries: dict[str, tuple[int, str]], *, effect: str) -> str:
    values = {key: value for key, (_, value) in entries.items()}
    values["e"] = effect
    return "\n".join(f"[{section}]\n{key} = {values[key]}\n" for section, key in _SECTIONS.items())
