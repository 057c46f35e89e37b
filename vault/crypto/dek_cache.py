"""A bounded, expiring cache of unwrapped data keys, so a read does not pay for an
unwrap by the key provider (a round trip to an HSM) every time.

Lifetime: an entry lives at most `ttl_seconds` after it was unwrapped (a hit does not
extend it), and at most `max_entries` are kept (the least recently used goes first).
The cache is cleared whole when the provider's key material changes (`KeyRing.refresh`:
a KEK retired or added), and an entry is dropped when its data key is re-wrapped or
its subject erased in this process (`KeyRing.forget`). Other worker processes keep
their own entries until they expire: after an erasure, that subject's data key may stay
in the memory of a process that read it for up to `ttl_seconds`, though nothing can ask
for it (the wrapped key it is filed under is gone from the database).

Zeroization is best effort only, and in truth not done: Python's `bytes` are immutable
and copied freely (the AES-GCM object holds its own copy of the key), so an evicted key
is dropped, not wiped; its memory is reused whenever the allocator reuses it. The
bound and the expiry limit how many keys are in memory and for how long, not whether
a memory dump of the process can contain them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_TTL_SECONDS = 300.0


class DataKeyCache:
    """Data keys by (KEK version, wrapped blob); thread-safe."""

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_seconds <= 0:
            raise ValueError("a data-key cache needs a positive size and lifetime")
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._now = monotonic
        self._entries: OrderedDict[tuple[int, bytes], tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<DataKeyCache entries={len(self)} max={self.max_entries} keys=<redacted>>"

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, kek_version: int, wrapped: bytes) -> bytes | None:
        """The data key unwrapped from `wrapped`, if cached and not expired."""
        key = (kek_version, wrapped)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, dek = entry
            if self._now() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return dek

    def put(self, kek_version: int, wrapped: bytes, dek: bytes) -> None:
        """Keep `dek` for `ttl_seconds`, evicting the least recently used beyond the bound."""
        with self._lock:
            self._entries[(kek_version, wrapped)] = (self._now() + self.ttl_seconds, dek)
            self._entries.move_to_end((kek_version, wrapped))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, kek_version: int, wrapped: bytes) -> None:
        """Drop one entry (its data key was re-wrapped or shredded)."""
        with self._lock:
            self._entries.pop((kek_version, wrapped), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
