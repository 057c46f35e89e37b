"""The vault's Python client is the slim distribution in clients/python
(`customer_vault_client`): this module names it for the server package's own users (the
console's `console_client`, `vault.testing`, the tests and benchmarks)."""

from __future__ import annotations

from customer_vault_client import VaultClient, VaultClientError

__all__ = ["VaultClient", "VaultClientError"]
