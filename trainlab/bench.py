"""Benchmarks as a feature: how much do reuse, a kept shell, batching and caching save?

``compare(target, commands)`` times each strategy against the same target in one
run and returns a ``BenchResult``: the raw timings and a summary with the median,
p95, IQR and the speedup over ``fresh`` with a bootstrap 95% interval.

Strategies
----------
fresh    a new session (connection) per command, opened and closed each time
reused   one kept session, a process or channel per command (``mode=exec``)
shell    one kept session with one persistent shell (``mode=shell``)
batched  all commands in one ``run_many`` round trip on the kept shell
cached   answers from the session cache after the first call
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from trainlab.errors import TargetError
from trainlab.progress import progress_bar
from trainlab.registry import transport_class
from trainlab.session import Session, connect
from trainlab.uri import parse_target

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "STRATEGIES",
    "TIMING_COLUMNS",
    "BenchResult",
    "compare",
    "markdown_table",
    "overview",
    "time_calls",
    "timings_frame",
]

#: What ``compare`` times, in this order: a connection per command, a kept connection, a
#: kept shell, every command in one round trip, and the session's cache.
STRATEGIES = ("fresh", "reused", "shell", "batched", "cached")


@dataclass
class BenchResult:
    """Raw timings (one row per timed call) and what they mean."""

    target: str
    commands: list[str]
    timings: pd.DataFrame
    started: datetime
    repeat: int
    warmup: int
    notes: list[str] = field(default_factory=list)
    seed: int = 0
    label: str = ""

    @property
    def title(self) -> str:
        """The label given to ``compare``, else the target."""
        return self.label or self.target

    @property
    def summary(self) -> pd.DataFrame:
        """Per strategy: n, median_ms, p95_ms, iqr_ms, speedup over fresh and its 95% interval."""
        return summarize(self.timings, baseline="fresh", seed=self.seed)

    def to_markdown(self) -> str:
        """The summary as a Markdown table with a heading line."""
        lines = [
            f"**{self.title}**: {', '.join(f'`{c}`' for c in self.commands)}, "
            f"{self.repeat} repeats after {self.warmup} warm-up, "
            f"{self.started:%Y-%m-%d %H:%M} UTC",
            "",
            markdown_table(self.summary.reset_index()),
        ]
        lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)

    def plot(self, kind: str = "bar", *, log: bool | None = None) -> Any:
        """A matplotlib Figure: ``bar`` (median, p5-p95), ``box`` or ``strip``."""
        from trainlab.plots import bench_figure

        return bench_figure(self.timings, kind=kind, title=self.title, log=log)

    def to_html(self, path: str | None = None) -> str:
        """A self-contained HTML report (plots embedded); written to ``path`` if given."""
        from trainlab.report import to_html

        return to_html(self, path)

    def to_json(self) -> str:
        """Timings, summary and environment as JSON."""
        from trainlab.report import to_json

        return to_json(self)

    def round_trip_ms(self) -> float | None:
        """The median of the kept-connection strategy (shell, else reused), in ms."""
        for name in ("shell", "reused"):
            chosen = self.timings.loc[self.timings["strategy"] == name, "seconds"]
            if len(chosen):
                return float(chosen.median() * 1e3)
        return None

    def _repr_html_(self) -> str:
        """The summary table and the bar plot (embedded), as a notebook shows them."""
        import html

        from trainlab.plots import figure_img

        table = self.summary.to_html(float_format=lambda x: f"{x:.4g}", border=0)
        image = ""
        if not self.timings.empty:
            image = figure_img(self.plot(), "bar plot")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<div><b>{html.escape(self.title)}</b>{table}{image}"
            f"{f'<ul>{notes}</ul>' if notes else ''}</div>"
        )

    def __repr__(self) -> str:
        return (
            f"<BenchResult {self.target} {len(self.timings)} timings>\n{self.summary.to_string()}"
        )


def compare(
    target: str,
    commands: Sequence[str],
    *,
    strategies: Sequence[str] = STRATEGIES,
    repeat: int = 30,
    warmup: int = 3,
    progress: bool | Callable[[str, int, int], None] = False,
    label: str = "",
    **options: Any,
) -> BenchResult:
    """Time ``commands`` on ``target`` under each strategy, side by side in one run.

    Strategies the target cannot do (``shell`` on a transport without a shell
    mode) are left out with a note. ``options`` go to ``connect``. ``progress=True``
    shows a tqdm bar (in notebooks and terminals); a callable gets
    ``(strategy, done, total)`` after every call. ``label`` names the result in
    tables, plots and reports (default: the target).

    >>> res = compare("mock://m", ["true"], repeat=3, warmup=1, responses={"true": 0})
    >>> list(res.summary.index)
    ['fresh', 'reused', 'batched', 'cached']
    """
    if repeat < 1 or warmup < 0:
        raise TargetError("repeat must be >= 1 and warmup >= 0")
    commands = list(commands)
    if not commands:
        raise TargetError("give at least one command to benchmark")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise TargetError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    parsed = parse_target(target)
    cls = transport_class(parsed.scheme)
    modes = cls.options.get("mode")
    has_shell = modes is not None and modes.choices is not None and "shell" in modes.choices
    options = {k: v for k, v in options.items() if k != "mode"}
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    started = datetime.now(UTC)
    per_strategy = {"batched": 1}
    total = sum(per_strategy.get(s, len(commands)) for s in strategies) * (warmup + repeat)
    bar = progress_bar(progress is True, total=total, desc=f"bench {parsed}", unit="call")

    def timed(strategy: str, label: str, call: Callable[[], Any], per: int = 1) -> None:
        def tick(done: int) -> None:
            bar.update(1)
            if callable(progress):
                progress(strategy, done, warmup + repeat)

        rows.extend(
            time_calls(strategy, label, call, repeat=repeat, warmup=warmup, per=per, after=tick)
        )

    exec_mode = {"mode": "exec"} if has_shell else {}
    for strategy in strategies:
        if strategy == "shell" and not has_shell:
            notes.append(f"{parsed.scheme}:// has no shell mode: the shell strategy is left out")
            continue
        if strategy == "fresh":
            for command in commands:
                timed("fresh", command, partial(_fresh, target, command, exec_mode, options))
            continue
        mode = {"mode": "shell"} if strategy in ("shell", "batched") and has_shell else exec_mode
        ttl = {"ttl": 3600.0} if strategy == "cached" else {}
        with _kept(target, {**options, **mode, **ttl}) as session:
            session.open()
            if strategy == "batched":
                timed(
                    "batched",
                    f"batch of {len(commands)}",
                    partial(session.run_many, commands),
                    per=len(commands),
                )
                continue
            for command in commands:
                timed(strategy, command, partial(session.run, command))
    bar.close()

    secret = {name for name, option in cls.options.items() if option.secret}
    shown = replace(parsed, query={k: v for k, v in parsed.query.items() if k not in secret})
    return BenchResult(
        target=str(shown),  # the URI with its options, never a secret given in the query
        commands=commands,
        timings=timings_frame(rows),
        started=started,
        repeat=repeat,
        warmup=warmup,
        notes=notes,
        label=label,
    )


#: The columns of ``BenchResult.timings``: one row per timed call.
TIMING_COLUMNS = ("strategy", "command", "repetition", "seconds", "commands_per_call")


def time_calls(
    strategy: str,
    label: str,
    call: Callable[[], Any],
    *,
    repeat: int,
    warmup: int = 0,
    per: int = 1,
    after: Callable[[int], Any] | None = None,
) -> list[dict[str, Any]]:
    """Time ``call`` ``warmup + repeat`` times: a row per timed call, seconds per command.

    ``per`` is how many commands one call stands for; ``after(done)`` runs after
    every call, outside the timing.
    """
    rows = []
    for index in range(warmup + repeat):
        t0 = time.perf_counter()
        call()
        elapsed = time.perf_counter() - t0
        if index >= warmup:
            rows.append(
                {
                    "strategy": strategy,
                    "command": label,
                    "repetition": index - warmup,
                    "seconds": elapsed / per,
                    "commands_per_call": per,
                }
            )
        if after is not None:
            after(index + 1)
    return rows


def timings_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows of ``time_calls`` as the ``timings`` frame of a ``BenchResult``."""
    import pandas as pd

    return pd.DataFrame(list(rows), columns=list(TIMING_COLUMNS))


def overview(results: Sequence[BenchResult]) -> pd.DataFrame:
    """One table for many results: a row per (target, strategy) with the summary columns.

    >>> a = compare("mock://a", ["true"], repeat=3, warmup=0, strategies=["fresh", "cached"],
    ...             label="a", responses={"true": 0})
    >>> overview([a]).index.tolist()
    [('a', 'fresh'), ('a', 'cached')]
    """
    import pandas as pd

    if not results:
        return pd.DataFrame()
    from trainlab.tables import Table

    frames = {result.title: result.summary for result in results}
    return Table(pd.concat(frames, names=["target", "strategy"]))


def _fresh(target: str, command: str, mode: dict[str, str], options: dict[str, Any]) -> None:
    session = connect(target, reuse=False, **mode, **options)
    try:
        session.run(command)
    finally:
        session.close()


@contextlib.contextmanager
def _kept(target: str, options: dict[str, Any]) -> Iterator[Session]:
    session = connect(target, reuse=False, **options)
    try:
        yield session
    finally:
        session.close()


def summarize(
    timings: pd.DataFrame, *, baseline: str = "fresh", seed: int = 0, resamples: int = 2000
) -> pd.DataFrame:
    """Summary statistics per strategy, in milliseconds, with bootstrap speedup intervals.

    Exact values in a ``trainlab.tables.Table``, which shows them to four digits.

    ``p_value`` is a Mann-Whitney U test against the baseline; ``significant``
    needs it under 0.01 and the speedup's 95% interval clear of 1, as asv judges.
    """
    import numpy as np
    import pandas as pd

    from trainlab.tables import Table

    columns = [
        "n",
        "median_ms",
        "p95_ms",
        "iqr_ms",
        "speedup",
        "speedup_low",
        "speedup_high",
        "p_value",
        "significant",
    ]
    if timings.empty:
        return Table(columns=columns)
    rng = np.random.default_rng(seed)
    order = list(dict.fromkeys(timings["strategy"]))
    groups = {
        name: timings.loc[timings["strategy"] == name, "seconds"].to_numpy() for name in order
    }
    base = groups.get(baseline)
    base_boot = _bootstrap_medians(base, rng, resamples) if base is not None else None
    out = {}
    for name, values in groups.items():
        q1, q3 = np.percentile(values, [25, 75])
        row: dict[str, float] = {
            "n": float(len(values)),
            "median_ms": float(np.median(values) * 1e3),
            "p95_ms": float(np.percentile(values, 95) * 1e3),
            "iqr_ms": float((q3 - q1) * 1e3),
            "speedup": float("nan"),
            "speedup_low": float("nan"),
            "speedup_high": float("nan"),
            "p_value": float("nan"),
            "significant": 0.0,
        }
        if base is not None and base_boot is not None:
            boot = _bootstrap_medians(values, rng, resamples)
            ratios = base_boot / np.maximum(boot, 1e-12)
            row["speedup"] = float(np.median(base) / max(np.median(values), 1e-12))
            row["speedup_low"], row["speedup_high"] = (
                float(x) for x in np.percentile(ratios, [2.5, 97.5])
            )
            if name != baseline:
                # As asv judges a change: a rank test, and an interval clear of 1.
                row["p_value"] = mann_whitney_p(values, base)
                clear = row["speedup_low"] > 1 or row["speedup_high"] < 1
                row["significant"] = float(row["p_value"] < 0.01 and clear)
        out[name] = row
    frame = Table(pd.DataFrame.from_dict(out, orient="index", columns=columns))
    frame["n"] = frame["n"].astype("int64")
    frame["significant"] = frame["significant"].astype("bool")
    frame.index.name = "strategy"
    return frame


def mann_whitney_p(a: Any, b: Any) -> float:
    """Two-sided Mann-Whitney U test, normal approximation with tie correction.

    >>> round(mann_whitney_p([1, 2, 3, 4, 5] * 4, [6, 7, 8, 9, 10] * 4), 6) < 0.001
    True
    """
    import math

    import numpy as np

    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return float("nan")
    both = np.concatenate([x, y])
    order = both.argsort(kind="mergesort")
    ranks = np.empty(len(both))
    sorted_values = both[order]
    start = 0
    ties = 0.0
    while start < len(both):  # average ranks over runs of equal values
        end = start
        while end + 1 < len(both) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        size = end - start + 1
        ties += size**3 - size
        start = end + 1
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (abs(u - mean) - 0.5) / math.sqrt(variance)
    return float(math.erfc(max(z, 0.0) / math.sqrt(2)))


def _bootstrap_medians(values: Any, rng: Any, resamples: int) -> Any:
    import numpy as np

    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    return np.median(values[picks], axis=1)


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table without optional dependencies."""
    headers = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in frame.itertuples(index=False):
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
