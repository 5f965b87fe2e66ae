"""Benchmark plots (by their Axes data) and the shareable report (by its HTML)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import trainlab
from trainlab.bench import BenchResult
from trainlab.plots import bench_figure


def result() -> BenchResult:
    rng = np.random.default_rng(3)
    rows = []
    for strategy, center in (("fresh", 20e-3), ("reused", 2e-3), ("shell", 3e-4), ("cached", 1e-5)):
        for n, value in enumerate(rng.normal(center, center / 10, 40)):
            rows.append(
                {
                    "strategy": strategy,
                    "command": "true",
                    "repetition": n,
                    "seconds": abs(value),
                    "commands_per_call": 1,
                }
            )
    return BenchResult(
        target="ssh://lab@web1",
        commands=["true"],
        timings=pd.DataFrame(rows),
        started=datetime(2026, 11, 28, tzinfo=UTC),
        repeat=40,
        warmup=3,
        notes=["a note <with markup>"],
    )


def test_bar_heights_are_the_medians_on_a_log_axis() -> None:
    res = result()
    figure = res.plot("bar")
    [ax] = figure.axes
    heights = [patch.get_height() for patch in ax.patches]
    expected = res.timings.groupby("strategy", sort=False)["seconds"].median() * 1e3
    assert heights == pytest.approx(expected.tolist())
    assert ax.get_yscale() == "log"  # 20 ms down to 10 us
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fresh", "reused", "shell", "cached"]


def test_narrow_ranges_stay_linear_and_kinds() -> None:
    narrow = result().timings.query("strategy in ['fresh', 'reused']")
    for kind in ("bar", "box", "strip"):
        ax = bench_figure(narrow[narrow.strategy == "fresh"], kind=kind).axes[0]
        assert ax.get_yscale() == "linear"
    strip = bench_figure(result().timings, kind="strip").axes[0]
    assert sum(len(c.get_offsets()) for c in strip.collections) == 160
    with pytest.raises(trainlab.TargetError, match="kind must be one of"):
        bench_figure(narrow, kind="pie")


def _drawn(figure: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


@pytest.mark.parametrize("log", [True, False])
def test_bar_labels_sit_above_the_whiskers_inside_the_axes(log: bool) -> None:
    figure = result().plot("bar", log=log)
    renderer = _drawn(figure)
    [ax] = figure.axes
    labels = [t for t in ax.texts if t.get_text()]
    assert len(labels) == 4
    area = ax.get_window_extent(renderer)
    segments = [
        ax.transData.transform(segment)
        for collection in ax.collections  # the error bars' vertical lines
        for segment in collection.get_segments()
    ]
    assert len(segments) == 4
    for label in labels:
        box = label.get_window_extent(renderer)
        assert area.y0 <= box.y0, label.get_text()  # inside the axes
        assert box.y1 <= area.y1, label.get_text()
        middle = (box.x0 + box.x1) / 2
        under = [s for s in segments if abs(s[:, 0].mean() - middle) < 2]
        assert len(under) == 1, label.get_text()
        assert box.y0 >= under[0][:, 1].max(), label.get_text()  # above its whisker's top


def test_overview_legend_is_outside_the_bars() -> None:
    from trainlab.bench import overview
    from trainlab.plots import overview_figure

    first, second = result(), result()
    second.label = "far"
    figure = overview_figure(overview([first, second]))
    renderer = _drawn(figure)
    [ax] = figure.axes
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1  # right of the plotting area
    for bar in ax.patches:
        assert not legend.overlaps(bar.get_window_extent(renderer))
    assert legend.x1 <= figure.bbox.x1 + 1  # and still on the figure


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name == "src" and value:
                self.sources.append(value)
            if name == "href" and value:
                self.links.append(value)


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    page = result().to_html(str(path))
    assert path.read_text() == page
    parsed = _Collect()
    parsed.feed(page)
    assert parsed.tags.count("table") == 2  # the summary and the environment
    assert len(parsed.sources) == 2
    assert all(src.startswith("data:image/png;base64,") for src in parsed.sources)
    assert not parsed.links
    assert not re.search(r"(src|href)=['\"]https?://", page)
    assert "a note &lt;with markup&gt;" in page
    for word in ("pandas", "python", "ssh://lab@web1"):
        assert word in page


def test_json_and_markdown() -> None:
    res = result()
    payload = json.loads(res.to_json())
    assert payload["target"] == "ssh://lab@web1"
    assert len(payload["timings"]) == 160
    assert {row["strategy"] for row in payload["summary"]} == {"fresh", "reused", "shell", "cached"}
    assert "pandas" in payload["environment"]
    assert res.to_markdown().count("\n| ") == 5
    assert res.round_trip_ms() == pytest.approx(
        res.timings.query("strategy == 'shell'")["seconds"].median() * 1e3
    )
    assert "<table" in res._repr_html_()
