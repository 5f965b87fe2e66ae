"""Shared fixtures: an injectable clock, and no session outliving its test."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

import trainlab

pytest_plugins = ["tests.servers", "tests.shells"]


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped by SIGTERM (``timeout``, a CI limit, scripts/drift.py) still tears
    down, as on Ctrl-C: the fixtures that create system users, a chroot and a sudoers
    file remove them."""

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut teardown short
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


class FakeClock:
    """A monotonic clock that moves only when told (cachetools' Timer.tick idea)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    trainlab.close_all()
