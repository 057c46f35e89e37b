"""The cache of unwrapped data keys: bounded, expiring, emptied when keys change."""

from __future__ import annotations

import os

import pytest

from vault.crypto import DataKeyCache, EnvKeyProvider, KeyRing, generate_key_document


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_lifetime_whatever_the_hits() -> None:
    clock = _Clock()
    cache = DataKeyCache(10, 30.0, monotonic=clock)
    cache.put(1, b"w" * 40, b"k" * 32)
    clock.now += 29.9
    assert cache.get(1, b"w" * 40) == b"k" * 32  # a hit does not extend the lifetime
    clock.now += 0.1
    assert cache.get(1, b"w" * 40) is None
    assert len(cache) == 0


def test_the_least_recently_used_goes_first_beyond_the_bound() -> None:
    cache = DataKeyCache(2, 60.0, monotonic=_Clock())
    cache.put(1, b"a", b"A")
    cache.put(1, b"b", b"B")
    assert cache.get(1, b"a") == b"A"  # now b is the least recently used
    cache.put(1, b"c", b"C")
    assert (cache.get(1, b"a"), cache.get(1, b"b"), cache.get(1, b"c")) == (b"A", None, b"C")
    cache.forget(1, b"a")
    assert cache.get(1, b"a") is None and len(cache) == 1
    cache.put(1, b"d", b"secret-key-bytes")
    assert "secret-key-bytes" not in repr(cache)


def test_the_kek_version_is_part_of_the_key() -> None:
    cache = DataKeyCache(4, 60.0, monotonic=_Clock())
    cache.put(1, b"w", b"K")
    assert cache.get(2, b"w") is None


@pytest.mark.parametrize(("size", "ttl"), [(0, 1.0), (1, 0.0)])
def test_a_cache_needs_a_size_and_a_lifetime(size: int, ttl: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        DataKeyCache(size, ttl)


def test_the_key_ring_uses_the_cache_and_forgets_a_rewrapped_key() -> None:
    ring = KeyRing(EnvKeyProvider(generate_key_document()), dek_cache=DataKeyCache(8, 60.0))
    dek, wrapped = ring.new_data_key()
    assert ring.unwrap(wrapped) == dek
    assert ring.dek_cache is not None and len(ring.dek_cache) == 1
    # Served from the cache (the provider is not asked again) ...
    planted = os.urandom(32)
    ring.dek_cache.put(wrapped.kek_version, wrapped.blob, planted)
    assert ring.unwrap(wrapped) == planted
    # ... until the key is forgotten (re-wrapped or shredded).
    ring.forget(wrapped)
    assert len(ring.dek_cache) == 0 and ring.unwrap(wrapped) == dek
