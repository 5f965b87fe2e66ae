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
    """

    @property
    def _constructor(self) -> type[Table]:
        return Table

    def __repr__(self) -> str:
        with pd.option_context("display.float_format", short_float):
            return super().__repr__()

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
