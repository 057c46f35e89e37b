"""Loading `identities.yaml`: every malformed file is an `IdentityMapError`."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.errors import UnauthenticatedError
from vault.identity import CertificateIdentity, IdentityMap, IdentityMapError

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


# --- typed identities: only a URI SAN names a client ------------------------------------

ORDER = "spiffe://acme.example/ns/shop/sa/order-service"
BODY = {"principal": "order-service", "tenant": "acme", "roles": ["service"]}


def _map(*entries: dict[str, object]) -> IdentityMap:
    return IdentityMap.from_mapping({"version": 2, "identities": list(entries)})


def test_a_uri_entry_maps_exactly_that_one_uri_san() -> None:
    identities = _map({"uri": ORDER, **BODY})
    assert identities.principal_for(CertificateIdentity((ORDER,))).id == "order-service"
    for uris in [(), (ORDER + "/x",), (ORDER.upper(),), (ORDER, ORDER), (ORDER, "spiffe://x/y")]:
        with pytest.raises(UnauthenticatedError):
            identities.principal_for(CertificateIdentity(uris))


@pytest.mark.parametrize("kind", ["cn", "common_name", "dns", "email", "ip", "subject"])
def test_entries_typed_as_anything_but_a_uri_are_refused_at_load(kind: str) -> None:
    with pytest.raises(IdentityMapError, match="only a URI SAN"):
        _map({kind: ORDER, **BODY})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        # The version 1 format: bare names as keys, CN or URI alike.
        ({"version": 1, "identities": {ORDER: BODY}}, "version must be 2"),
        ({"identities": [{"uri": ORDER, **BODY}]}, "version must be 2"),
        ({"version": 2, "identities": {ORDER: BODY}}, "must be a list"),
        ({"version": 2, "identities": [{**BODY}]}, "`uri` must be a URI"),
        ({"version": 2, "identities": [{"uri": "order-service", **BODY}]}, "`uri` must be a URI"),
        ({"version": 2, "identities": [{"uri": ORDER, **BODY}] * 2}, "is repeated"),
        ({"version": 2, "identities": [{"uri": ORDER, "role": "x", **BODY}]}, "keys must be"),
    ],
)
def test_malformed_entries_are_refused(document: dict[str, object], message: str) -> None:
    with pytest.raises(IdentityMapError, match=message):
        IdentityMap.from_mapping(document)
