"""The JSON key document shared by the key-file and environment providers.

```json
{"format": 1, "active_kek": 2,
 "keks": {"1": "<base64 32 bytes>", "2": "<base64 32 bytes>"},
 "root_secrets": {"blind-index": "<base64 32 bytes>", "token": "...", "pseudonym": "..."}}
```

KEKs and root secrets are separate on purpose: rotating KEKs must never change blind
indexes, tokens or pseudonyms, which are looked up by value.
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

FORMAT_VERSION = 1
KEK_SIZE = 32
ROOT_SECRET_SIZE = 32
ROOT_SECRET_PURPOSES = ("blind-index", "token", "pseudonym")


@dataclass(frozen=True)
class KeyMaterial:
    """A parsed, validated key document. Immutable, so a refresh swaps it atomically."""

    active_kek: int
    keks: Mapping[int, bytes] = field(repr=False)
    root_secrets: Mapping[str, bytes] = field(repr=False)

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


def generate_key_document() -> str:
    """A fresh key document: KEK version 1 and new random root secrets, as JSON text."""
    material = KeyMaterial(
        active_kek=1,
        keks=MappingProxyType({1: os.urandom(KEK_SIZE)}),
        root_secrets=MappingProxyType(
            {purpose: os.urandom(ROOT_SECRET_SIZE) for purpose in ROOT_SECRET_PURPOSES}
        ),
    )
    return serialize(material)


def serialize(material: KeyMaterial) -> str:
    """The JSON text of `material` (base64 values), as written to `master.json`."""
    document = {
        "format": FORMAT_VERSION,
        "active_kek": material.active_kek,
        "keks": {str(v): _b64(k) for v, k in sorted(material.keks.items())},
        "root_secrets": {p: _b64(s) for p, s in sorted(material.root_secrets.items())},
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
    if raw.get("format") != FORMAT_VERSION:
        raise KeyMaterialError(f"key document format must be {FORMAT_VERSION}")
    keks = _parse_keks(raw.get("keks"))
    active = raw.get("active_kek")
    if type(active) is not int or active not in keks:
        raise KeyMaterialError("active_kek must name a KEK version present in keks")
    secrets = _parse_root_secrets(raw.get("root_secrets"))
    return KeyMaterial(active, MappingProxyType(keks), MappingProxyType(secrets))


def _parse_keks(raw: Any) -> dict[int, bytes]:
    if not isinstance(raw, dict) or not raw:
        raise KeyMaterialError("keks must be a non-empty object")
    keks: dict[int, bytes] = {}
    for name, value in raw.items():
        # Canonical decimal only, so "1" and "01" cannot name two different KEKs.
        if not (isinstance(name, str) and re.fullmatch(r"[1-9][0-9]{0,8}", name)):
            raise KeyMaterialError("KEK versions must be positive integers")
        keks[int(name)] = _decode(value, KEK_SIZE, f"KEK version {int(name)}")
    return keks


def _parse_root_secrets(raw: Any) -> dict[str, bytes]:
    if not isinstance(raw, dict):
        raise KeyMaterialError("root_secrets must be an object")
    secrets: dict[str, bytes] = {}
    for purpose in ROOT_SECRET_PURPOSES:
        if purpose not in raw:
            raise KeyMaterialError(f"root secret {purpose!r} is missing")
        secrets[purpose] = _decode(raw[purpose], ROOT_SECRET_SIZE, f"root secret {purpose!r}")
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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
