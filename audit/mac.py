"""Per-entry MACs: HMAC-SHA256 with a key that lives in a file, never in the database.

A database administrator can rewrite rows, recompute leaf hashes and even a whole tree;
without the MAC key they cannot make an invented or edited entry carry a valid MAC. The
MAC is part of the Merkle leaf (`leaf_data`), so it cannot be stripped or swapped
either without changing the tree.

Entries written before MACs existed (audit schema before `audit_0003`) have none:
their leaf is the entry bytes alone, as before. With the key, `verify_log` reports them
as legacy and fails any entry without a MAC that comes after the first entry with one
(see docs/security.md, "Per-entry MACs").

The key is bound to its host process by `use_entry_mac(engine, mac)`: every append on
that engine, whichever module calls it, then carries a MAC. It is per engine rather
than a parameter of every append so that no write path can forget it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import weakref
from pathlib import Path

from sqlalchemy.engine import Engine

from audit.errors import KeyFormatError

MAC_SIZE = 32
KEY_SIZE = 32
_DOMAIN = b"customer-vault/audit/entry-mac/v1\x00"
_FILE_PREFIX = "audit-entry-mac-v1:"

_BY_ENGINE: weakref.WeakKeyDictionary[Engine, EntryMac] = weakref.WeakKeyDictionary()


class EntryMac:
    """Computes and checks the MAC of an entry's canonical bytes."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise KeyFormatError("the entry MAC key must be 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "EntryMac(<hidden>)"

    @classmethod
    def from_file(cls, path: Path | str) -> EntryMac:
        """Load a key written by `generate_mac_key`."""
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            raise KeyFormatError("cannot read the entry MAC key file") from None
        if not text.startswith(_FILE_PREFIX):
            raise KeyFormatError("not an entry MAC key file")
        try:
            key = bytes.fromhex(text[len(_FILE_PREFIX) :])
        except ValueError:
            raise KeyFormatError("entry MAC key is not hex") from None
        return cls(key)

    def mac(self, entry_bytes: bytes) -> bytes:
        """HMAC-SHA256 over a domain label and the entry's canonical bytes."""
        return hmac.new(self._key, _DOMAIN + entry_bytes, hashlib.sha256).digest()

    def is_valid(self, entry_bytes: bytes, mac: bytes | None) -> bool:
        """True when `mac` is this key's MAC of `entry_bytes` (constant-time compare)."""
        return mac is not None and hmac.compare_digest(self.mac(entry_bytes), mac)


def generate_mac_key(path: Path | str) -> Path:
    """Create a new random MAC key file (mode 0600, parent 0700); refuses to overwrite."""
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = f"{_FILE_PREFIX}{secrets.token_bytes(KEY_SIZE).hex()}\n"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    return target


def leaf_data(entry_bytes: bytes, mac: bytes | None) -> bytes:
    """What the Merkle leaf hash covers: the entry bytes, then its MAC if it has one.

    Canonical entry bytes are one JSON object, so nothing can be read as both an entry
    with a MAC and an entry without one.
    """
    return entry_bytes if mac is None else entry_bytes + mac


def use_entry_mac(engine: Engine, mac: EntryMac | None) -> None:
    """Every entry appended through `engine` from now on carries `mac`'s MAC (None: stop)."""
    if mac is None:
        _BY_ENGINE.pop(engine, None)
    else:
        _BY_ENGINE[engine] = mac


def entry_mac_for(engine: Engine) -> EntryMac | None:
    """The MAC key bound to `engine`, if any."""
    return _BY_ENGINE.get(engine)
