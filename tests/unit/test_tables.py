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


# -- the text view: one line per row, the data exact --------------------------------------


def test_text_view_shows_a_multi_line_cell_as_its_first_line() -> None:
    s = trainlab.connect("mock://text", reuse=False, responses={"a": "sh\n", "b": "one\n<two>\n"})
    frame = s.run_many(["a", "b"]).frame[["command", "stdout"]]
    shown = repr(frame)
    assert "\\n" not in shown
    lines = shown.splitlines()
    assert len(lines) == 3  # the header and one line per row
    assert lines[1].split() == ["0", "a", "sh"]  # the output's final line break is not shown
    assert lines[2].split() == ["1", "b", "one", "\u2026"]
    assert "<two>" not in shown
    assert str(frame) == shown  # print() shows the same
    assert frame["stdout"].tolist() == ["sh\n", "one\n<two>\n"]  # the data, unchanged
    s.close()


def test_text_view_keeps_columns_aligned_and_other_values_as_they_are() -> None:
    frame = Table(
        {
            "text": ["first\nsecond", "a\r\nb\r\n", "\nlead", "plain", None],
            "number": [1.23456789, 2.0, 3.0, 4.0, 5.0],
            "raw": [b"x\ny", 1, ["l", "m"], "tab\there", "ok\n"],
        }
    )
    lines = repr(frame).splitlines()
    assert len(lines) == 1 + len(frame)
    assert lines[1].split() == ["0", "first", "\u2026", "1.235", "b'x\\ny'"]  # bytes: pandas' own
    assert lines[2].split()[:3] == ["1", "a", "\u2026"]  # \r\n is a line break too
    assert lines[3].split()[:2] == ["2", "\u2026"]  # an empty first line
    assert lines[4].split()[:2] == ["3", "plain"]
    assert lines[5].split()[:3] == ["4", "NaN", "5"]
    assert "tab\\there" in lines[4]  # a tab stays escaped, as pandas shows it
    assert lines[5].split()[-1] == "ok"
    number_end = lines[0].index("number") + len("number")
    for line in lines[1:]:  # right-aligned: every row as wide as the header, numbers under theirs
        assert len(line) == len(lines[0])
        assert line[number_end - 1] != " "
        assert line[number_end] == " "
    assert frame.loc[0, "text"] == "first\nsecond"  # the data keep every line
    assert frame.loc[1, "text"] == "a\r\nb\r\n"
    assert frame["text"].dtype == Table({"t": ["x"]})["t"].dtype  # and their dtype


def test_text_view_of_a_long_frame_rewrites_only_the_rows_it_draws() -> None:
    rows = 10_000
    frame = Table({"out": [f"row {i}\nmore" for i in range(rows)], "n": range(rows)})
    with pd.option_context("display.max_rows", 20, "display.min_rows", 6):
        shown = repr(frame)
    assert "\\n" not in shown
    assert "row 0 \u2026" in shown
    assert f"row {rows - 1} \u2026" in shown
    assert f"[{rows} rows x 2 columns]" in shown
    assert frame.loc[5000, "out"] == "row 5000\nmore"


def test_text_view_with_repeated_column_labels() -> None:
    frame = Table([["a\nb", "c\nd"]], columns=["x", "x"])
    assert repr(frame).splitlines()[1].split() == ["0", "a", "\u2026", "c", "\u2026"]
    assert frame.iloc[0, 1] == "c\nd"
