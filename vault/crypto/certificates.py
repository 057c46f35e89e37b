"""Certificate thumbprints, for tokens bound to a client certificate (RFC 8705)."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from vault.crypto.errors import KeyMaterialError


def certificate_thumbprint(pem: bytes) -> str:
    """The RFC 8705 `x5t#S256` of a PEM certificate: base64url (unpadded) SHA-256 of its
    DER encoding. `KeyMaterialError` if `pem` is not a certificate."""
    try:
        der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise KeyMaterialError("not a PEM certificate") from exc
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")
