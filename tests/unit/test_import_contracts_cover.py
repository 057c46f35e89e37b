"""The import contracts in `.importlinter` name every module of `vault/`.

import-linter only checks the modules a contract lists: a new package that nobody adds
to the layers, or to the "only vault.api speaks gRPC" and "only vault.crypto imports
cryptography" lists, would be unconstrained and `make imports` would still pass. This
test makes adding it to the picture of the architecture part of adding it.
"""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _top_level_modules() -> set[str]:
    names = set()
    for path in (REPO / "vault").iterdir():
        if path.name.startswith(("_", ".")):
            continue
        if path.is_dir() and (path / "__init__.py").exists():
            names.add(f"vault.{path.name}")
        elif path.suffix == ".py":
            names.add(f"vault.{path.stem}")
    return names


def _contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(REPO / ".importlinter")
    return parser


def _listed(value: str) -> set[str]:
    return {name.strip() for line in value.splitlines() for name in line.split("|") if name.strip()}


def test_every_vault_module_has_a_layer() -> None:
    layers = _listed(_contracts()["importlinter:contract:layers"]["layers"])
    assert _top_level_modules() - layers == set()


def test_every_vault_module_but_api_is_kept_from_grpc() -> None:
    sources = _listed(_contracts()["importlinter:contract:grpc-only-in-api"]["source_modules"])
    assert _top_level_modules() - sources == {"vault.api"}


def test_every_vault_module_but_crypto_is_kept_from_cryptography() -> None:
    section = _contracts()["importlinter:contract:cryptography-only-in-crypto"]
    assert _top_level_modules() - _listed(section["source_modules"]) == {"vault.crypto"}
