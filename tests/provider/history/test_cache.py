"""BlockCache: a hit needs the very same stored bytes; bounded by bytes, least recently used out."""

from __future__ import annotations

import threading

import pytest

from provider.history.cache import BlockCache


def sized(decoded: str) -> int:
    return len(decoded)


def test_a_hit_needs_the_same_value() -> None:
    cache: BlockCache[str] = BlockCache(1000, sized)
    cache.put(b"k", b"value-1", "decoded-1")
    assert cache.get(b"k", b"value-1") == "decoded-1"
    assert cache.get(b"k", b"value-2") is None  # the minute was rewritten since
    assert cache.get(b"k", b"value-") is None
    assert cache.get(b"other", b"value-1") is None
    cache.put(b"k", b"value-2", "decoded-2")  # replaces, does not add
    assert cache.get(b"k", b"value-2") == "decoded-2"
    assert cache.get(b"k", b"value-1") is None
    assert len(cache) == 1 and cache.used_bytes == len(b"value-2") + len("decoded-2")


def test_bounded_by_bytes_least_recently_used_first() -> None:
    cache: BlockCache[str] = BlockCache(30, sized)  # each entry below: 5 + 5 bytes
    for key in (b"a", b"b", b"c"):
        cache.put(key, b"vvvvv", "ddddd")
    assert cache.used_bytes == 30
    assert cache.get(b"a", b"vvvvv") == "ddddd"  # a is now the most recently used
    cache.put(b"d", b"vvvvv", "ddddd")
    assert cache.get(b"b", b"vvvvv") is None  # b was the least recently used
    assert [cache.get(k, b"vvvvv") for k in (b"a", b"c", b"d")] == ["ddddd"] * 3
    assert cache.used_bytes == 30 and len(cache) == 3
    cache.put(b"a", b"v" * 20, "d" * 20)  # too big to keep: not kept, and the old one is gone
    assert cache.get(b"a", b"vvvvv") is None and cache.get(b"a", b"v" * 20) is None
    assert cache.used_bytes == 20 and len(cache) == 2
    cache.clear()
    assert cache.used_bytes == 0 and len(cache) == 0 and cache.get(b"c", b"vvvvv") is None


def test_zero_bytes_caches_nothing() -> None:
    cache: BlockCache[str] = BlockCache(0, sized)
    cache.put(b"k", b"", "")
    assert cache.get(b"k", b"") is None and len(cache) == 0
    with pytest.raises(ValueError, match="max_bytes"):
        BlockCache(-1, sized)


def test_the_byte_count_stays_exact_under_concurrent_use() -> None:
    cache: BlockCache[str] = BlockCache(50_000, sized)
    start = threading.Barrier(4)

    def work(seed: int) -> None:
        start.wait(timeout=10)
        for i in range(3000):
            key = str((i * 7 + seed) % 500).encode()
            value = b"v" * (i % 13)
            if cache.get(key, value) is None:
                cache.put(key, value, "d" * (i % 97))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    kept = cache._entries.values()  # the accounting must match what is really held
    assert cache.used_bytes == sum(size for _, _, size in kept) <= cache.max_bytes
    assert all(size == len(value) + len(decoded) for value, decoded, size in kept)
