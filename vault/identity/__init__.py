"""Who is calling: signed bearer tokens (the vault's own static key, or trusted issuers'
JWKS) and client certificates."""

from vault.identity.certificates import (
    CertificateIdentity,
    IdentityMap,
    IdentityMapError,
    identity_from_auth_context,
)
from vault.identity.issuers import (
    BearerVerifier,
    IssuerVerifiers,
    JwksVerifier,
    TrustedIssuer,
    trusted_issuer,
)
from vault.identity.tokens import TokenBindingError, TokenIssuer, TokenVerifier

__all__ = [
    "BearerVerifier",
    "CertificateIdentity",
    "IdentityMap",
    "IdentityMapError",
    "IssuerVerifiers",
    "JwksVerifier",
    "TokenBindingError",
    "TokenIssuer",
    "TokenVerifier",
    "TrustedIssuer",
    "identity_from_auth_context",
    "trusted_issuer",
]
