"""Checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with Ed25519.

A note is the checkpoint body (`<origin>\\n<size>\\n<base64 root>\\n`), a blank line, and
one line per signature: `— <key name> <base64(key id || signature)>`. The key id is the
first four bytes of SHA-256(key name || "\\n" || 0x01 || public key). A verifier needs
only the public key, as PEM or as the note verifier key `<name>+<hex id>+<base64>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.errors import CheckpointError, KeyFormatError
from audit.merkle import HASH_SIZE
from audit.signing_keys import (
    load_private_key,
    load_public_key,
    public_key_bytes,
    public_key_from_bytes,
    verify_ed25519,
)

ED25519_ALGORITHM = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_NOTE_SIZE = 64 * 1024
MAX_SIGNATURES = 100

_KEY_NAME = re.compile(r"[^\s+]+")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's origin, its size, and the RFC 6962 root over that size."""

    origin: str
    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _CONTROL.search(self.origin):
            raise CheckpointError("checkpoint origin must be one non-empty line")
        if not 0 <= self.size < 2**63:
            raise CheckpointError("checkpoint size out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError("checkpoint root hash must be 32 bytes")

    def format(self) -> str:
        """The checkpoint body, the text that gets signed."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return f"{self.origin}\n{self.size}\n{root}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint body (no extension lines are accepted)."""
        if not body.endswith("\n"):
            raise CheckpointError("checkpoint body must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) != 3:
            raise CheckpointError("checkpoint body must have exactly three lines")
        origin, size_text, root_text = lines
        if not _SIZE.fullmatch(size_text):
            raise CheckpointError("checkpoint size is not a canonical decimal")
        return cls(origin, int(size_text), _strict_b64(root_text))


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 key."""
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_ALGORITHM]) + public_key
    return hashlib.sha256(material).digest()[:4]


def _check_key_name(name: str) -> None:
    if not _KEY_NAME.fullmatch(name) or not _is_utf8(name):
        raise KeyFormatError("key name must be non-empty, without spaces or '+'")


def _is_utf8(text: str) -> bool:
    # A Python str may hold lone surrogates, which have no UTF-8 form to hash or verify.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class CheckpointSigner:
    """Signs checkpoints with an Ed25519 private key under a key name."""

    def __init__(self, private_key_pem: bytes, key_name: str) -> None:
        _check_key_name(key_name)
        self._key = load_private_key(private_key_pem)
        self.key_name = key_name
        self._public = public_key_bytes(self._key.public_key())
        self._id = key_id(key_name, self._public)

    @classmethod
    def from_pem(cls, private_key_pem: bytes, *, name: str) -> CheckpointSigner:
        """A signer from an unencrypted PKCS#8 PEM Ed25519 key, signing as `name`.

        By convention the key name is the log's origin (e.g. `customer-vault/audit`).
        """
        return cls(private_key_pem, name)

    @property
    def verifier_key(self) -> str:
        """The signed-note verifier key string for this signer's public key."""
        return _format_verifier_key(self.key_name, self._public)

    def verifier(self) -> CheckpointVerifier:
        """A verifier for this signer's signatures."""
        return CheckpointVerifier.from_verifier_key(self.verifier_key)

    def sign(self, checkpoint: Checkpoint) -> str:
        """The signed note text for `checkpoint`."""
        return self.sign_note(checkpoint.format())

    def sign_note(self, text: str) -> str:
        """A signed note of any note text (non-empty lines, each ending in a newline)."""
        _check_note_text(text)
        signature = self._key.sign(text.encode("utf-8"))
        encoded = base64.b64encode(self._id + signature).decode("ascii")
        return f"{text}\n{SIGNATURE_PREFIX}{self.key_name} {encoded}\n"


class CheckpointVerifier:
    """Verifies signed checkpoint notes against one Ed25519 public key.

    With a `key_name`, only signature lines under that name count; without one, any line
    whose key id matches this key under the name it gives (the id binds name and key).
    With an `origin`, a checkpoint naming another log is refused.
    """

    def __init__(
        self, key_name: str | None, public_key: Ed25519PublicKey, *, origin: str | None = None
    ) -> None:
        if key_name is not None:
            _check_key_name(key_name)
        self.key_name = key_name
        self.origin = origin
        self._key = public_key
        self._public = public_key_bytes(public_key)

    @classmethod
    def from_pem(
        cls, public_key_pem: bytes, key_name: str | None = None, *, origin: str | None = None
    ) -> CheckpointVerifier:
        """A verifier from a SubjectPublicKeyInfo PEM (and optionally the signer's name)."""
        return cls(key_name, load_public_key(public_key_pem), origin=origin)

    @classmethod
    def from_verifier_key(
        cls, verifier_key: str, *, origin: str | None = None
    ) -> CheckpointVerifier:
        """A verifier from `<name>+<hex key id>+<base64(0x01 || public key)>`."""
        parts = verifier_key.strip().split("+", 2)  # base64 may contain "+"
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise KeyFormatError("verifier key is not <name>+<hex id>+<base64 key>")
        name, hex_id, encoded = parts
        try:
            material = _strict_b64(encoded)
        except CheckpointError:
            raise KeyFormatError("verifier key material is not base64") from None
        if not material or material[0] != ED25519_ALGORITHM:
            raise KeyFormatError("verifier key is not an Ed25519 key")
        verifier = cls(name, public_key_from_bytes(material[1:]), origin=origin)
        if key_id(name, verifier._public).hex() != hex_id:
            raise KeyFormatError("verifier key id does not match its key")
        return verifier

    @property
    def verifier_key(self) -> str:
        """The signed-note verifier key string (needs a key name)."""
        if self.key_name is None:
            raise KeyFormatError("a verifier key string needs a key name")
        return _format_verifier_key(self.key_name, self._public)

    def verify(self, note: str | bytes) -> Checkpoint:
        """The checkpoint in `note`, once this key's signature (and the origin) is checked."""
        checkpoint = Checkpoint.parse(self.open_note(note))
        if self.origin is not None and checkpoint.origin != self.origin:
            raise CheckpointError("checkpoint is for another log origin")
        return checkpoint

    def open_note(self, note: str | bytes) -> str:
        """The text of a signed note, once this key's signature on it is checked.

        Signatures by other keys are ignored, as the signed-note spec says; at least one
        signature must be by this key, and every one by this key must verify.
        """
        if isinstance(note, bytes):
            try:
                note = note.decode("utf-8")
            except UnicodeDecodeError:
                raise CheckpointError("note is not UTF-8") from None
        body, signatures = split_note(note)
        if self.key_name is None:
            matching = [sig[4:] for name, sig in signatures if sig[:4] == self._id_for(name)]
            ours = matching
        else:
            ours = [sig for name, sig in signatures if name == self.key_name]
            matching = [sig[4:] for sig in ours if sig[:4] == self._id_for(self.key_name)]
        if not matching or len(matching) != len(ours):
            raise CheckpointError("note is not signed by the expected key")
        for signature in matching:
            verify_ed25519(self._key, signature, body.encode("utf-8"))
        return body

    def _id_for(self, name: str) -> bytes:
        return key_id(name, self._public)

    def key_id_for(self, name: str) -> bytes:
        """The 4-byte key id this key has under `name` (how a note's signature line says
        which key made it)."""
        return key_id(name, self._public)


def split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and its (key name, key id || signature) pairs."""
    if len(note) > MAX_NOTE_SIZE or _CONTROL.search(note):
        raise CheckpointError("note is too large or has control characters")
    if not _is_utf8(note):
        raise CheckpointError("note is not UTF-8")
    body, sep, sig_block = note.rpartition("\n\n")
    if not sep or not body or not sig_block.endswith("\n"):
        raise CheckpointError("note has no signature block")
    body += "\n"
    _check_note_text(body)
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError("note has too many signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("malformed signature line")
        name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not space or not _KEY_NAME.fullmatch(name):
            raise CheckpointError("malformed signature line")
        raw = _strict_b64(encoded)
        if len(raw) < 5:
            raise CheckpointError("malformed signature line")
        signatures.append((name, raw))
    return body, signatures


def _check_note_text(text: str) -> None:
    # Signed-note text: non-empty, newline-terminated lines; a blank line would make the
    # split between text and signatures ambiguous.
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise CheckpointError("note text must be non-empty lines ending in newlines")
    if _CONTROL.search(text):
        raise CheckpointError("note text has control characters")


def _format_verifier_key(name: str, public_key: bytes) -> str:
    material = base64.b64encode(bytes([ED25519_ALGORITHM]) + public_key).decode("ascii")
    return f"{name}+{key_id(name, public_key).hex()}+{material}"


def _strict_b64(text: str) -> bytes:
    """Standard padded base64 in its one canonical spelling."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CheckpointError("value is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise CheckpointError("value is not canonical base64")
    return raw
