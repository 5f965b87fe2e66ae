"""The result cache: per-entry TTL, bounded by entry count and by total bytes.

Built on ``cachetools.TLRUCache`` (the per-item-TTL sibling of ``TTLCache``) under a
lock, with an injectable clock so tests never sleep. Keys always begin with the
target identity, so answers never cross identities.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import cachetools

__all__ = ["CacheStats", "ResultCache"]

V = TypeVar("V")

DEFAULT_MAX_ENTRIES = 1024
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of cache counters."""

    hits: int
    misses: int
    evictions: int
    expirations: int
    rejected: int  # values larger than the byte bound, never stored
    seconds_saved: float
    entries: int
    bytes: int
    max_entries: int
    max_bytes: int

    @property
    def hit_rate(self) -> float:
        """Hits over lookups; 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __repr__(self) -> str:
        return (
            f"<CacheStats hits={self.hits} misses={self.misses} hit_rate={self.hit_rate:.0%} "
            f"entries={self.entries}/{self.max_entries} bytes={self.bytes:,}/{self.max_bytes:,} "
            f"evictions={self.evictions} saved={self.seconds_saved:.3f}s>"
        )


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires: float
    size: int
    cost: float  # seconds the original call took: what a hit saves


class _Store(cachetools.TLRUCache[Hashable, _Entry[Any]]):
    """TLRUCache that counts evictions (size pressure) apart from expirations."""

    def __init__(self, max_bytes: int, timer: Callable[[], float]) -> None:
        super().__init__(
            maxsize=max_bytes,
            ttu=lambda _key, entry, _now: entry.expires,
            timer=timer,
            getsizeof=lambda entry: entry.size,
        )
        self.evictions = 0

    def popitem(self) -> tuple[Hashable, _Entry[Any]]:
        item = super().popitem()
        self.evictions += 1
        return item


class ResultCache:
    """A thread-safe TTL cache of results.

    >>> t = [0.0]
    >>> cache = ResultCache(clock=lambda: t[0])
    >>> cache.put(("local", "run", "date"), "Mon", ttl=60, cost=0.01)
    True
    >>> cache.get(("local", "run", "date"))
    'Mon'
    >>> t[0] = 61.0
    >>> cache.get(("local", "run", "date")) is None
    True

    Parameters
    ----------
    max_entries, max_bytes
        Both bounds hold at once; the least recently used entries go first.
    clock
        Seconds as a float, monotonic; ``time.monotonic`` unless a test injects one.
    sizeof
        Bytes a value occupies; results report their output length.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
        sizeof: Callable[[Any], int] | None = None,
    ) -> None:
        self._clock = clock
        self._sizeof = sizeof or _default_sizeof
        self._lock = threading.Lock()
        self._store = _Store(max_bytes, clock)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._hits = 0
        self._misses = 0
        self._expirations = 0
        self._rejected = 0
        self._saved = 0.0

    def get(self, key: Hashable) -> Any | None:
        """The live value for ``key``, or ``None`` (a miss)."""
        with self._lock:
            self._expire()
            entry = self._store.get(key)
            if entry is None:
                self._misses += 1
                return None
            self._hits += 1
            self._saved += entry.cost
            return entry.value

    def put(self, key: Hashable, value: Any, *, ttl: float, cost: float = 0.0) -> bool:
        """Store ``value`` for ``ttl`` seconds; False when it is larger than the byte bound."""
        if ttl <= 0:
            return False
        size = max(1, int(self._sizeof(value)))
        if size > self.max_bytes:
            with self._lock:
                self._rejected += 1
                self._store.pop(key, None)
            return False
        entry = _Entry(value, self._clock() + ttl, size, cost)
        with self._lock:
            self._store[key] = entry
            while len(self._store) > self.max_entries:
                self._store.popitem()
        return True

    def invalidate(self, match: Callable[[Hashable], bool] | Hashable | None = None) -> int:
        """Drop one key, every key a predicate accepts, or (``None``) everything.

        Returns the number of entries dropped.
        """
        with self._lock:
            if match is None:
                count = len(self._store)
                self._store.clear()
                return count
            if callable(match):
                doomed = [key for key in list(self._store.keys()) if match(key)]
            else:
                doomed = [match] if match in self._store else []
            for key in doomed:
                self._store.pop(key, None)
            return len(doomed)

    def clear(self) -> None:
        """Drop every entry (the counters stay)."""
        self.invalidate(None)

    def _expire(self) -> None:
        expired = self._store.expire()
        self._expirations += len(expired)

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._store)

    @property
    def stats(self) -> CacheStats:
        """Counters and current size."""
        with self._lock:
            self._expire()
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._store.evictions,
                expirations=self._expirations,
                rejected=self._rejected,
                seconds_saved=self._saved,
                entries=len(self._store),
                bytes=int(self._store.currsize),
                max_entries=self.max_entries,
                max_bytes=self.max_bytes,
            )

    def __repr__(self) -> str:
        return f"<ResultCache {self.stats!r}>"


def _default_sizeof(value: Any) -> int:
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    if isinstance(value, bytes | bytearray | str):
        return len(value)
    return 256
