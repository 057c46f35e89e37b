"""Key custody in an HSM: a `KeyProvider` over a PKCS#11 token (python-pkcs11).

The KEKs are AES-256 secret-key objects generated in the token (`CKA_TOKEN`,
`CKA_SENSITIVE` true, `CKA_EXTRACTABLE` false, wrap and unwrap only: no encrypt, no
decrypt), one per version, labelled ``customer-vault/kek/v<N>``. A data key is wrapped
by the token (`CKM_AES_KEY_WRAP_PAD`, AES key wrap with padding, RFC 5649: 40 bytes
for a 32-byte data key, as the key file's RFC 3394 wrap): it is imported as a session
object, wrapped with `C_WrapKey`, and the session object destroyed; unwrapping is
`C_UnwrapKey` into a session object whose value is read and which is then destroyed.
The KEK bytes never leave the token; a failed unwrap is the opaque `DecryptionError`
(a lost session is `KeyProviderUnavailableError`, reopened by `refresh`).

Root secrets (blind index, token, pseudonym) are handed out, as the `KeyProvider`
protocol says (they are computed with in-process at high rate). Each version is an
HMAC key generated in the token (sensitive, not extractable, sign only), labelled
``customer-vault/root/<purpose>/v<N>``; the root secret is its HMAC-SHA256 of a fixed
label, so the secret is reproducible while the key that makes it stays in the token.

The active version of a KEK or of a purpose is its highest one: a rotation adds the
next version, a retirement destroys a non-active one (as the key file does). A session
is not safe for concurrent use, so calls into the token are serialized by one lock;
the key ring's cache of unwrapped data keys (`vault.crypto.dek_cache`) keeps that off
the read path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from vault.crypto._pkcs11_sessions import open_shared, release_shared, reopen
from vault.crypto.errors import KeyMaterialError, KeyProviderUnavailableError
from vault.crypto.keydoc import KEK_SIZE, ROOT_SECRET_PURPOSES
from vault.errors import DecryptionError

LABEL_PREFIX = "customer-vault/"
_KEK_LABEL = re.compile(r"^customer-vault/kek/v([1-9][0-9]{0,8})$")
_ROOT_LABEL = re.compile(r"^customer-vault/root/([a-z-]+)/v([1-9][0-9]{0,8})$")
_ROOT_MESSAGE = b"customer-vault root secret v1"
_WRAP = Mechanism.AES_KEY_WRAP_PAD
# Generated in the token, never to leave it: no attribute lets the value out.
_KEEP_IN = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.MODIFIABLE: False,
}
_KEK_TEMPLATE = {
    **_KEEP_IN,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
}
_ROOT_TEMPLATE = {
    **_KEEP_IN,
    Attribute.SIGN: True,
    Attribute.VERIFY: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
}
# Failures of the token or of the session, not of the data: the same call may succeed
# once the session is reopened, which `refresh` does (every few seconds in a server).
_UNREACHABLE = (
    pkcs11.exceptions.SessionHandleInvalid,
    pkcs11.exceptions.SessionClosed,
    pkcs11.exceptions.UserNotLoggedIn,
    pkcs11.exceptions.DeviceRemoved,
    pkcs11.exceptions.DeviceError,
    pkcs11.exceptions.DeviceMemory,
    pkcs11.exceptions.TokenNotPresent,
    pkcs11.exceptions.TokenNotRecognised,
    pkcs11.exceptions.ObjectHandleInvalid,
    pkcs11.exceptions.KeyHandleInvalid,
    pkcs11.exceptions.WrappingKeyHandleInvalid,
    pkcs11.exceptions.UnwrappingKeyHandleInvalid,
)
# A data key inside the token only for the length of one wrap or unwrap call.
_SESSION_KEY = {Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}


def kek_label(version: int) -> str:
    return f"{LABEL_PREFIX}kek/v{version}"


def root_label(purpose: str, version: int) -> str:
    return f"{LABEL_PREFIX}root/{purpose}/v{version}"


@dataclass(frozen=True)
class Pkcs11Config:
    """Where the token is: the PKCS#11 module (a shared library), the token's label and
    the user PIN (read from the environment or a file by `vault.config`; never logged)."""

    module: str
    token_label: str
    pin: str = field(repr=False)


# python-pkcs11 mixes in an object's operations from its attributes (a KEK is a
# SecretKey with WrapMixin and UnwrapMixin): no one static type names both.
_TokenKey = Any


@dataclass(frozen=True)
class _Inventory:
    keks: dict[int, _TokenKey]
    roots: dict[str, dict[int, _TokenKey]]

    def signature(self) -> tuple[tuple[int, ...], tuple[tuple[str, tuple[int, ...]], ...]]:
        return (
            tuple(sorted(self.keks)),
            tuple((p, tuple(sorted(v))) for p, v in sorted(self.roots.items())),
        )


class Pkcs11KeyProvider:
    """The `KeyProvider` over a PKCS#11 token; see the module docstring."""

    name = "pkcs11"

    def __init__(self, config: Pkcs11Config) -> None:
        self._config = config
        shared = open_shared(config.module, config.token_label, config.pin)
        self._shared = shared
        self._lock = shared.lock
        self._generation = shared.generation
        self._closed = False
        self._secrets: dict[tuple[str, int], bytes] = {}
        try:
            with self._locked():
                self._inventory = self._scan()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return (
            f"<Pkcs11KeyProvider token={self._config.token_label!r} "
            f"kek_versions={self.kek_versions()} keys=<in the token>>"
        )

    # -- the KeyProvider protocol ---------------------------------------------------------

    def active_kek_version(self) -> int:
        """The KEK version that wraps every new data key: the highest one."""
        versions = self.kek_versions()
        if not versions:
            raise KeyMaterialError("the PKCS#11 token holds no KEK (run `keys init`)")
        return versions[-1]

    def kek_versions(self) -> tuple[int, ...]:
        """Every KEK version in the token, ascending."""
        return tuple(sorted(self._inventory.keks))

    def wrap_key(self, kek_version: int, key: bytes) -> bytes:
        """AES key wrap with padding (RFC 5649) of `key` by KEK `kek_version`, in the token."""
        kek = self._inventory.keks.get(kek_version)
        if kek is None:
            raise KeyMaterialError(f"KEK version {kek_version} does not exist")
        with self._locked():
            inside = self._session.create_object(
                {
                    **_SESSION_KEY,
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: KeyType.AES,
                    Attribute.VALUE: key,
                }
            )
            try:
                return bytes(kek.wrap_key(inside, mechanism=_WRAP))
            finally:
                inside.destroy()

    def unwrap_key(self, kek_version: int, wrapped: bytes) -> bytes:
        """Undo `wrap_key` in the token; `DecryptionError` on any failure."""
        kek = self._inventory.keks.get(kek_version)
        if kek is None or len(wrapped) != KEK_SIZE + 8:
            raise DecryptionError
        with self._locked():
            try:
                inside = kek.unwrap_key(
                    ObjectClass.SECRET_KEY,
                    KeyType.AES,
                    wrapped,
                    mechanism=_WRAP,
                    store=False,
                    template=_SESSION_KEY,
                )
            except _UNREACHABLE:
                raise
            except pkcs11.PKCS11Error:
                raise DecryptionError from None
            try:
                return bytes(inside[Attribute.VALUE])
            finally:
                inside.destroy()

    def root_secret(self, purpose: str, version: int | None = None) -> bytes:
        """The 32-byte root secret of `purpose` at `version` (None: the active one)."""
        if version is None:
            version = self.active_root_version(purpose)
        cached = self._secrets.get((purpose, version))
        if cached is not None:
            return cached
        key = self._roots_of(purpose).get(version)
        if key is None:
            raise KeyMaterialError(f"{purpose} secret version {version} does not exist")
        with self._locked():
            secret = bytes(key.sign(_ROOT_MESSAGE, mechanism=Mechanism.SHA256_HMAC))
        self._secrets[(purpose, version)] = secret
        return secret

    def active_root_version(self, purpose: str) -> int:
        """The version of `purpose`'s root secret new values are derived with: the highest."""
        versions = self.root_versions(purpose)
        if not versions:
            raise KeyMaterialError(f"the PKCS#11 token holds no {purpose} secret")
        return versions[-1]

    def root_versions(self, purpose: str) -> tuple[int, ...]:
        """Every version of `purpose`'s root secret in the token, ascending."""
        return tuple(sorted(self._roots_of(purpose)))

    def refresh(self) -> bool:
        """Re-list the token's keys (another process may have rotated or retired one);
        True if the set of versions changed. A session found broken is reopened first
        (a new login), so calls work again after the token comes back."""
        with self._locked():
            shared = self._shared
            if shared.broken:
                reopen(shared, self._config.module, self._config.token_label)
            scanned = self._scan()
            stale = self._generation != shared.generation
            self._generation = shared.generation
            if scanned.signature() == self._inventory.signature():
                self._inventory = scanned  # the same versions; fresh handles if reopened
                return stale
            self._inventory = scanned
            # Secrets of versions still present stay: they are what their keys make, and
            # a version retired by another process is dropped here, as the key file's is.
            self._secrets = {
                (purpose, version): secret
                for (purpose, version), secret in self._secrets.items()
                if version in scanned.roots.get(purpose, {})
            }
            return True

    def close(self) -> None:
        """Let go of the shared session; the last provider to do so logs out."""
        if not self._closed:
            self._closed = True
            release_shared(self._config.module, self._config.token_label)

    # -- custody operations (`keys init`, `keys rotate`, `keys retire`) -----------------

    def initialize(self) -> list[str]:
        """Generate version 1 of the KEK and of each root secret when the token has none;
        returns the labels generated."""
        made = []
        with self._locked():
            if not self._inventory.keks:
                self._generate(kek_label(1), 1, _KEK_TEMPLATE, KeyType.AES)
                made.append(kek_label(1))
            for purpose in ROOT_SECRET_PURPOSES:
                if not self._inventory.roots.get(purpose):
                    self._generate(
                        root_label(purpose, 1), 1, _ROOT_TEMPLATE, KeyType.GENERIC_SECRET
                    )
                    made.append(root_label(purpose, 1))
            self._inventory = self._scan()
        return made

    def add_kek_version(self) -> int:
        """Rotate: generate the next KEK version in the token; it becomes active."""
        with self._locked():
            self._inventory = self._scan()
            version = max(self._inventory.keks, default=0) + 1
            self._generate(kek_label(version), version, _KEK_TEMPLATE, KeyType.AES)
            self._inventory = self._scan()
            return version

    def retire_kek_version(self, version: int) -> None:
        """Destroy a non-active KEK. The caller first checks no data key uses it."""
        with self._locked():
            self._inventory = self._scan()
            if version not in self._inventory.keks:
                raise KeyMaterialError(f"KEK version {version} does not exist")
            if version == self.active_kek_version():
                raise KeyMaterialError("the active KEK version cannot be retired")
            self._inventory.keks[version].destroy()
            self._inventory = self._scan()

    def add_root_version(self, purpose: str) -> int:
        """Rotate `purpose`'s root secret: generate its next version, which becomes active."""
        with self._locked():
            self._inventory = self._scan()
            version = max(self._roots_of(purpose), default=0) + 1
            label = root_label(purpose, version)
            self._generate(label, version, _ROOT_TEMPLATE, KeyType.GENERIC_SECRET)
            self._inventory = self._scan()
            return version

    def retire_root_version(self, purpose: str, version: int) -> None:
        """Destroy a non-active version of `purpose`'s root secret."""
        with self._locked():
            self._inventory = self._scan()
            roots = self._roots_of(purpose)
            if version not in roots:
                raise KeyMaterialError(f"{purpose} secret version {version} does not exist")
            if version == max(roots):
                raise KeyMaterialError(f"the active {purpose} secret version cannot be retired")
            roots[version].destroy()
            self._secrets.pop((purpose, version), None)
            self._inventory = self._scan()

    # -- inside ---------------------------------------------------------------------------

    @property
    def _session(self) -> pkcs11.Session:
        return self._shared.session

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except _UNREACHABLE as exc:
                if self._generation == self._shared.generation:
                    self._shared.broken = True
                raise KeyProviderUnavailableError(
                    f"the PKCS#11 token cannot be used now ({type(exc).__name__}); "
                    "the session is reopened at the next key refresh"
                ) from None
            except pkcs11.PKCS11Error as exc:
                raise KeyMaterialError(f"PKCS#11 call failed ({type(exc).__name__})") from None

    def _roots_of(self, purpose: str) -> dict[int, _TokenKey]:
        if purpose not in ROOT_SECRET_PURPOSES:
            raise ValueError(f"unknown root secret purpose {purpose!r}")
        return self._inventory.roots.get(purpose, {})

    def _generate(
        self, label: str, version: int, template: dict[Attribute, Any], key_type: KeyType
    ) -> None:
        self._session.generate_key(
            key_type,
            KEK_SIZE * 8,
            label=label,
            id=version.to_bytes(4, "big"),
            store=True,
            template=template,
        )

    def _scan(self) -> _Inventory:
        keks: dict[int, _TokenKey] = {}
        roots: dict[str, dict[int, _TokenKey]] = {}
        with self._lock:
            found = list(
                self._session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: True}
                )
            )
        for key in found:
            label = str(key[Attribute.LABEL] or "")
            if match := _KEK_LABEL.fullmatch(label):
                keks[int(match.group(1))] = key
            elif (match := _ROOT_LABEL.fullmatch(label)) and match.group(1) in ROOT_SECRET_PURPOSES:
                roots.setdefault(match.group(1), {})[int(match.group(2))] = key
        return _Inventory(keks, roots)
