"""Tables that read in a notebook: floats to four significant digits, text with its line breaks.

``Table`` is a ``pandas.DataFrame`` whose data stay exact and whose display is
readable: the frames of results, metrics and benchmarks are ``Table`` frames, and
so is what slicing them returns. ``table_html(frame)`` is the same HTML for any frame,
with a small stylesheet, for the widgets (which are not styled by the notebook).
Imported only where a frame is built: it imports pandas.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

__all__ = ["TABLE_CSS", "Table", "frame_html", "short_float", "table_html"]

#: Characters of text shown per cell; the rest is elided (the data keep it all).
CELL_TEXT = 160

#: Scoped to ``.trainlab-table``: as pandas' notebook tables look, without wrapping,
#: scrolled sideways in its container when wider than the output.
TABLE_CSS = """
.trainlab-table { overflow-x: auto; max-width: 100%; }
.trainlab-table table { border-collapse: collapse; border: none; font-size: 12px;
  font-variant-numeric: tabular-nums; }
.trainlab-table th, .trainlab-table td { padding: 0.25em 0.6em; text-align: right;
  vertical-align: top; white-space: nowrap; border: none; }
.trainlab-table thead th { border-bottom: 1px solid #8c959f; font-weight: bold; }
.trainlab-table tbody tr:nth-child(odd) { background: rgba(127, 127, 127, 0.08); }
.trainlab-table tbody tr:hover { background: rgba(66, 165, 245, 0.15); }
.trainlab-table td { font-family: var(--jp-code-font-family, monospace); }
""".strip()


def short_float(value: float) -> str:
    """A float as a reader wants it: four significant digits, thousands grouped when large.

    >>> short_float(38.478048), short_float(3.019859e-11), short_float(123456.7)
    ('38.48', '3.02e-11', '123,457')
    """
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 1e4:
        return f"{value:,.0f}"
    return f"{value:.4g}"


class Table(pd.DataFrame):
    """A DataFrame shown readably (``short_float`` numbers, text with real line breaks).

    Only the display differs: values, dtypes and every pandas operation are the
    DataFrame's own, and a slice of a ``Table`` is a ``Table``.

    The HTML view (a notebook's) shows every line of a multi-line text cell. The
    text view (``repr``, ``print``, a terminal) shows its first line and `` …``
    where pandas prints a literal ``\\n``. Why not every line: a pandas text table
    is one line per row, which its readers scan by and which a wide frame, wrapped
    into blocks of columns, keeps aligned; and pandas already cuts a cell too long
    to fit with an ellipsis, so a cell with more lines reads as one more such cut.
    The line break a command's output ends with is not shown, as in the HTML. The
    data keep every line: ``frame.loc[0, "stdout"]``.

    >>> frame = Table({"command": ["ls", "id -u"], "stdout": ["a\\nb\\n", "0\\n"]})
    >>> print(frame)
      command stdout
    0      ls    a …
    1   id -u      0
    >>> frame.loc[0, "stdout"]
    'a\\nb\\n'
    """

    @property
    def _constructor(self) -> type[Table]:
        return Table

    def __repr__(self) -> str:
        with pd.option_context("display.float_format", short_float):
            return pd.DataFrame.__repr__(_first_lines(self))

    def _repr_html_(self) -> str | None:
        if pd.get_option("display.notebook_repr_html") is False:
            return None
        return frame_html(self, notebook=True)


def frame_html(
    frame: pd.DataFrame,
    *,
    notebook: bool = False,
    rows: int | None = None,
    index: bool = True,
    na_rep: str = "NaN",
) -> str:
    """``frame`` as pandas' HTML, with readable floats and text cells.

    Text keeps its line breaks (the one a command's output ends with is dropped)
    and is cut at ``CELL_TEXT`` characters; everything shown is HTML-escaped.
    ``rows`` (default: ``display.max_rows``) bounds the rows drawn.
    """
    shown = pd.DataFrame(frame, copy=True)
    for column in shown.columns:
        if not _plain(shown[column].dtype):
            shown[column] = shown[column].astype(object).map(_cell)
    shown = shown.rename(index=_label, columns=_label)
    limit = pd.get_option("display.max_rows") if rows is None else rows
    with pd.option_context("display.max_colwidth", None):
        return shown.to_html(
            escape=False,
            notebook=notebook,
            float_format=short_float,
            max_rows=limit,
            max_cols=pd.get_option("display.max_columns"),
            show_dimensions=pd.get_option("display.show_dimensions"),
            border=0,
            index=index,
            na_rep=na_rep,
        )


def table_html(
    frame: pd.DataFrame, empty: str, *, rows: int = 50, height: str = "22rem", index: bool = False
) -> str:
    """``frame`` as a styled, scrolling table for a widget; ``empty`` when it has no rows."""
    if frame.empty:
        return f"<i>{html.escape(empty)}</i>"
    body = frame_html(frame.head(rows), rows=rows, index=index, na_rep="")
    more = f"<p><i>{len(frame) - rows} more rows</i></p>" if len(frame) > rows else ""
    return (
        f"<style>{TABLE_CSS}</style>"
        f'<div class="trainlab-table" style="max-height:{height};overflow:auto">{body}</div>'
        f"{more}"
    )


def _plain(dtype: Any) -> bool:
    """Numbers, booleans and times: pandas formats them and they need no escaping."""
    return bool(
        pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
    )


def _first_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each multi-line text cell shown as its first line and `` …``.

    A long frame's repr draws rows from its first and last ``display.max_rows``
    only, so only those are rewritten; ``frame`` itself is not touched.
    """
    # By position, not label: column labels may repeat.
    texts = [n for n, dtype in enumerate(frame.dtypes) if not _plain(dtype)]
    if not texts:
        return frame
    shown = frame.copy(deep=False)  # columns set on it replace the frame's only there
    limit = pd.get_option("display.max_rows")
    drawn = len(frame) if not limit or len(frame) <= 2 * limit else limit
    for n in texts:
        column = shown.iloc[:, n].astype(object).copy()
        column.iloc[:drawn] = column.iloc[:drawn].map(_first_line).to_numpy()
        rest = len(column) - drawn
        column.iloc[rest:] = column.iloc[rest:].map(_first_line).to_numpy()
        shown.isetitem(n, column.to_numpy())
    return shown


def _first_line(value: Any) -> Any:
    """A text's first line, with `` …`` when more lines follow; any other value as it is."""
    if not isinstance(value, str):
        return value
    text = value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value
    first, newline, _ = text.partition("\n")
    if not newline:
        return text
    return first.removesuffix("\r") + " \u2026"


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return value
    text = value if isinstance(value, str) else str(value)
    if text.endswith("\n"):
        text = text[:-1]
    if len(text) > CELL_TEXT:
        text = text[: CELL_TEXT - 1] + "\u2026"
    return html.escape(text).replace("\r\n", "\n").replace("\n", "<br>")


def _label(value: Any) -> Any:
    return html.escape(value) if isinstance(value, str) else value
