"""Loading `identities.yaml`: every malformed file is an `IdentityMapError`."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.identity import IdentityMap, IdentityMapError

REPO_POLICIES = Path(__file__).resolve().parents[3] / "policies"


def test_the_real_identities_file_loads() -> None:
    IdentityMap.from_file(REPO_POLICIES / "identities.yaml")


# Found by review while adding identities.yaml to tests/fuzz/fuzz_policy.py: YAML errors,
# PyYAML's RecursionError and a top-level list escaped as yaml.YAMLError, RecursionError
# and AttributeError.
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("identities: [", "not valid YAML"),
        ("identities: " + "[" * 5000, "not valid YAML"),
        ("- a list\n", "must be a mapping"),
        ("just text\n", "must be a mapping"),
    ],
)
def test_malformed_files_are_identity_map_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "identities.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(IdentityMapError, match=message):
        IdentityMap.from_file(path)
