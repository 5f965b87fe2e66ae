"""The result cache under an injected clock: no test sleeps."""

from __future__ import annotations

import threading

from tests.conftest import FakeClock
from trainlab.cache import ResultCache


def test_entry_lives_exactly_its_ttl(clock: FakeClock) -> None:
    cache = ResultCache(clock=clock)
    assert cache.put("k", "v", ttl=10, cost=0.5)
    clock.tick(9.999)
    assert cache.get("k") == "v"
    clock.tick(0.001)
    assert cache.get("k") is None
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.expirations) == (1, 1, 1)
    assert stats.seconds_saved == 0.5


def test_each_entry_has_its_own_ttl(clock: FakeClock) -> None:
    cache = ResultCache(clock=clock)
    cache.put("short", 1, ttl=1)
    cache.put("long", 2, ttl=100)
    clock.tick(50)
    assert cache.get("short") is None
    assert cache.get("long") == 2


def test_zero_ttl_is_not_stored(clock: FakeClock) -> None:
    cache = ResultCache(clock=clock)
    assert not cache.put("k", "v", ttl=0)
    assert cache.get("k") is None


def test_entry_count_bound_evicts_least_recently_used(clock: FakeClock) -> None:
    cache = ResultCache(max_entries=2, clock=clock)
    cache.put("a", "1", ttl=60)
    cache.put("b", "2", ttl=60)
    assert cache.get("a") == "1"  # a is now more recent than b
    cache.put("c", "3", ttl=60)
    assert cache.get("b") is None
    assert cache.get("a") == "1"
    assert cache.get("c") == "3"
    assert cache.stats.evictions == 1
    assert cache.stats.entries == 2


def test_byte_bound_keeps_total_size_under_the_limit(clock: FakeClock) -> None:
    cache = ResultCache(max_bytes=1000, clock=clock)
    for index in range(10):
        cache.put(index, b"x" * 300, ttl=60)
    stats = cache.stats
    assert stats.bytes <= 1000
    assert stats.entries == 3
    assert stats.evictions == 7
    assert cache.get(9) == b"x" * 300


def test_value_larger_than_the_bound_is_rejected_not_stored(clock: FakeClock) -> None:
    cache = ResultCache(max_bytes=100, clock=clock)
    cache.put("small", b"x", ttl=60)
    assert not cache.put("huge", b"x" * 101, ttl=60)
    assert cache.get("huge") is None
    assert cache.get("small") == b"x"
    assert cache.stats.rejected == 1


def test_invalidate_one_predicate_all(clock: FakeClock) -> None:
    cache = ResultCache(clock=clock)
    for key in [("h1", "run", "a"), ("h1", "run", "b"), ("h2", "run", "a")]:
        cache.put(key, "v", ttl=60)
    assert cache.invalidate(("h1", "run", "a")) == 1
    assert cache.invalidate(("nope",)) == 0
    assert cache.invalidate(lambda key: key[0] == "h2") == 1
    assert len(cache) == 1
    assert cache.invalidate() == 1
    assert len(cache) == 0


def test_clear_keeps_counters(clock: FakeClock) -> None:
    cache = ResultCache(clock=clock)
    cache.put("k", "v", ttl=60)
    cache.get("k")
    cache.clear()
    assert cache.get("k") is None
    assert cache.stats.hits == 1


def test_stats_repr_and_hit_rate(clock: FakeClock) -> None:
    cache = ResultCache(clock=clock)
    assert cache.stats.hit_rate == 0.0
    cache.put("k", "v", ttl=60)
    cache.get("k")
    cache.get("missing")
    assert cache.stats.hit_rate == 0.5
    assert "hit_rate=50%" in repr(cache.stats)


def test_threads_share_one_cache_consistently(clock: FakeClock) -> None:
    cache = ResultCache(max_entries=64, clock=clock)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for index in range(500):
                key = (worker, index % 50)
                cache.put(key, index, ttl=60)
                cache.get(key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    stats = cache.stats
    assert stats.entries <= 64
    assert stats.hits + stats.misses == 8 * 500
