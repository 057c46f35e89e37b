"""A slim client for Customer Vault's gRPC API (depends on grpcio and protobuf only).

    from customer_vault_client import VaultClient, errors

    with VaultClient("vault.internal:50051", token, ca_file=Path("ca.pem")) as vault:
        subject = vault.create({"email": "ada@example.com"})
        try:
            view = vault.get(subject.subject_id, view="support", purpose="support")
        except errors.PermissionDenied as refused:
            print(refused.reason, refused.request_id)

Every call has a deadline (`timeout`, 30 s by default), idempotent reads and calls
carrying a `request_id` are retried by the channel on UNAVAILABLE (`retries`), an empty
`request_id` is filled with a UUID4, and a failure is a typed `errors.VaultClientError`
carrying the vault's status details. Generated messages and stubs:
`customer_vault_client.gen.customervault.v1`.
"""

from customer_vault_client import errors
from customer_vault_client.client import DEFAULT_TIMEOUT, STREAM_TIMEOUT, VaultClient
from customer_vault_client.errors import VaultClientError
from customer_vault_client.retries import RetryPolicy

__all__ = [
    "DEFAULT_TIMEOUT",
    "STREAM_TIMEOUT",
    "RetryPolicy",
    "VaultClient",
    "VaultClientError",
    "errors",
]
