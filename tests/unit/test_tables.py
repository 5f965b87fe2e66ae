"""Frames that read: floats shown short but kept exact, text with its line breaks, escaped."""

from __future__ import annotations

import pandas as pd

import trainlab
from trainlab.bench import compare, overview
from trainlab.tables import Table, frame_html, short_float


def test_summary_is_exact_and_shown_rounded() -> None:
    result = compare("mock://t", ["true"], repeat=5, warmup=0, responses={"true": 0})
    summary = result.summary
    assert isinstance(summary, Table)
    exact = float(summary.loc["fresh", "median_ms"])
    assert exact != round(exact, 2)  # the data keep every digit
    page = summary._repr_html_()
    assert f"<td>{short_float(exact)}</td>" in page
    assert repr(exact) not in page
    assert short_float(exact) in repr(summary)
    assert f"{exact:.6f}" not in repr(summary)
    assert isinstance(overview([result]), Table)
    assert isinstance(summary[["median_ms"]], Table)  # a slice reads the same way


def test_session_summary_and_metrics_read_the_same_way() -> None:
    s = trainlab.connect("mock://sum", reuse=False, responses={"a": 0})
    s.run("a")
    assert isinstance(s.summary(), Table)
    assert isinstance(s.metrics, Table)
    s.close()


def test_stdout_keeps_its_line_breaks_and_is_escaped() -> None:
    s = trainlab.connect("mock://text", reuse=False, responses={"a": "sh\n", "b": "one\n<two>\n"})
    frame = s.run_many(["a", "b"]).frame
    assert frame["stdout"].tolist() == ["sh\n", "one\n<two>\n"]  # the data, unchanged
    page = frame[["command", "stdout"]]._repr_html_()
    assert "\\n" not in page
    assert "<td>sh</td>" in page
    assert "<td>one<br>&lt;two&gt;</td>" in page
    s.close()


def test_labels_and_odd_cells_are_escaped_and_long_text_is_cut() -> None:
    frame = pd.DataFrame({"<col>": ["x" * 500, None], "n": [1.23456789, float("nan")]})
    frame.index = ["<a>", "b"]
    page = frame_html(frame)
    assert "<col>" not in page
    assert "&lt;col&gt;" in page
    assert "&lt;a&gt;" in page
    assert "x" * 500 not in page
    assert "x" * 100 in page
    assert "<td>1.235</td>" in page
