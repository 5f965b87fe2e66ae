"""bench.compare: strategies, statistics and the Markdown summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trainlab
from trainlab.bench import compare, summarize


def test_compare_on_mock_leaves_out_the_shell_strategy() -> None:
    res = compare("mock://m", ["a", "b"], repeat=4, warmup=1, responses={"a": "1", "b": "2"})
    assert list(res.summary.index) == ["fresh", "reused", "batched", "cached"]
    assert res.notes == ["mock:// has no shell mode: the shell strategy is left out"]
    timings = res.timings
    assert set(timings.columns) == {
        "strategy",
        "command",
        "repetition",
        "seconds",
        "commands_per_call",
    }
    assert len(timings[timings.strategy == "fresh"]) == 8  # 2 commands x 4 repeats
    assert len(timings[timings.strategy == "batched"]) == 4
    assert timings.loc[timings.strategy == "batched", "commands_per_call"].unique().tolist() == [2]


def test_compare_on_local_runs_every_strategy() -> None:
    res = compare("local://", ["true"], repeat=5, warmup=1)
    summary = res.summary
    assert list(summary.index) == ["fresh", "reused", "shell", "batched", "cached"]
    assert (summary["n"] == 5).all()
    assert summary.loc["fresh", "speedup"] == pytest.approx(1.0)
    # A cached answer skips the process entirely; this is a property of the
    # strategy, not a timing claim: the cached calls never reached the transport.
    assert trainlab.sessions().empty


def test_summary_statistics_and_bootstrap_interval() -> None:
    rng = np.random.default_rng(1)
    fresh = rng.normal(10e-3, 1e-3, 200)
    fast = rng.normal(1e-3, 0.1e-3, 200)
    timings = pd.DataFrame(
        {
            "strategy": ["fresh"] * 200 + ["fast"] * 200,
            "seconds": np.concatenate([fresh, fast]),
        }
    )
    summary = summarize(timings)
    assert summary.loc["fresh", "median_ms"] == pytest.approx(np.median(fresh) * 1e3)
    assert summary.loc["fast", "p95_ms"] == pytest.approx(np.percentile(fast, 95) * 1e3)
    speedup = summary.loc["fast", "speedup"]
    assert speedup == pytest.approx(np.median(fresh) / np.median(fast))
    assert summary.loc["fast", "speedup_low"] < speedup < summary.loc["fast", "speedup_high"]
    assert summary.loc["fast", "speedup_low"] > 9
    assert summary.loc["fast", "speedup_high"] < 11


def test_markdown_has_a_table_row_per_strategy() -> None:
    res = compare("mock://m", ["a"], repeat=3, warmup=0, responses={"a": "1"})
    text = res.to_markdown()
    assert "| strategy | n | median_ms |" in text
    assert text.count("\n| ") == 1 + 4  # header + 4 strategies


def test_bad_arguments() -> None:
    with pytest.raises(trainlab.TargetError, match="unknown strategies"):
        compare("mock://m", ["a"], strategies=["warp"])
    with pytest.raises(trainlab.TargetError, match="at least one command"):
        compare("mock://m", [])
    with pytest.raises(trainlab.TargetError, match="repeat"):
        compare("mock://m", ["a"], repeat=0)


def test_significance_as_asv_judges() -> None:
    from trainlab.bench import mann_whitney_p

    rng = np.random.default_rng(5)
    same_a, same_b = rng.normal(1.0, 0.1, 60), rng.normal(1.0, 0.1, 60)
    assert mann_whitney_p(same_a, same_b) > 0.01
    assert mann_whitney_p(rng.normal(1.0, 0.1, 60), rng.normal(2.0, 0.1, 60)) < 1e-10
    timings = pd.DataFrame(
        {
            "strategy": ["fresh"] * 60 + ["same"] * 60 + ["fast"] * 60,
            "seconds": np.concatenate([same_a, same_b, rng.normal(0.2, 0.02, 60)]),
        }
    )
    summary = summarize(timings)
    assert not summary.loc["same", "significant"]
    assert summary.loc["fast", "significant"]
    assert np.isnan(summary.loc["fresh", "p_value"])


def test_progress_callback_and_bar(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[str, int, int]] = []
    compare(
        "mock://m",
        ["a"],
        repeat=2,
        warmup=1,
        responses={"a": "1"},
        progress=lambda s, done, total: seen.append((s, done, total)),
    )
    assert ("fresh", 3, 3) in seen
    assert len(seen) == 4 * 3  # four strategies, three calls each
    compare("mock://m", ["a"], repeat=2, warmup=1, responses={"a": "1"}, progress=True)
    assert "bench mock://m" in capsys.readouterr().err


def test_a_secret_in_the_query_never_reaches_the_result() -> None:
    from trainlab.bench import compare

    res = compare(
        "mock://box?password=hunter2&latency=0", ["true"], repeat=2, warmup=0, progress=False
    )
    shown = res.target + res.to_markdown() + res.to_json()
    assert "hunter2" not in shown
    assert res.target == "mock://box?latency=0"
