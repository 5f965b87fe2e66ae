"""Timing records, thresholds and summaries, with injected clocks."""

from __future__ import annotations

import logging

import pandas as pd
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


# ------------------------------------------------- ok, exit_status, transport_ok


def test_a_failed_command_is_not_ok_though_its_transport_was() -> None:
    import trainlab

    s = trainlab.connect(
        "mock://m-exit",
        reuse=False,
        cache_failures=True,
        responses={"false": 1, "true": 0, "echo hi": "hi\n"},
    )
    s.run("false")
    s.run("true")
    s.run_many(["true", "false"])
    s.run_many(["echo hi", "true"])
    s.run("false", ttl=60)
    s.run("false", ttl=60)  # a cache hit keeps the exit status it was cached with
    frame = s.metrics
    assert list(frame.columns) == list(COLUMNS)
    assert str(frame["exit_status"].dtype) == "Int64"
    rows = frame[frame["operation"] != "connect"]
    assert rows[["operation", "command", "ok", "exit_status", "transport_ok"]].astype(
        object
    ).values.tolist() == [
        ["run", "false", False, 1, True],
        ["run", "true", True, 0, True],
        ["batch", "2 commands", False, pd.NA, True],
        ["batch", "2 commands", True, pd.NA, True],
        ["run", "false", False, 1, True],
        ["run", "false", False, 1, True],
    ]
    assert rows["cached"].tolist() == [False, False, False, False, False, True]
    assert rows["detail"].iloc[2].endswith("1 of 2 failed")
    connect = frame[frame["operation"] == "connect"].iloc[0]
    assert (connect["ok"], connect["transport_ok"], connect["exit_status"]) == (True, True, pd.NA)
    assert s.summary().loc["run", "failed"] == 3  # the commands that exited non-zero
    s.close()


def test_a_raised_error_is_neither_ok_nor_transport_ok(clock: FakeClock) -> None:
    metrics = Metrics(clock=clock, memory=lambda: None)
    with pytest.raises(OSError), metrics.measure("run", target="t", transport="ssh"):
        raise OSError("reset")
    [row] = metrics.records()
    assert (row.ok, row.transport_ok, row.exit_status) == (False, False, None)


def test_one_by_one_batches_take_their_commands_outcome() -> None:
    import trainlab

    s = trainlab.connect("mock://m-slow", reuse=False, responses={"a": 0, "b": 3}, batch=False)
    s.run_many(["a", "b"])
    frame = s.metrics
    batch = frame[frame["operation"] == "batch"].iloc[0]
    assert (batch["ok"], batch["transport_ok"]) == (False, True)
    runs = frame[frame["operation"] == "run"]
    assert runs["exit_status"].tolist() == [0, 3]
    s.close()
