"""Principals from client certificates (mutual TLS), mapped by `policies/identities.yaml`.

The TLS layer has already checked the certificate chain against the configured client
CA; this module only maps the verified identity (a SAN URI such as a SPIFFE id, else the
subject CN) to a principal, tenant, roles and attributes. An identity the map does not
know is refused: a valid certificate alone grants nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from vault.crypto import certificate_thumbprint
from vault.errors import UnauthenticatedError, VaultError
from vault.principal import Principal

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$")
_KEYS = frozenset({"principal", "tenant", "roles", "attributes"})


class IdentityMapError(VaultError):
    """`identities.yaml` is malformed; the message names the identity."""


@dataclass(frozen=True)
class CertificateIdentity:
    """What a verified client certificate says about its holder."""

    uris: tuple[str, ...]
    common_name: str
    thumbprint: str = ""
    """The certificate's `x5t#S256` (RFC 8705), which a bound token must name."""


class IdentityMap:
    """Certificate identity (SAN URI or CN) -> principal."""

    def __init__(self, identities: Mapping[str, Principal]) -> None:
        self._identities = MappingProxyType(dict(identities))

    @classmethod
    def from_file(cls, path: Path) -> IdentityMap:
        if not path.exists():
            return cls({})
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
            # RecursionError: PyYAML recurses once per nested collection.
            raise IdentityMapError(f"{path.name}: not valid YAML") from exc
        return cls.from_mapping(data or {}, source=path.name)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "identities") -> IdentityMap:
        if not isinstance(data, Mapping):
            raise IdentityMapError(f"{source}: the document must be a mapping")
        entries = data.get("identities") or {}
        if not isinstance(entries, Mapping):
            raise IdentityMapError(f"{source}: identities must be a mapping")
        identities = {}
        for name, body in entries.items():
            where = f"{source}: identity {name!r}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise IdentityMapError(f"{where}: not a URI or common name")
            if not isinstance(body, Mapping) or set(body) - _KEYS:
                raise IdentityMapError(f"{where}: keys must be among {sorted(_KEYS)}")
            principal, tenant = body.get("principal"), body.get("tenant")
            roles, attributes = body.get("roles") or [], body.get("attributes") or {}
            if not isinstance(principal, str) or not isinstance(tenant, str) or not tenant:
                raise IdentityMapError(f"{where}: principal and tenant are required strings")
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                raise IdentityMapError(f"{where}: roles must be a list of strings")
            if "customer" in roles:
                raise IdentityMapError(
                    f"{where}: the customer role comes only with a token bound to a subject"
                )
            if not isinstance(attributes, Mapping):
                raise IdentityMapError(f"{where}: attributes must be a mapping")
            identities[name] = Principal(
                principal,
                tenant,
                frozenset(roles),
                MappingProxyType({str(k): str(v) for k, v in attributes.items()}),
            )
        return cls(identities)

    def principal_for(self, identity: CertificateIdentity) -> Principal:
        """The mapped principal: SAN URIs first, then the CN; unknown -> UNAUTHENTICATED."""
        for name in (*identity.uris, identity.common_name):
            if name and name in self._identities:
                return self._identities[name]
        raise UnauthenticatedError("client certificate identity is not known to this vault")


def identity_from_auth_context(auth: Mapping[str, Sequence[bytes]]) -> CertificateIdentity | None:
    """The verified peer identity from grpc's auth context, None without a client cert."""
    if not auth.get("x509_pem_cert"):
        return None
    uris = tuple(
        value.decode("utf-8", "replace")
        for value in auth.get("x509_subject_alternative_name", ())
        if b"://" in value
    )
    cns = auth.get("x509_common_name", ())
    common_name = cns[0].decode("utf-8", "replace") if cns else ""
    return CertificateIdentity(uris, common_name, certificate_thumbprint(auth["x509_pem_cert"][0]))
