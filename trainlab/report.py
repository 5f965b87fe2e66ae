"""Benchmark reports to share: one self-contained HTML file, Markdown, or JSON.

The HTML embeds its plots as data URIs and carries the environment (library
versions, Python, machine, target, date), so it opens anywhere without a network.
"""

from __future__ import annotations

import html
import json
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainlab.bench import BenchResult

__all__ = ["environment", "to_html", "to_json"]

LIBRARIES = ("trainlab", "pandas", "paramiko", "boto3", "requests", "pypsrp", "matplotlib")


def environment(result: BenchResult | None = None) -> dict[str, str]:
    """Versions and machine facts worth keeping with a measurement."""
    facts = {
        "python": sys.version.split()[0],
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for name in LIBRARIES:
        try:
            facts[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if result is not None:
        facts["target"] = result.target
        facts["started"] = result.started.strftime("%Y-%m-%d %H:%M UTC")
        rtt = result.round_trip_ms()
        if rtt is not None:
            facts["round trip (median of the kept-connection strategy)"] = f"{rtt:.3f} ms"
    return facts


def to_html(results: BenchResult | list[BenchResult], path: str | Path | None = None) -> str:
    """One self-contained HTML page for one or more benchmark results."""
    from trainlab.plots import bench_figure, figure_img

    items = results if isinstance(results, list) else [results]
    sections = []
    for result in items:
        images = []
        for kind in ("bar", "box"):
            figure = bench_figure(result.timings, kind=kind, title=f"{result.title} ({kind})")
            images.append(figure_img(figure, f"{kind} plot"))
        summary = result.summary.to_html(float_format=lambda x: f"{x:.4g}", border=0)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
        commands = ", ".join(f"<code>{html.escape(c)}</code>" for c in result.commands)
        sections.append(
            f"<section><h2>{html.escape(result.title)}</h2>"
            f"<p>{html.escape(result.target)}: {commands}; {result.repeat} timed calls per "
            f"command after "
            f"{result.warmup} warm-up.</p>{summary}{''.join(images)}"
            f"{f'<ul>{notes}</ul>' if notes else ''}</section>"
        )
    head = ""
    if len(items) > 1:
        from trainlab.bench import overview
        from trainlab.plots import overview_figure

        table = overview(items)
        head = (
            "<section><h2>Overview</h2>"
            + figure_img(overview_figure(table), "overview plot")
            + table[["n", "median_ms", "p95_ms", "speedup", "significant"]].to_html(
                float_format=lambda x: f"{x:.4g}", border=0
            )
            + "</section>"
        )
    facts = environment(items[0] if items else None)
    env_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>trainlab benchmark</title>"
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{padding:.25rem .6rem;"
        "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}</style></head>"
        "<body><h1>trainlab benchmark</h1>"
        + head
        + "".join(sections)
        + f"<h2>Environment</h2><table>{env_rows}</table></body></html>"
    )
    if path is not None:
        Path(path).write_text(page, encoding="utf-8")
    return page


def to_json(result: BenchResult) -> str:
    """Timings, summary and environment as JSON."""
    summary = result.summary.reset_index().to_dict(orient="records")
    payload: dict[str, Any] = {
        "target": result.target,
        "label": result.title,
        "commands": result.commands,
        "repeat": result.repeat,
        "warmup": result.warmup,
        "summary": summary,
        "timings": result.timings.to_dict(orient="records"),
        "notes": result.notes,
        "environment": environment(result),
    }
    return json.dumps(payload, indent=2, default=str)
