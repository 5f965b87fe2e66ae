"""Shared fixtures: an injectable clock, and no session outliving its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import trainlab

pytest_plugins = ["tests.servers", "tests.shells"]


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
