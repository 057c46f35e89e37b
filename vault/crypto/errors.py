"""Errors raised by the crypto package besides the domain's `DecryptionError`."""

from __future__ import annotations

from vault.errors import UnavailableError, VaultError


class KeyMaterialError(VaultError):
    """Key material is missing, malformed or cannot be written.

    The message names the structural problem (a missing field, a wrong size) and never
    contains key bytes or any part of the key document.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"key material error: {reason}")
        self.reason = reason


class KeyProviderUnavailableError(UnavailableError):
    """The key provider cannot be reached now (an HSM restarting, its session lost): the
    call fails UNAVAILABLE and may be retried; the provider reconnects on its own."""


class SignatureError(VaultError):
    """A signature does not verify (one opaque error, whatever the cause)."""

    def __init__(self) -> None:
        super().__init__("signature does not verify")
