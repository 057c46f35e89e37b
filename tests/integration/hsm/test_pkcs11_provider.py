"""The PKCS#11 key provider against a real SoftHSM2 token: KEKs generated in the token
and never leaving it, data keys wrapped and unwrapped by it, versions added and
retired, the PIN kept out of every message."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pkcs11
import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding
from pkcs11 import Attribute, Mechanism, ObjectClass

from tests.softhsm import SoftHsmToken
from vault.crypto import KeyMaterialError, KeyRing
from vault.crypto.hsm import Pkcs11Config, Pkcs11KeyProvider, kek_label
from vault.errors import DecryptionError

_opened: list[Pkcs11KeyProvider] = []


def _provider(token: SoftHsmToken, pin: str | None = None) -> Pkcs11KeyProvider:
    made = Pkcs11KeyProvider(Pkcs11Config(token.module, token.label, pin or token.pin))
    _opened.append(made)
    return made


def _session(module: str, label: str) -> pkcs11.Session:
    """Another session on the token, logged in through the provider's login (the login
    belongs to the process), to look at the token's objects directly."""
    return pkcs11.lib(module).get_token(token_label=label).open(rw=True)


@pytest.fixture(autouse=True)
def _close_providers() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


@pytest.fixture
def provider(token: SoftHsmToken) -> Pkcs11KeyProvider:
    made = _provider(token)
    made.initialize()
    return made


def test_initialize_generates_a_kek_and_every_root_secret_once(token: SoftHsmToken) -> None:
    provider = _provider(token)
    with pytest.raises(KeyMaterialError, match="no KEK"):
        provider.active_kek_version()
    made = provider.initialize()
    assert made == [
        "customer-vault/kek/v1",
        "customer-vault/root/blind-index/v1",
        "customer-vault/root/token/v1",
        "customer-vault/root/pseudonym/v1",
    ]
    assert provider.initialize() == []
    assert provider.kek_versions() == (1,)
    for purpose in ("blind-index", "token", "pseudonym"):
        assert provider.root_versions(purpose) == (1,)
        secret = provider.root_secret(purpose)
        assert len(secret) == 32
        # Reproducible from the key in the token (another session, same secret) ...
        assert _provider(token).root_secret(purpose, 1) == secret
    # ... and distinct per purpose.
    assert len({provider.root_secret(p) for p in ("blind-index", "token", "pseudonym")}) == 3


def test_data_keys_are_wrapped_and_unwrapped_by_the_token(provider: Pkcs11KeyProvider) -> None:
    ring = KeyRing(provider)
    dek, wrapped = ring.new_data_key()
    assert wrapped.kek_version == 1 and len(wrapped.blob) == 40  # RFC 5649 of 32 bytes
    assert ring.unwrap(wrapped) == dek
    tampered = bytes([wrapped.blob[0] ^ 1]) + wrapped.blob[1:]
    for version, blob in ((1, tampered), (1, wrapped.blob[:32]), (7, wrapped.blob)):
        with pytest.raises(DecryptionError):
            provider.unwrap_key(version, blob)
    # No session object is left behind in the token by a wrap or an unwrap.
    with _session(provider._config.module, provider._config.token_label) as other:
        labels = sorted(
            str(o[Attribute.LABEL])
            for o in other.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
        )
    assert labels == sorted(
        [kek_label(1)]
        + [f"customer-vault/root/{p}/v1" for p in ("blind-index", "token", "pseudonym")]
    )


def test_the_kek_cannot_be_extracted(token: SoftHsmToken, provider: Pkcs11KeyProvider) -> None:
    with _session(token.module, token.label) as session:
        kek = session.get_key(label=kek_label(1))
        assert kek[Attribute.SENSITIVE] is True
        assert kek[Attribute.EXTRACTABLE] is False
        assert kek[Attribute.ALWAYS_SENSITIVE] is True  # sensitive since it was made
        assert kek[Attribute.NEVER_EXTRACTABLE] is True
        assert kek[Attribute.LOCAL] is True  # generated in the token, not imported
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            kek[Attribute.VALUE]
        # Not modifiable (CKR_ACTION_PROHIBITED); and extractable can never be set again.
        with pytest.raises(pkcs11.PKCS11Error):
            kek[Attribute.EXTRACTABLE] = True
        assert kek[Attribute.EXTRACTABLE] is False
        # Wrapping it out under a key the caller knows is refused too.
        known = session.generate_key(
            pkcs11.KeyType.AES,
            256,
            store=False,
            template={
                Attribute.WRAP: True,
                Attribute.EXTRACTABLE: True,
                Attribute.SENSITIVE: False,
            },
        )
        with pytest.raises(pkcs11.exceptions.KeyUnextractable):
            known.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP_PAD)  # type: ignore[attr-defined]
        # It wraps and unwraps; it cannot encrypt or decrypt data.
        assert not hasattr(kek, "encrypt") and not hasattr(kek, "decrypt")


def test_a_wrapped_key_is_standard_rfc_5649(provider: Pkcs11KeyProvider) -> None:
    """The token's wrap is standard AES key wrap with padding (RFC 5649), which any
    implementation reads: checked with a throwaway extractable key and the same mechanism."""
    with _session(provider._config.module, provider._config.token_label) as session:
        kek_bytes = os.urandom(32)
        kek = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.AES,
                Attribute.VALUE: kek_bytes,
                Attribute.WRAP: True,
                Attribute.TOKEN: False,
            }
        )
        dek = os.urandom(32)
        inside = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.AES,
                Attribute.VALUE: dek,
                Attribute.TOKEN: False,
                Attribute.EXTRACTABLE: True,
                Attribute.SENSITIVE: False,
            }
        )
        blob = kek.wrap_key(inside, mechanism=Mechanism.AES_KEY_WRAP_PAD)  # type: ignore[attr-defined]
    assert aes_key_unwrap_with_padding(kek_bytes, blob) == dek


def test_rotation_and_retirement_of_keks_and_root_secrets(
    token: SoftHsmToken, provider: Pkcs11KeyProvider
) -> None:
    ring = KeyRing(provider)
    dek, old = ring.new_data_key()
    other = _provider(token)  # another process's view of the same token
    assert provider.add_kek_version() == 2
    assert provider.active_kek_version() == 2
    assert other.kek_versions() == (1,)
    assert other.refresh() is True and other.active_kek_version() == 2
    assert other.refresh() is False
    new = KeyRing(other).rewrap(old)
    assert new.kek_version == 2 and ring.unwrap(new) == dek
    with pytest.raises(KeyMaterialError, match="active"):
        provider.retire_kek_version(2)
    provider.retire_kek_version(1)
    with pytest.raises(DecryptionError):
        provider.unwrap_key(1, old.blob)
    assert other.refresh() is True
    with pytest.raises(DecryptionError):
        other.unwrap_key(1, old.blob)

    first = provider.root_secret("blind-index")
    assert provider.add_root_version("blind-index") == 2
    assert provider.active_root_version("blind-index") == 2
    assert provider.root_secret("blind-index") != first
    assert provider.root_secret("blind-index", 1) == first
    with pytest.raises(KeyMaterialError, match="active"):
        provider.retire_root_version("blind-index", 2)
    provider.retire_root_version("blind-index", 1)
    assert provider.root_versions("blind-index") == (2,)
    with pytest.raises(KeyMaterialError):
        provider.root_secret("blind-index", 1)


def test_a_wrong_pin_or_token_is_refused_without_the_pin_in_any_message(
    token: SoftHsmToken, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-pin-" + os.urandom(4).hex()
    with pytest.raises(KeyMaterialError) as caught:
        _provider(token, pin=wrong)
    assert "PinIncorrect" in str(caught.value)
    with pytest.raises(KeyMaterialError, match="cannot be opened"):
        Pkcs11KeyProvider(Pkcs11Config(token.module, "no-such-token", token.pin))
    provider = _provider(token)
    # With the token's session open (logged in), a wrong PIN is still refused.
    with pytest.raises(KeyMaterialError, match="PinIncorrect"):
        _provider(token, pin=wrong)
    text = f"{caught.value!r} {provider!r} {provider._config!r} {caplog.text}"
    assert wrong not in text and token.pin not in text
