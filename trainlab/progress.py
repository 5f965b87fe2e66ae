"""Progress bars for long work: a widget bar in notebooks, tqdm's text bar in terminals.

In a notebook the bar is live while the work runs; when it closes, its widget is
closed and its output is replaced, in place, by one static line (``fleet uptime:
25/25 targets in 1.3 s, 1 failed``), so a saved notebook holds text, never a
widget view whose model is gone. ``progress_bar(False, ...)`` returns a bar that
does nothing, so callers update one object either way; tqdm is imported only when
a bar is shown.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["Bar", "ProgressLine", "failures", "progress_bar"]


class ProgressLine:
    """What a finished bar leaves in the notebook: text, with an HTML form."""

    def __init__(self, text: str, *, complete: bool = True, clean: bool = True) -> None:
        self.text = text
        self.complete = complete  # every unit done
        self.clean = clean  # and none failed

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        ok = self.complete and self.clean
        mark, color = ("&#10003;", "#1a7f37") if ok else ("&#9888;", "#9a6700")
        return (
            f"<div class='trainlab-progress' style='font-size:0.9em'>"
            f"<span style='color:{color}'>{mark}</span> {html.escape(self.text)}</div>"
        )


class Bar:
    """Counts done units; ``close(outcome)`` ends it with a summary line.

    The base shows nothing (``progress=False``); subclasses draw it.
    """

    def __init__(self, *, total: int | None, desc: str, unit: str = "it") -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self.closed = False
        self.trace: ProgressLine | None = None
        self._started = time.perf_counter()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        """A note after the bar (shown by drawing bars)."""

    def line(self, outcome: str = "") -> ProgressLine:
        """The summary: ``DESC: DONE/TOTAL UNITs in S s[, OUTCOME]``."""
        elapsed = time.perf_counter() - self._started
        plural = self.unit if self.unit.endswith("s") else f"{self.unit}s"
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        unfinished = bool(self.total) and self.n < (self.total or 0)
        took = f"{elapsed * 1e3:.0f} ms" if elapsed < 1 else f"{elapsed:.1f} s"
        text = f"{self.desc}: {done} {plural} in {took}"
        if outcome:
            text += f", {outcome}"
        if unfinished:
            text += ", not finished"
        return ProgressLine(text, complete=not unfinished, clean=not outcome)

    def close(self, outcome: str = "") -> None:
        """End the bar; ``outcome`` (such as ``"1 failed"``) goes into the summary line."""
        if not self.closed:
            self.closed = True
            self.trace = self.line(outcome)


class _TextBar(Bar):
    """tqdm's bar on a terminal; it clears itself when closed."""

    def __init__(self, tqdm: Any, *, total: int | None, desc: str, unit: str) -> None:
        super().__init__(total=total, desc=desc, unit=unit)
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False)

    def update(self, n: int = 1) -> None:
        super().update(n)
        self.bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def close(self, outcome: str = "") -> None:
        if not self.closed:
            super().close(outcome)
            self.bar.close()


class _NotebookBar(_TextBar):
    """tqdm's widget bar in its own display; replaced by its summary line when closed."""

    def __init__(self, tqdm: Any, *, total: int | None, desc: str, unit: str) -> None:
        from IPython.display import display

        Bar.__init__(self, total=total, desc=desc, unit=unit)
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, display=False)
        self.handle = display(self.bar.container, display_id=True)  # type: ignore[no-untyped-call]

    def close(self, outcome: str = "") -> None:
        if self.closed:
            return
        Bar.close(self, outcome)
        if self.handle is not None:  # the output now holds text, not the widget's view
            self.handle.update(self.trace)
        self.bar.close()
        container = self.bar.container
        for widget in (*container.children, container):  # no model left in the kernel
            for part in (getattr(widget, "style", None), getattr(widget, "layout", None)):
                if part is not None:
                    part.close()
            widget.close()


def progress_bar(enabled: bool | None, *, total: int | None, desc: str, unit: str = "it") -> Bar:
    """A drawn bar when ``enabled``, else a silent ``Bar`` with the same methods.

    ``None`` means a bar if tqdm is installed; ``True`` without tqdm names the fix.
    In an IPython kernel with ipywidgets the bar is a widget that leaves a summary
    line behind (see the module docstring); elsewhere it is tqdm's text bar.
    """
    if enabled is not False:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            if enabled:
                from trainlab.errors import TargetError

                raise TargetError(
                    "progress=True needs tqdm: pip install 'trainlab[notebook]'"
                ) from None
        else:
            if _in_notebook(tqdm):
                return _NotebookBar(tqdm, total=total, desc=desc, unit=unit)
            return _TextBar(tqdm, total=total, desc=desc, unit=unit)
    return Bar(total=total, desc=desc, unit=unit)


def failures(oks: Iterable[bool]) -> str:
    """``"N failed"`` for the false ones among ``oks``, or ``""`` when none: a bar's outcome."""
    failed = sum(1 for ok in oks if not ok)
    return f"{failed} failed" if failed else ""


def _in_notebook(tqdm: Any) -> bool:
    """True when tqdm.auto chose its widget bar (an IPython kernel with ipywidgets)."""
    try:
        from tqdm.notebook import tqdm as widget_bar
    except ImportError:  # pragma: no cover - tqdm.auto imports it first
        return False
    return isinstance(tqdm, type) and issubclass(tqdm, widget_bar)
