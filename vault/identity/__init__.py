"""Who is calling: signed bearer tokens (development, tests) and client certificates."""

from vault.identity.certificates import (
    CertificateIdentity,
    IdentityMap,
    IdentityMapError,
    identity_from_auth_context,
)
from vault.identity.tokens import TokenBindingError, TokenIssuer, TokenVerifier

__all__ = [
    "CertificateIdentity",
    "IdentityMap",
    "IdentityMapError",
    "TokenBindingError",
    "TokenIssuer",
    "TokenVerifier",
    "identity_from_auth_context",
]
