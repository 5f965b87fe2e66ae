"""Progress bars: what a finished bar leaves behind, and the silent stand-in."""

from __future__ import annotations

import re

import pytest

from trainlab.progress import Bar, failures, progress_bar


def test_silent_bar_counts_and_summarises() -> None:
    bar = progress_bar(False, total=12, desc="fleet uptime", unit="target")
    assert type(bar) is Bar
    bar.update(10)
    bar.update(2)
    bar.close(failures([True] * 11 + [False]))
    assert bar.trace is not None
    assert re.fullmatch(r"fleet uptime: 12/12 targets in [\d.]+ (s|ms), 1 failed", repr(bar.trace))
    assert bar.trace.complete
    assert "&#10003;" not in bar.trace._repr_html_()  # failures are marked, not ticked


def test_an_unfinished_bar_says_so() -> None:
    bar = progress_bar(False, total=5, desc="run_many local://", unit="cmd")
    bar.update(2)
    bar.close()
    assert bar.trace is not None
    assert re.fullmatch(
        r"run_many local://: 2/5 cmds in [\d.]+ (s|ms), not finished", repr(bar.trace)
    )
    assert not bar.trace.complete
    bar.close("again")  # closing twice changes nothing
    assert "again" not in repr(bar.trace)


def test_failures_note() -> None:
    assert failures([True, True]) == ""
    assert failures([True, False, False]) == "2 failed"


def test_terminal_bar_is_tqdms_text_bar(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress_bar(True, total=3, desc="bench local://", unit="call")
    assert type(bar).__name__ == "_TextBar"
    bar.update(3)
    bar.close()
    assert "bench local://" in capsys.readouterr().err  # drawn, then cleared
