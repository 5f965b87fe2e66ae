"""Plots as pure functions: a DataFrame in, a matplotlib Figure out.

``bench_figure(timings)`` compares the strategies of a benchmark (fresh and
reused, shell, batched, cached) per command, in milliseconds, on a log axis when
the values span more than a factor of 20.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["KINDS", "bench_figure", "overview_figure"]

KINDS = ("bar", "box", "strip")
_COLORS = {
    "fresh": "#cf222e",
    "reused": "#bf8700",
    "shell": "#1a7f37",
    "batched": "#0969da",
    "cached": "#8250df",
}


def bench_figure(
    timings: pd.DataFrame,
    *,
    kind: str = "bar",
    title: str = "",
    log: bool | None = None,
    order: Sequence[str] | None = None,
) -> Figure:
    """Time per command by strategy.

    Parameters
    ----------
    timings
        One row per timed call with ``strategy`` and ``seconds`` columns
        (``BenchResult.timings``).
    kind
        ``bar`` (median, whiskers to p5 and p95), ``box`` or ``strip`` (every call).
    log
        A log axis; ``None`` chooses one when max/min passes 20.
    """
    # A bare Figure, not pyplot: no backend is touched, nothing global changes,
    # and notebooks still display it inline.
    from matplotlib.figure import Figure as MplFigure

    _show_in_notebooks()
    if kind not in KINDS:
        from trainlab.errors import TargetError

        raise TargetError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    names = list(order or dict.fromkeys(timings["strategy"]))
    values = [timings.loc[timings["strategy"] == n, "seconds"].to_numpy() * 1e3 for n in names]
    figure = MplFigure(figsize=(7, 3.6), layout="constrained")
    ax = figure.add_subplot()
    colors = [_COLORS.get(n, "#57606a") for n in names]
    positions = list(range(len(names)))
    tops: list[float] = []  # each bar's whisker top, where its label goes
    if kind == "bar":
        import numpy as np

        medians = [float(np.median(v)) if len(v) else 0.0 for v in values]
        low = [
            m - float(np.percentile(v, 5)) if len(v) else 0.0
            for m, v in zip(medians, values, strict=True)
        ]
        high = [
            float(np.percentile(v, 95)) - m if len(v) else 0.0
            for m, v in zip(medians, values, strict=True)
        ]
        ax.bar(positions, medians, color=colors, yerr=[low, high], capsize=4)
        tops = [m + h for m, h in zip(medians, high, strict=True)]
        for x, m, top in zip(positions, medians, tops, strict=True):
            ax.annotate(  # the median, above its whisker: no label crosses a whisker
                _label(m),
                (x, top),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 3),
                textcoords="offset points",
            )
    elif kind == "box":
        parts = ax.boxplot(values, positions=positions, patch_artist=True, showfliers=False)
        for patch, color in zip(parts["boxes"], colors, strict=True):
            patch.set_facecolor(color)
            patch.set_alpha(0.6)
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        for x, v, color in zip(positions, values, colors, strict=True):
            ax.scatter(x + rng.uniform(-0.2, 0.2, len(v)), v, s=8, color=color, alpha=0.6)
    ax.set_xticks(positions, names)
    ax.set_ylabel("ms per command")
    everything = [x for v in values for x in v if x > 0]
    wide = bool(everything) and max(everything) / min(everything) > 20
    logarithmic = log if log is not None else wide
    if logarithmic:
        ax.set_yscale("log")
    if tops and max(tops) > 0:  # headroom for the labels over the whiskers
        ax.set_ylim(top=max(tops) * (3.0 if logarithmic else 1.2))
    ax.set_title(title or "time per command by strategy", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return figure


def overview_figure(table: pd.DataFrame, *, title: str = "") -> Figure:
    """Median ms per command: a group of bars per target, one bar per strategy, log axis.

    ``table`` is ``trainlab.bench.overview(results)`` (index: target, strategy).
    """
    from matplotlib.figure import Figure as MplFigure

    _show_in_notebooks()
    medians = table["median_ms"].unstack("strategy")
    targets = list(dict.fromkeys(table.index.get_level_values("target")))
    strategies = list(dict.fromkeys(table.index.get_level_values("strategy")))
    medians = medians.reindex(index=targets, columns=strategies)
    figure = MplFigure(figsize=(max(7.0, 1.1 * len(targets) + 2), 4), layout="constrained")
    ax = figure.add_subplot()
    width = 0.8 / max(len(strategies), 1)
    for index, name in enumerate(strategies):
        xs = [t + (index - (len(strategies) - 1) / 2) * width for t in range(len(targets))]
        ax.bar(
            xs,
            medians[name].fillna(0).to_numpy(),
            width,
            label=name,
            color=_COLORS.get(name, "#57606a"),
        )
    ax.set_xticks(range(len(targets)), targets, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median ms per command (log)")
    # Outside the axes, right of them: a legend inside would sit on some target's bars.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or "every target, every strategy", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return figure


def _label(ms: float) -> str:
    return f"{ms * 1000:.0f} us" if ms < 1 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def _show_in_notebooks() -> None:
    """Let IPython display a bare Figure as PNG even when pyplot was never imported.

    IPython's inline backend registers that formatter only once pyplot is loaded;
    these figures deliberately avoid pyplot, so a notebook would show only
    ``<Figure size ...>``. Registering is idempotent and does nothing outside IPython.
    """
    ipython = sys.modules.get("IPython")  # a notebook has imported it already
    if ipython is None:
        return
    shell = ipython.get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure as MplFigure

    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(MplFigure)
    except KeyError:
        formatter.for_type(MplFigure, figure_png)


def figure_png(figure: Any) -> bytes:
    """The figure as PNG bytes."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def figure_img(figure: Any, alt: str) -> str:
    """The figure as an HTML ``<img>`` with the PNG inside: a page that stands alone."""
    import base64

    data = base64.b64encode(figure_png(figure)).decode()
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'
