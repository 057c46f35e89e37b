"""The vault's cryptography: a small recipe API over private primitives.

This is the only package in `vault/` that imports `cryptography`. Every failure to
open a sealed value or unwrap a key raises the one opaque `vault.errors.DecryptionError`.
See docs/architecture.md, "Keys and sealed values", for the formats.
"""

from vault.crypto.certificates import certificate_thumbprint, certificate_uri_sans
from vault.crypto.dek_cache import DataKeyCache
from vault.crypto.derived import (
    BlindIndexer,
    PageTokenMac,
    Pseudonymizer,
    Tokenizer,
    token_key_version,
)
from vault.crypto.errors import KeyMaterialError, KeyProviderUnavailableError, SignatureError
from vault.crypto.ids import (
    constant_time_equals,
    is_subject_id,
    new_random_id,
    new_subject_id,
)
from vault.crypto.interfaces import KeyProvider, ManagedKeyProvider
from vault.crypto.keydoc import generate_key_document
from vault.crypto.keyring import KeyRing, WrappedDataKey
from vault.crypto.providers import EnvKeyProvider, LocalKeyFileProvider
from vault.crypto.sealing import FieldProvenance, FieldSealer, sealed_dek_id
from vault.crypto.signing import (
    ed25519_is_key_pair,
    ed25519_key_id,
    generate_ed25519_keypair,
    load_ed25519_private_pem,
    load_ed25519_public_pem,
    sign_ed25519,
    verify_ed25519,
)

__all__ = [
    "BlindIndexer",
    "DataKeyCache",
    "EnvKeyProvider",
    "FieldProvenance",
    "FieldSealer",
    "KeyMaterialError",
    "KeyProvider",
    "KeyProviderUnavailableError",
    "KeyRing",
    "LocalKeyFileProvider",
    "ManagedKeyProvider",
    "PageTokenMac",
    "Pseudonymizer",
    "SignatureError",
    "Tokenizer",
    "WrappedDataKey",
    "certificate_thumbprint",
    "certificate_uri_sans",
    "constant_time_equals",
    "ed25519_is_key_pair",
    "ed25519_key_id",
    "generate_ed25519_keypair",
    "generate_key_document",
    "is_subject_id",
    "load_ed25519_private_pem",
    "load_ed25519_public_pem",
    "new_random_id",
    "new_subject_id",
    "sealed_dek_id",
    "sign_ed25519",
    "token_key_version",
    "verify_ed25519",
]
