"""Proof checks against transparency-dev/merkle's test data: every file, both outcomes.

`tests/vectors/merkle/` (vendored, see its ORIGIN) holds RFC 6962 inclusion and
consistency proofs and the subtree proofs of draft-ietf-plants-merkle-tree-certs, happy
paths and tampered ones (bit flips, wrong sizes, garbage, truncation). A case with
`wantErr` must raise `ProofError`; every other case must verify.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit.errors import ProofError
from audit.merkle_verify import (
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)
from tests import data

VECTORS = data.VECTORS / "merkle"
KINDS = ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _cases(kind: str) -> list[Any]:
    return [pytest.param(path, id=str(path.relative_to(VECTORS / kind))) for path in _files(kind)]


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(item) for item in case["proof"] or []]


def _inclusion(case: dict[str, Any]) -> None:
    verify_inclusion(
        case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case), _b64(case["root"])
    )


def _consistency(case: dict[str, Any]) -> None:
    verify_consistency(
        case["size1"], case["size2"], _proof(case), _b64(case["root1"]), _b64(case["root2"])
    )


def _subtree_inclusion(case: dict[str, Any]) -> None:
    verify_subtree_inclusion(
        case["leafIdx"],
        (case["start"], case["end"]),
        _b64(case["leafHash"]),
        _proof(case),
        _b64(case["root"]),
    )


def _subtree_consistency(case: dict[str, Any]) -> None:
    verify_subtree_consistency(
        (case["start"], case["end"]),
        case["size"],
        _proof(case),
        _b64(case["root1"]),
        _b64(case["root2"]),
    )


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "inclusion": _inclusion,
    "consistency": _consistency,
    "subtreeinclusion": _subtree_inclusion,
    "subtreeconsistency": _subtree_consistency,
}


def test_every_vector_file_is_loaded() -> None:
    everything = sorted(VECTORS.rglob("*.json"))
    assert sorted(path for kind in KINDS for path in _files(kind)) == everything
    assert len(everything) >= 500
    outcomes = [json.loads(path.read_text())["wantErr"] for path in everything]
    assert outcomes.count(False) >= 30  # happy paths ...
    assert outcomes.count(True) >= 400  # ... and tampered cases both present


def _run(kind: str, path: Path) -> None:
    case = json.loads(path.read_text())
    assert isinstance(case["wantErr"], bool)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            CHECKS[kind](case)
    else:
        CHECKS[kind](case)


@pytest.mark.parametrize("path", _cases("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    _run("inclusion", path)


@pytest.mark.parametrize("path", _cases("consistency"))
def test_consistency_vector(path: Path) -> None:
    _run("consistency", path)


@pytest.mark.parametrize("path", _cases("subtreeinclusion"))
def test_subtree_inclusion_vector(path: Path) -> None:
    _run("subtreeinclusion", path)


@pytest.mark.parametrize("path", _cases("subtreeconsistency"))
def test_subtree_consistency_vector(path: Path) -> None:
    _run("subtreeconsistency", path)
