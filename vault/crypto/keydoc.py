"""The JSON key document shared by the key-file and environment providers.

```json
{"format": 2, "active_kek": 2,
 "keks": {"1": "<base64 32 bytes>", "2": "<base64 32 bytes>"},
 "root_secrets": {
   "blind-index": {"active": 2, "versions": {"1": "<base64 32 bytes>", "2": "..."}},
   "token": {"active": 1, "versions": {"1": "..."}},
   "pseudonym": {"active": 1, "versions": {"1": "..."}}}}
```

KEKs and root secrets are separate on purpose: rotating KEKs must never change blind
indexes, tokens or pseudonyms, which are looked up by value. Root secrets are versioned
too, each purpose on its own: a new blind-index version is followed by a re-index, a
new token version by new tokens, and an old version is retired once nothing uses it.

Format 1 (one unversioned secret per purpose, `"root_secrets": {"token": "<base64>"}`)
is still read, as version 1 of each; the providers write format 2.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from vault.crypto.errors import KeyMaterialError

FORMAT_VERSION = 2
_READABLE_FORMATS = (1, 2)
KEK_SIZE = 32
ROOT_SECRET_SIZE = 32
ROOT_SECRET_PURPOSES = ("blind-index", "token", "pseudonym")


@dataclass(frozen=True)
class RootSecrets:
    """The versions of one purpose's root secret and the one new values are derived with."""

    active: int
    versions: Mapping[int, bytes] = field(repr=False)

    def __repr__(self) -> str:
        return f"RootSecrets(active={self.active}, versions={tuple(sorted(self.versions))})"


@dataclass(frozen=True)
class KeyMaterial:
    """A parsed, validated key document. Immutable, so a refresh swaps it atomically."""

    active_kek: int
    keks: Mapping[int, bytes] = field(repr=False)
    root_secrets: Mapping[str, RootSecrets] = field(repr=False)

    def __repr__(self) -> str:
        return f"KeyMaterial(active_kek={self.active_kek}, kek_versions={self.versions()})"

    def versions(self) -> tuple[int, ...]:
        """KEK versions present, ascending."""
        return tuple(sorted(self.keks))

    def with_new_kek(self) -> tuple[KeyMaterial, int]:
        """A copy with a fresh random KEK one above the highest version, made active."""
        version = max(self.keks) + 1
        keks = {**self.keks, version: os.urandom(KEK_SIZE)}
        return KeyMaterial(version, MappingProxyType(keks), self.root_secrets), version

    def without_kek(self, version: int) -> KeyMaterial:
        """A copy without KEK `version`, which must exist and not be the active one."""
        if version not in self.keks:
            raise KeyMaterialError(f"KEK version {version} does not exist")
        if version == self.active_kek:
            raise KeyMaterialError("the active KEK version cannot be retired")
        keks = {v: k for v, k in self.keks.items() if v != version}
        return KeyMaterial(self.active_kek, MappingProxyType(keks), self.root_secrets)

    def secrets_of(self, purpose: str) -> RootSecrets:
        """The root secret versions of `purpose` ("blind-index", "token", "pseudonym")."""
        try:
            return self.root_secrets[purpose]
        except KeyError:
            raise ValueError(f"unknown root secret purpose {purpose!r}") from None

    def with_new_root_secret(self, purpose: str) -> tuple[KeyMaterial, int]:
        """A copy with a fresh random `purpose` secret one above its highest version, active."""
        current = self.secrets_of(purpose)
        version = max(current.versions) + 1
        versions = {**current.versions, version: os.urandom(ROOT_SECRET_SIZE)}
        return self._with_root(purpose, RootSecrets(version, MappingProxyType(versions))), version

    def without_root_secret(self, purpose: str, version: int) -> KeyMaterial:
        """A copy without version `version` of `purpose`'s secret (not the active one)."""
        current = self.secrets_of(purpose)
        if version not in current.versions:
            raise KeyMaterialError(f"{purpose} secret version {version} does not exist")
        if version == current.active:
            raise KeyMaterialError(f"the active {purpose} secret version cannot be retired")
        versions = {v: s for v, s in current.versions.items() if v != version}
        return self._with_root(purpose, RootSecrets(current.active, MappingProxyType(versions)))

    def _with_root(self, purpose: str, secrets: RootSecrets) -> KeyMaterial:
        roots = MappingProxyType({**self.root_secrets, purpose: secrets})
        return KeyMaterial(self.active_kek, self.keks, roots)


def generate_key_document() -> str:
    """A fresh key document: KEK version 1 and new random root secrets, as JSON text."""
    material = KeyMaterial(
        active_kek=1,
        keks=MappingProxyType({1: os.urandom(KEK_SIZE)}),
        root_secrets=MappingProxyType(
            {
                purpose: RootSecrets(1, MappingProxyType({1: os.urandom(ROOT_SECRET_SIZE)}))
                for purpose in ROOT_SECRET_PURPOSES
            }
        ),
    )
    return serialize(material)


def serialize(material: KeyMaterial) -> str:
    """The JSON text of `material` (base64 values), as written to `master.json`."""
    document = {
        "format": FORMAT_VERSION,
        "active_kek": material.active_kek,
        "keks": _b64_versions(material.keks),
        "root_secrets": {
            purpose: {"active": secrets.active, "versions": _b64_versions(secrets.versions)}
            for purpose, secrets in sorted(material.root_secrets.items())
        },
    }
    return json.dumps(document, indent=2) + "\n"


def parse(document: str | bytes) -> KeyMaterial:
    """Validate and parse a key document, or raise `KeyMaterialError` naming the problem."""
    try:
        raw = json.loads(document)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # `from None`: a JSONDecodeError carries the whole document (the keys) in `.doc`.
        # RecursionError: json's parser recurses once per nested array or object.
        raise KeyMaterialError("key document is not valid JSON") from None
    if not isinstance(raw, dict):
        raise KeyMaterialError("key document must be a JSON object")
    form = raw.get("format")
    if type(form) is not int or form not in _READABLE_FORMATS:
        raise KeyMaterialError(f"key document format must be {FORMAT_VERSION} (or 1)")
    keks = _parse_versions(raw.get("keks"), KEK_SIZE, "KEK")
    active = raw.get("active_kek")
    if type(active) is not int or active not in keks:
        raise KeyMaterialError("active_kek must name a KEK version present in keks")
    secrets = _parse_root_secrets(raw.get("root_secrets"), form)
    return KeyMaterial(active, MappingProxyType(keks), MappingProxyType(secrets))


def _parse_versions(raw: Any, size: int, what: str) -> dict[int, bytes]:
    if not isinstance(raw, dict) or not raw:
        raise KeyMaterialError(f"{what} versions must be a non-empty object")
    keys: dict[int, bytes] = {}
    for name, value in raw.items():
        # Canonical decimal only, so "1" and "01" cannot name two different keys.
        if not (isinstance(name, str) and re.fullmatch(r"[1-9][0-9]{0,8}", name)):
            raise KeyMaterialError(f"{what} versions must be positive integers")
        keys[int(name)] = _decode(value, size, f"{what} version {int(name)}")
    return keys


def _parse_root_secrets(raw: Any, form: int) -> dict[str, RootSecrets]:
    if not isinstance(raw, dict):
        raise KeyMaterialError("root_secrets must be an object")
    secrets: dict[str, RootSecrets] = {}
    for purpose in ROOT_SECRET_PURPOSES:
        if purpose not in raw:
            raise KeyMaterialError(f"root secret {purpose!r} is missing")
        what = f"root secret {purpose!r}"
        if form == 1:
            single = _decode(raw[purpose], ROOT_SECRET_SIZE, what)
            secrets[purpose] = RootSecrets(1, MappingProxyType({1: single}))
            continue
        entry = raw[purpose]
        if not isinstance(entry, dict):
            raise KeyMaterialError(f"{what} must be an object with active and versions")
        versions = _parse_versions(entry.get("versions"), ROOT_SECRET_SIZE, what)
        active = entry.get("active")
        if type(active) is not int or active not in versions:
            raise KeyMaterialError(f"{what}: active must name a version present in versions")
        secrets[purpose] = RootSecrets(active, MappingProxyType(versions))
    return secrets


def _decode(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyMaterialError(f"{what} must be a base64 string")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyMaterialError(f"{what} is not valid base64") from None
    if len(decoded) != size:
        raise KeyMaterialError(f"{what} must be {size} bytes")
    return decoded


def _b64_versions(keys: Mapping[int, bytes]) -> dict[str, str]:
    return {str(v): base64.b64encode(k).decode("ascii") for v, k in sorted(keys.items())}
