"""Timing loops shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(call: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median milliseconds of ``repeat`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def blocks_ms(
    calls: dict[str, Callable[[], object]], repeat: int, block: int = 200, warmup: int = 50
) -> dict[str, float]:
    """Median ms per call. Each pattern runs in tight blocks of ``block`` calls (as a
    user's loop would), and the blocks alternate so drift hits every pattern alike."""
    samples = blocks_samples(calls, repeat, block, warmup)
    return {name: statistics.median(values) * 1e3 for name, values in samples.items()}


def blocks_samples(
    calls: dict[str, Callable[[], object]], repeat: int, block: int = 200, warmup: int = 50
) -> dict[str, list[float]]:
    """Every call's seconds, timed as ``blocks_ms`` times them."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    rounds = max(1, repeat // block)
    for _ in range(rounds):
        for name, call in calls.items():
            bucket = samples[name]
            for _ in range(min(block, repeat)):
                t0 = time.perf_counter()
                call()
                bucket.append(time.perf_counter() - t0)
    return samples


def percentile_ms(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (seconds), in ms (nearest rank)."""
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank] * 1e3


def print_columns(title: str, results: dict[str, dict[str, float]]) -> None:
    """A table of patterns (rows, in the first column's order) by columns, ms."""
    names = list(next(iter(results.values())))
    width = max(len(title), *(len(n) for n in names))
    print(f"{title:<{width}}  " + "  ".join(f"{c:>12}" for c in results))
    for name in names:
        cells = "  ".join(f"{results[c].get(name, float('nan')):12.2f}" for c in results)
        print(f"{name:<{width}}  {cells}")
