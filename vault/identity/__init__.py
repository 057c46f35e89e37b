"""Who is calling: signed bearer tokens (development, tests) and client certificates."""

from vault.identity.tokens import TokenIssuer, TokenVerifier

__all__ = ["TokenIssuer", "TokenVerifier"]
