"""Client certificates: thumbprints for tokens bound to a certificate (RFC 8705), and the
certificate's URI subject alternative names, read as typed by the certificate itself."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from vault.crypto.errors import KeyMaterialError


def _load(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise KeyMaterialError("not a PEM certificate") from exc


def certificate_thumbprint(pem: bytes) -> str:
    """The RFC 8705 `x5t#S256` of a PEM certificate: base64url (unpadded) SHA-256 of its
    DER encoding. `KeyMaterialError` if `pem` is not a certificate."""
    der = _load(pem).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def certificate_uri_sans(pem: bytes) -> tuple[str, ...]:
    """The certificate's `uniformResourceIdentifier` SAN entries, in order, and nothing
    else: not the subject CN, not DNS or e-mail SANs, whose text may spell a URI too.

    `KeyMaterialError` if `pem` is not a certificate or its SAN extension is malformed.
    """
    certificate = _load(pem)
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    except ValueError as exc:
        raise KeyMaterialError("malformed certificate extensions") from exc
    return tuple(extension.value.get_values_for_type(x509.UniformResourceIdentifier))
