"""A fan-out at a glance: how many targets did what, the failures grouped, the slowest.

Owns ``FleetReport`` and ``target_rows``; imports the package's results only
(pandas when a frame is built). ``FleetResult.report()`` makes one; the result's
HTML repr shows its summary line.

>>> from trainlab.fleet.results import Outcome
>>> from trainlab.result import CommandResult
>>> rows = [Outcome("ssh://web1", "id", CommandResult("id", b"0\\n", b"", 0), connect_s=0.2),
...         Outcome("ssh://db1", "id", error="cannot connect: Connection refused",
...                 error_type="ConnectError", connect_failure="refused")]
>>> FleetReport.of(rows).summary
'2 targets: 1 ok, 1 ConnectError (refused); slowest ssh://web1 0.2 s'
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainlab.fleet.results import Outcome

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GROUP_COLUMNS", "TARGET_COLUMNS", "FleetReport", "target_rows"]

#: The columns of ``FleetReport.groups``: a row per outcome and kind of connect failure.
GROUP_COLUMNS = ("outcome", "connect_failure", "targets", "example_targets", "example_error")
#: The columns of ``FleetReport.targets`` and ``FleetReport.slowest``: one row per target.
TARGET_COLUMNS = ("target", "outcome", "connect_failure", "connect_s", "run_s", "total_s", "error")
_SKIPPED = "SkippedRecentlyFailed"
# Example targets named per group.
_EXAMPLES = 3


def target_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """One row per target: its outcome (``ok``, an error type, or ``exit N``) and its times.

    A target's outcome is that of its first command that did not succeed; its
    ``run_s`` is the sum of its commands' durations, after ``connect_s``.
    """
    rows: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        row = rows.get(o.target)
        if row is None:
            row = rows[o.target] = {
                "target": o.target,
                "outcome": "ok",
                "connect_failure": "",
                "connect_s": o.connect_s,
                "run_s": 0.0,
                "error": "",
            }
        row["run_s"] += o.duration_s
        row["connect_s"] = max(row["connect_s"], o.connect_s)
        if row["outcome"] == "ok" and not o.ok:
            row["outcome"] = o.error_type or f"exit {o.exit_status}"
            row["connect_failure"] = o.connect_failure
            row["error"] = o.error or o.stderr.strip()[-200:] or f"exit {o.exit_status}"
    for row in rows.values():
        row["total_s"] = row["connect_s"] + row["run_s"]
    return list(rows.values())


def _phrase(outcome: str, how: str, count: int) -> str:
    """``8 ConnectError (refused)``, ``2 skipped as recently failed``, ``190 ok``."""
    name = "skipped as recently failed" if outcome == _SKIPPED else outcome
    detail = f" ({how})" if how and how != "other" else ""
    return f"{count} {name}{detail}"


@dataclass(frozen=True)
class FleetReport:
    """What a fan-out did: a summary line, outcomes grouped, and the slowest targets.

    ``groups`` has a row per (outcome, connect_failure): how many targets, a few
    of them, and one message; ``targets`` a row per target with its connect and
    run times; ``slowest`` the ``n`` targets that took longest, slowest first.
    """

    summary: str
    groups: pd.DataFrame
    targets: pd.DataFrame
    slowest: pd.DataFrame

    @classmethod
    def of(cls, outcomes: Sequence[Outcome], slowest: int = 5) -> FleetReport:
        """The report of ``outcomes`` (a ``FleetResult`` or any sequence of outcomes)."""
        from trainlab.tables import Table

        rows = target_rows(outcomes)
        targets = Table(rows, columns=list(TARGET_COLUMNS))
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault((row["outcome"], row["connect_failure"]), []).append(row)
        order = sorted(  # ok first, skipped last, the most common failures before the rest
            grouped, key=lambda k: (k[0] != "ok", k[0] == _SKIPPED, -len(grouped[k]), k)
        )
        groups = Table(
            [
                {
                    "outcome": outcome,
                    "connect_failure": how,
                    "targets": len(grouped[outcome, how]),
                    "example_targets": ", ".join(
                        r["target"] for r in grouped[outcome, how][:_EXAMPLES]
                    ),
                    "example_error": grouped[outcome, how][0]["error"],
                }
                for outcome, how in order
            ],
            columns=list(GROUP_COLUMNS),
        )
        ranked = sorted(
            (r for r in rows if r["outcome"] != _SKIPPED), key=lambda r: -float(r["total_s"])
        )[: max(0, slowest)]
        top = Table(ranked, columns=list(TARGET_COLUMNS))
        parts = [_phrase(outcome, how, len(grouped[outcome, how])) for outcome, how in order]
        summary = f"{len(rows)} target{'s' if len(rows) != 1 else ''}: " + ", ".join(parts)
        if ranked:
            summary += f"; slowest {ranked[0]['target']} {ranked[0]['total_s']:.1f} s"
        return cls(summary, groups, targets, top)

    def __repr__(self) -> str:
        return f"<FleetReport {self.summary}>"

    def _repr_html_(self) -> str:
        def table(frame: pd.DataFrame, columns: Sequence[str]) -> str:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
            body = "".join(
                "<tr>"
                + "".join(f"<td>{html.escape(_cell(record[c]))}</td>" for c in columns)
                + "</tr>"
                for record in frame.to_dict("records")
            )
            return f"<table><tr>{head}</tr>{body}</table>"

        return (
            f"<div class='trainlab-fleet-report'><b>{html.escape(self.summary)}</b>"
            + table(self.groups, GROUP_COLUMNS)
            + "<small>slowest</small>"
            + table(self.slowest, ("target", "outcome", "connect_s", "run_s", "total_s"))
            + "</div>"
        )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)[:200]
