"""C2SP checkpoints in signed notes: format, signatures, tampering, keys."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint, CheckpointSigner, CheckpointVerifier, key_id
from audit.errors import CheckpointError, KeyFormatError

ROOT = hashlib.sha256(b"root").digest()
ORIGIN = "example.com/vault/audit"

# The signed-note reference example (golang.org/x/mod/sumdb/note).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_MATERIAL = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _go_signer() -> CheckpointSigner:
    seed = base64.b64decode(GO_SKEY_MATERIAL)[1:]
    pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return CheckpointSigner(pem, "PeterNeumann")


def test_body_format_and_parse_round_trip() -> None:
    checkpoint = Checkpoint(ORIGIN, 12345, ROOT)
    body = checkpoint.format()
    assert body == f"{ORIGIN}\n12345\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(body) == checkpoint


@pytest.mark.parametrize(
    "body",
    [
        "",
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}",  # no final newline
        f"{ORIGIN}\n012\n{base64.b64encode(ROOT).decode()}\n",  # leading zero
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT[:31]).decode()}\n",  # short root
        f"{ORIGIN}\n12\n{base64.b64encode(ROOT).decode()}\nextension\n",
        f"\n12\n{base64.b64encode(ROOT).decode()}\n",  # empty origin
    ],
)
def test_malformed_bodies_are_refused(body: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(body)


def test_signed_note_matches_the_reference_example_byte_for_byte() -> None:
    signer = _go_signer()
    assert signer.verifier_key == GO_VKEY
    assert signer.sign_note(GO_TEXT) == GO_NOTE
    assert CheckpointVerifier.from_verifier_key(GO_VKEY).open_note(GO_NOTE) == GO_TEXT


def test_key_id_follows_the_signed_note_spec() -> None:
    public = base64.b64decode(GO_VKEY.split("+", 2)[2])[1:]
    assert key_id("PeterNeumann", public).hex() == "c74f20a3"


def test_sign_and_verify_with_pem_and_with_verifier_key(
    signer: CheckpointSigner, key_files: tuple[Path, Path]
) -> None:
    checkpoint = Checkpoint(ORIGIN, 7, ROOT)
    note = signer.sign(checkpoint)
    from_pem = CheckpointVerifier.from_pem(key_files[1].read_bytes(), signer.key_name)
    from_vkey = CheckpointVerifier.from_verifier_key(signer.verifier_key)
    assert from_pem.verify(note) == checkpoint
    assert from_vkey.verify(note.encode()) == checkpoint
    assert from_pem.verifier_key == signer.verifier_key


def test_every_edited_byte_fails(signer: CheckpointSigner) -> None:
    note = signer.sign(Checkpoint(ORIGIN, 42, ROOT)).encode()
    verifier = signer.verifier()
    for position in range(len(note)):
        for replacement in {
            note[position] ^ 0x01,
            ord("A") if note[position] != ord("A") else 0x42,
        }:
            tampered = note[:position] + bytes([replacement]) + note[position + 1 :]
            with pytest.raises(CheckpointError):
                verifier.verify(tampered)


def test_removed_or_added_bytes_fail(signer: CheckpointSigner) -> None:
    note = signer.sign(Checkpoint(ORIGIN, 42, ROOT))
    verifier = signer.verifier()
    for position in range(len(note)):
        with pytest.raises(CheckpointError):
            verifier.verify(note[:position] + note[position + 1 :])
    with pytest.raises(CheckpointError):
        verifier.verify(note + "\n")


def test_a_different_key_fails(signer: CheckpointSigner, tmp_path: Path) -> None:
    note = signer.sign(Checkpoint(ORIGIN, 1, ROOT))
    other_pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    same_name = CheckpointSigner(other_pem, signer.key_name)
    with pytest.raises(CheckpointError):
        same_name.verifier().verify(note)
    with pytest.raises(CheckpointError):
        CheckpointSigner(other_pem, "other").verifier().verify(note)


def test_signatures_by_unknown_keys_are_ignored(signer: CheckpointSigner) -> None:
    checkpoint = Checkpoint(ORIGIN, 3, ROOT)
    note = signer.sign(checkpoint)
    witness = _go_signer().sign(checkpoint).split("\n\n", 1)[1]
    assert signer.verifier().verify(note + witness) == checkpoint


def test_malformed_verifier_keys_are_refused() -> None:
    for bad in (
        "",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ApRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(KeyFormatError):
            CheckpointVerifier.from_verifier_key(bad)


def test_notes_and_key_names_with_lone_surrogates_are_refused(
    signer: CheckpointSigner, key_files: tuple[Path, Path]
) -> None:
    # Found by tests/fuzz/fuzz_checkpoints.py: a str note (or key name) holding a lone
    # surrogate escaped verification as UnicodeEncodeError.
    note = signer.sign(Checkpoint(ORIGIN, 3, ROOT))
    for edited in (
        note.replace(ORIGIN, ORIGIN + "\ud800"),
        note.replace("\u2014 ", "\u2014 \udc80"),
    ):
        with pytest.raises(CheckpointError):
            signer.verifier().verify(edited)
        with pytest.raises(CheckpointError):
            CheckpointVerifier.from_pem(key_files[1].read_bytes()).verify(edited)
    key = signer.verifier_key
    with pytest.raises(KeyFormatError):
        CheckpointVerifier.from_verifier_key("\ud800" + key[key.index("+") :])


def test_key_names_are_checked(key_files: tuple[Path, Path]) -> None:
    for bad in ("", "a b", "a+b", "a\ud800"):
        with pytest.raises(KeyFormatError):
            CheckpointSigner(key_files[0].read_bytes(), bad)


def test_signer_from_pem_is_the_constructor(key_files: tuple[Path, Path]) -> None:
    pem = key_files[0].read_bytes()
    by_name = CheckpointSigner.from_pem(pem, name="customer-vault/audit")
    assert by_name.verifier_key == CheckpointSigner(pem, "customer-vault/audit").verifier_key


def test_a_verifier_needs_only_the_public_key(
    signer: CheckpointSigner, key_files: tuple[Path, Path]
) -> None:
    checkpoint = Checkpoint(ORIGIN, 9, ROOT)
    note = signer.sign(checkpoint)
    verifier = CheckpointVerifier.from_pem(key_files[1].read_bytes())
    assert verifier.verify(note) == checkpoint
    # The key id binds the name on the signature line to the key: renaming the line
    # makes it someone else's signature, and nothing of ours is left.
    renamed = note.replace(f"\u2014 {signer.key_name} ", "\u2014 someone.else ")
    with pytest.raises(CheckpointError):
        verifier.verify(renamed)
    with pytest.raises(KeyFormatError):
        _ = verifier.verifier_key  # a verifier key string needs a name


def test_the_origin_is_checked_when_given(
    signer: CheckpointSigner, key_files: tuple[Path, Path]
) -> None:
    note = signer.sign(Checkpoint(ORIGIN, 9, ROOT))
    public = key_files[1].read_bytes()
    assert CheckpointVerifier.from_pem(public, origin=ORIGIN).verify(note).size == 9
    with pytest.raises(CheckpointError):
        CheckpointVerifier.from_pem(public, origin="example.com/other-log").verify(note)
    with pytest.raises(CheckpointError):
        CheckpointVerifier.from_verifier_key(signer.verifier_key, origin="x/y").verify(note)
