"""Timing records, thresholds and summaries, with injected clocks."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import FakeClock
from trainlab.metrics import COLUMNS, Metrics, rss_bytes


def test_measure_records_duration_failure_and_memory(clock: FakeClock) -> None:
    rss = iter([1000, 5000])
    metrics = Metrics(clock=clock, memory=lambda: next(rss))
    with metrics.measure("run", target="t", transport="local", command="ls") as record:
        clock.tick(0.25)
        record.bytes = 42
    [row] = metrics.records()
    assert (row.operation, row.duration_s, row.bytes, row.ok, row.mem_delta) == (
        "run",
        0.25,
        42,
        True,
        4000,
    )


def test_failure_is_recorded_and_reraised(clock: FakeClock) -> None:
    metrics = Metrics(clock=clock, memory=lambda: None)
    with (
        pytest.raises(RuntimeError),
        metrics.measure("connect", target="t", transport="ssh"),
    ):
        raise RuntimeError("boom")
    [row] = metrics.records()
    assert not row.ok
    assert row.error == "RuntimeError"
    assert row.mem_delta is None


def test_slow_operation_is_logged_against_its_threshold(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics(clock=clock, thresholds={"run": 1.0}, memory=lambda: None)
    caplog.set_level(logging.WARNING, logger="trainlab.metrics")
    with metrics.measure("run", target="web1", transport="ssh", command="fast"):
        clock.tick(0.5)
    assert not caplog.records
    with metrics.measure("run", target="web1", transport="ssh", command="slow one"):
        clock.tick(2.0)
    [message] = [r.getMessage() for r in caplog.records]
    assert message == "slow run on web1: 2.000s (threshold 1.000s) slow one"


def test_buffer_is_bounded(clock: FakeClock) -> None:
    metrics = Metrics(maxlen=10, clock=clock, memory=lambda: None)
    for index in range(25):
        with metrics.measure("run", target="t", transport="x", command=str(index)):
            pass
    assert len(metrics) == 10
    assert metrics.total == 25
    assert metrics.records()[0].command == "15"


def test_frame_and_summary(clock: FakeClock) -> None:
    metrics = Metrics(clock=clock, memory=lambda: None)
    for seconds in (0.1, 0.2, 0.3):
        with metrics.measure("run", target="t", transport="x"):
            clock.tick(seconds)
    with pytest.raises(ValueError), metrics.measure("read", target="t", transport="x"):
        raise ValueError
    frame = metrics.frame()
    assert list(frame.columns) == list(COLUMNS)
    assert frame["duration_s"].dtype == "float64"
    summary = metrics.summary()
    assert summary.loc["run", "count"] == 3
    assert summary.loc["run", "median_s"] == pytest.approx(0.2)
    assert summary.loc["read", "failed"] == 1


def test_empty_frames_keep_their_columns() -> None:
    metrics = Metrics()
    assert list(metrics.frame().columns) == list(COLUMNS)
    assert metrics.summary().empty


def test_command_is_clipped(clock: FakeClock) -> None:
    metrics = Metrics(clock=clock, memory=lambda: None)
    with metrics.measure("run", target="t", transport="x", command="x" * 1000):
        pass
    assert len(metrics.records()[0].command) == 200


def test_rss_probe_reads_this_process() -> None:
    value = rss_bytes()
    assert value is not None
    assert value > 1_000_000
