"""Witness cosignatures: C2SP tlog-cosignature v1 (timestamped Ed25519, algorithm 0x04).

A cosignature is a signed-note signature line, `— <witness name> base64(key id ||
timestamp || signature)`, where the key id is SHA-256(name || "\\n" || 0x04 || public
key)[:4], the timestamp a big-endian u64 of POSIX seconds, and the Ed25519 signature
covers `cosignature/v1\\ntime <timestamp>\\n` followed by the checkpoint body. It says:
as of that time, this is the largest consistent tree the witness has seen of that log.
A witness's verifier key is `<name>+<hex key id>+base64(0x04 || public key)`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoint import (
    SIGNATURE_PREFIX,
    Checkpoint,
    _check_key_name,
    _strict_b64,
    split_note,
)
from audit.errors import CheckpointError, KeyFormatError
from audit.signing_keys import (
    load_private_key,
    public_key_bytes,
    public_key_from_bytes,
    verify_ed25519,
)

COSIGNATURE_ALGORITHM = 0x04
_HEADER = "cosignature/v1\n"
_MAX_TIMESTAMP = 2**63 - 1


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of a timestamped Ed25519 cosigner key."""
    material = name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_ALGORITHM]) + public_key
    return hashlib.sha256(material).digest()[:4]


def _signed_message(body: str, timestamp: int) -> bytes:
    return f"{_HEADER}time {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class Cosignature:
    """One verified cosignature: who, when (POSIX seconds), and of which checkpoint."""

    witness: str
    timestamp: int
    checkpoint: Checkpoint
    line: str


class CosignatureSigner:
    """A witness's signing key: cosigns checkpoint bodies."""

    def __init__(self, private_key_pem: bytes, name: str) -> None:
        _check_key_name(name)
        self._key = load_private_key(private_key_pem)
        self.name = name
        self._public = public_key_bytes(self._key.public_key())
        self._id = cosigner_key_id(name, self._public)

    @property
    def verifier_key(self) -> str:
        """`<name>+<hex id>+base64(0x04 || public key)`: what logs and verifiers configure."""
        material = base64.b64encode(bytes([COSIGNATURE_ALGORITHM]) + self._public).decode()
        return f"{self.name}+{self._id.hex()}+{material}"

    def cosign(self, checkpoint: Checkpoint, timestamp: int) -> str:
        """The cosignature line (ending in a newline) of `checkpoint` at `timestamp`."""
        if not 0 <= timestamp <= _MAX_TIMESTAMP:
            raise CheckpointError("cosignature timestamp out of range")
        body = checkpoint.format()
        signature = self._key.sign(_signed_message(body, timestamp))
        raw = self._id + struct.pack(">Q", timestamp) + signature
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(raw).decode()}\n"


class CosignatureVerifier:
    """Checks one witness's cosignatures against its public key."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        _check_key_name(name)
        self.name = name
        self._key = public_key
        self._id = cosigner_key_id(name, public_key_bytes(public_key))

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id its cosignature lines start with."""
        return self._id

    @classmethod
    def from_verifier_key(cls, verifier_key: str) -> CosignatureVerifier:
        """From `<name>+<hex id>+base64(0x04 || public key)`."""
        parts = verifier_key.strip().split("+", 2)
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise KeyFormatError("witness key is not <name>+<hex id>+<base64 key>")
        name, hex_id, encoded = parts
        try:
            material = _strict_b64(encoded)
        except CheckpointError:
            raise KeyFormatError("witness key material is not base64") from None
        if len(material) != 33 or material[0] != COSIGNATURE_ALGORITHM:
            raise KeyFormatError("witness key is not a timestamped Ed25519 cosigner key")
        verifier = cls(name, public_key_from_bytes(material[1:]))
        if verifier._id.hex() != hex_id:
            raise KeyFormatError("witness key id does not match its key")
        return verifier

    def verify_line(self, checkpoint: Checkpoint, line: str) -> Cosignature:
        """Check one cosignature line over `checkpoint`; raises `CheckpointError`."""
        text = line[:-1] if line.endswith("\n") else line
        if not text.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("malformed cosignature line")
        name, space, encoded = text[len(SIGNATURE_PREFIX) :].partition(" ")
        if not space or name != self.name:
            raise CheckpointError("cosignature is not by this witness")
        raw = _strict_b64(encoded)
        return self._verify_raw(checkpoint, raw, f"{text}\n")

    def find(self, note: str) -> Cosignature:
        """This witness's cosignature in a cosigned checkpoint note; raises
        `CheckpointError` if there is none or it does not verify."""
        body, signatures = split_note(note)
        checkpoint = Checkpoint.parse(body)
        ours = [raw for name, raw in signatures if name == self.name and raw[:4] == self._id]
        if len(ours) != 1:
            raise CheckpointError("note has no cosignature by this witness")
        encoded = base64.b64encode(ours[0]).decode()
        return self._verify_raw(checkpoint, ours[0], f"{SIGNATURE_PREFIX}{self.name} {encoded}\n")

    def _verify_raw(self, checkpoint: Checkpoint, raw: bytes, line: str) -> Cosignature:
        if len(raw) != 4 + 8 + 64 or raw[:4] != self._id:
            raise CheckpointError("cosignature is not by this witness")
        (timestamp,) = struct.unpack(">Q", raw[4:12])
        if timestamp > _MAX_TIMESTAMP:
            raise CheckpointError("cosignature timestamp out of range")
        verify_ed25519(self._key, raw[12:], _signed_message(checkpoint.format(), timestamp))
        return Cosignature(self.name, timestamp, checkpoint, line)
