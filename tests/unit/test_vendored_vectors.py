"""The vendored test vectors are exactly what their SHA256SUMS list: nothing edited,
added or dropped since they were copied from upstream (tests/vectors/README.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.data import VECTORS

SETS = ("merkle", "wycheproof")


def _listed(folder: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        assert name not in sums, f"{name} listed twice"
        sums[name] = digest
    return sums


def _on_disk(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.name != "SHA256SUMS"
    }


@pytest.mark.parametrize("name", SETS)
def test_every_file_matches_its_listed_sum_and_none_is_unlisted(name: str) -> None:
    folder = VECTORS / name
    listed = _listed(folder)
    assert _on_disk(folder) == set(listed)
    for relative, digest in listed.items():
        actual = hashlib.sha256((folder / relative).read_bytes()).hexdigest()
        assert actual == digest, f"{name}/{relative} differs from its SHA256SUMS entry"


@pytest.mark.parametrize("name", SETS)
def test_each_set_names_its_origin_and_license(name: str) -> None:
    listed = _listed(VECTORS / name)
    assert {"LICENSE", "ORIGIN"} <= set(listed)
    assert "Apache License" in (VECTORS / name / "LICENSE").read_text()
    assert "Commit:" in (VECTORS / name / "ORIGIN").read_text()


def test_the_vectors_folder_holds_only_the_documented_sets() -> None:
    entries = {path.name for path in VECTORS.iterdir()}
    assert entries == {"README.md", "kat", *SETS}
