"""Principals from client certificates (mutual TLS), mapped by `policies/identities.yaml`.

The TLS layer has already checked the certificate chain against the configured client
CA; this module only maps the verified identity to a principal, tenant, roles and
attributes. The identity is the certificate's one URI subject alternative name (a SPIFFE
id such as `spiffe://acme.example/ns/shop/sa/order-service`), read as typed from the
certificate itself. Nothing else names a client: a subject CN, a DNS name or an e-mail
SAN can hold any text, a URI included, so a certificate whose CN or DNS name spells a
mapped SPIFFE id is refused like any stranger. An identity the map does not know is
refused too: a valid certificate alone grants nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from vault.crypto import KeyMaterialError, certificate_thumbprint, certificate_uri_sans
from vault.errors import UnauthenticatedError, VaultError
from vault.principal import Principal

FORMAT_VERSION = 2
# scheme://authority/path: a URI SAN as SPIFFE and RFC 5280 write them.
_URI = re.compile(r"^[a-z][a-z0-9+.-]{0,31}://[A-Za-z0-9._~:@!$&'()*+,;=%/-]{1,2000}$")
_TYPES = frozenset({"uri"})
_REFUSED_TYPES = frozenset({"cn", "common_name", "dns", "email", "ip", "subject"})
_BODY = frozenset({"principal", "tenant", "roles", "attributes"})


class IdentityMapError(VaultError):
    """`identities.yaml` is malformed; the message names the identity."""


@dataclass(frozen=True)
class CertificateIdentity:
    """What a verified client certificate says about its holder."""

    uris: tuple[str, ...]
    """Its URI subject alternative names (typed `uniformResourceIdentifier`), in order."""
    thumbprint: str = ""
    """The certificate's `x5t#S256` (RFC 8705), which a bound token must name."""


class IdentityMap:
    """URI SAN -> principal."""

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
        if data.get("version") != FORMAT_VERSION:
            raise IdentityMapError(
                f"{source}: version must be {FORMAT_VERSION} (a list of entries, each "
                "naming its URI SAN with `uri:`; bare names and CNs no longer identify)"
            )
        entries = data.get("identities") or []
        if not isinstance(entries, list):
            raise IdentityMapError(f"{source}: identities must be a list of entries")
        identities: dict[str, Principal] = {}
        for index, body in enumerate(entries):
            uri, principal = _entry(body, f"{source}: identity #{index + 1}")
            if uri in identities:
                raise IdentityMapError(f"{source}: identity #{index + 1}: {uri!r} is repeated")
            identities[uri] = principal
        return cls(identities)

    def principal_for(self, identity: CertificateIdentity) -> Principal:
        """The principal mapped to the certificate's one URI SAN. No URI SAN, several, or
        one the map does not know -> UNAUTHENTICATED (SPIFFE X.509-SVIDs carry exactly
        one, so a second is not a way to pick among identities)."""
        if len(identity.uris) != 1 or identity.uris[0] not in self._identities:
            raise UnauthenticatedError("client certificate identity is not known to this vault")
        return self._identities[identity.uris[0]]


def _entry(body: object, where: str) -> tuple[str, Principal]:
    if not isinstance(body, Mapping):
        raise IdentityMapError(f"{where}: must be a mapping")
    refused = sorted(set(body) & _REFUSED_TYPES)
    if refused:
        raise IdentityMapError(
            f"{where}: {refused[0]!r} cannot identify a client: only a URI SAN (`uri:`) "
            "does, since a CN, DNS or e-mail name can spell any URI"
        )
    if set(body) - _BODY - _TYPES:
        raise IdentityMapError(f"{where}: keys must be among {sorted(_BODY | _TYPES)}")
    uri = body.get("uri")
    if not isinstance(uri, str) or not _URI.match(uri):
        raise IdentityMapError(f"{where}: `uri` must be a URI such as spiffe://domain/path")
    where = f"{where} ({uri})"
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
    return uri, Principal(
        principal,
        tenant,
        frozenset(roles),
        MappingProxyType({str(k): str(v) for k, v in attributes.items()}),
    )


def identity_from_auth_context(auth: Mapping[str, Sequence[bytes]]) -> CertificateIdentity | None:
    """The verified peer identity from grpc's auth context, None without a client cert.

    The URIs come from the certificate's own SAN extension, typed: grpc's
    `x509_subject_alternative_name` flattens DNS, e-mail, IP and URI names into one list
    of strings, in which a DNS or e-mail name that spells a URI cannot be told apart.
    """
    pems = auth.get("x509_pem_cert")
    if not pems:
        return None
    try:
        uris = certificate_uri_sans(pems[0])
        thumbprint = certificate_thumbprint(pems[0])
    except KeyMaterialError:
        raise UnauthenticatedError("client certificate cannot be read") from None
    return CertificateIdentity(uris, thumbprint)
