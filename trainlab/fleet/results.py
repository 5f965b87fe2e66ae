"""Fan-out results: ``Outcome`` (one command on one target) and ``FleetResult`` (all of them).

Owns the outcome types and the helpers that make failure rows; imports only
``trainlab.errors`` and ``trainlab.result`` (pandas only when a frame is asked for).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainlab.errors import FleetError
from trainlab.result import RESULT_COLUMNS, CommandResult, Items, clip, results_frame

if TYPE_CHECKING:
    import pandas as pd

    from trainlab.fleet.report import FleetReport

__all__ = ["FLEET_COLUMNS", "FleetResult", "Outcome", "failure", "placeholders"]

#: The columns of ``FleetResult.frame``: a batch's columns, then how the target was reached
#: and why it failed.
FLEET_COLUMNS = (*RESULT_COLUMNS, "reused", "connect_s", "connect_failure", "error_type", "error")
_FLEET_DTYPES = {"exit_status": "Int64", "ok": "bool", "cached": "bool", "reused": "bool"}


@dataclass(frozen=True, eq=False)
class Outcome:
    """What one command did on one target: its result, or why there is none.

    ``error_type`` names the failure class (``ConnectError``, ``HostKeyError``,
    ``CommandTimeout``, ``Deadline``, ``Cancelled``, ``SkippedRecentlyFailed``, ...);
    ``error`` says what happened. ``reused`` is True when the target's session was
    already open. ``connect_s`` is the time this fan-out spent getting the target's
    session open (near 0 when reused); ``duration_s`` the time after that.
    ``connect_failure`` is set when the target could not connect: ``refused``,
    ``unresolvable``, ``unreachable``, ``timeout``, ``reset`` or ``other``; for SSM's
    own fan-out, ``undeliverable`` (SSM could not deliver the command to the instance).
    """

    target: str
    command: str
    result: CommandResult | None = None
    error: str = ""
    error_type: str = ""
    duration: float = 0.0
    reused: bool = False
    connect_s: float = 0.0
    connect_failure: str = ""

    @property
    def ok(self) -> bool:
        """True when the command ran and exited 0."""
        return self.result is not None and self.result.ok

    @property
    def exit_status(self) -> int | None:
        """The command's exit status; ``None`` when it did not run."""
        return None if self.result is None else self.result.exit_status

    @property
    def stdout(self) -> str:
        """The command's standard output (empty when it did not run)."""
        return "" if self.result is None else self.result.stdout

    @property
    def stderr(self) -> str:
        """The command's standard error (empty when it did not run)."""
        return "" if self.result is None else self.result.stderr

    @property
    def duration_s(self) -> float:
        """The command's own duration; for a failure, how long it took to fail once connected."""
        return self.duration if self.result is None else self.result.duration

    def to_record(self) -> dict[str, Any]:
        """One row of ``FleetResult.frame``: the result's row, under the fleet's label."""
        row: dict[str, Any] = (
            self.result.to_record()
            if self.result is not None
            else {"exit_status": None, "stdout": "", "stderr": "", "cached": False}
        )
        row.update(
            target=self.target,
            command=self.command,
            ok=self.ok,
            duration_s=self.duration_s,
            reused=self.reused,
            connect_s=self.connect_s,
            connect_failure=self.connect_failure,
            error_type=self.error_type,
            error=self.error,
        )
        return row

    def __repr__(self) -> str:
        state = (
            f"exited={self.exit_status}"
            if self.result is not None
            else f"{self.error_type}: {self.error[:60]}"
        )
        return f"<Outcome {self.target} cmd={self.command[:40]!r} {state}>"


def failure(target: str, command: str, exc: BaseException, since: float) -> Outcome:
    """The outcome of ``command`` on ``target`` that raised ``exc``, timed from ``since``."""
    message = str(exc) or type(exc).__name__
    return Outcome(
        target,
        command,
        error=message,
        error_type=type(exc).__name__,
        duration=time.perf_counter() - since,
    )


def placeholders(target: str, commands: Sequence[str], kind: str, why: str) -> list[Outcome]:
    """One outcome per command that never ran on ``target``: ``kind`` names why not."""
    return [Outcome(target, command, error=why, error_type=kind) for command in commands]


class FleetResult(Items[Outcome]):
    """Every target's outcome of a fan-out, in the fleet's order.

    ``frame`` has one row per target and command (target, command, exit_status,
    ok, stdout, stderr, duration_s, cached, reused, error_type, error); targets
    that could not be reached are rows too. ``ok`` and ``failed`` are the
    sub-results of the targets that succeeded and of those that did not;
    ``raise_for_errors()`` raises ``FleetError`` carrying this whole result.
    """

    def __init__(
        self,
        outcomes: Sequence[Outcome],
        *,
        duration: float = 0.0,
        label: str = "",
        interrupted: bool = False,
    ) -> None:
        self._items = tuple(outcomes)
        self.duration = duration
        self.label = label
        self.interrupted = interrupted

    def _subset(self, keep: Callable[[Outcome], bool]) -> FleetResult:
        return FleetResult(
            [o for o in self._items if keep(o)],
            duration=self.duration,
            label=self.label,
            interrupted=self.interrupted,
        )

    @property
    def ok(self) -> FleetResult:
        """The outcomes whose command ran and exited 0."""
        return self._subset(lambda o: o.ok)

    @property
    def failed(self) -> FleetResult:
        """The outcomes that exited non-zero or could not run at all."""
        return self._subset(lambda o: not o.ok)

    @property
    def errors(self) -> FleetResult:
        """The outcomes that could not run (unreachable, timed out, cancelled)."""
        return self._subset(lambda o: o.result is None)

    @property
    def all_ok(self) -> bool:
        """True when every command ran and exited 0 on every target."""
        return all(o.ok for o in self._items)

    @property
    def targets(self) -> list[str]:
        """The targets, once each, in order."""
        return list(dict.fromkeys(o.target for o in self._items))

    @property
    def results(self) -> list[CommandResult]:
        """The ``CommandResult`` of every command that ran."""
        return [o.result for o in self._items if o.result is not None]

    @property
    def frame(self) -> pd.DataFrame:
        """One row per target and command; see the class docstring for the columns."""
        return results_frame([o.to_record() for o in self._items], FLEET_COLUMNS, _FLEET_DTYPES)

    def raise_for_errors(self) -> FleetResult:
        """Return ``self`` when all is well; else raise ``FleetError`` carrying ``self``."""
        failed = self.failed
        if not failed:
            return self
        kinds: dict[str, int] = {}
        counted: set[str] = set()
        for outcome in failed:  # each target once, by its first failure
            if outcome.target in counted:
                continue
            counted.add(outcome.target)
            kind = outcome.error_type or f"exit {outcome.exit_status}"
            kinds[kind] = kinds.get(kind, 0) + 1
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        first = failed[0]
        detail = first.error or first.stderr.strip()[-200:] or f"exit {first.exit_status}"
        raise FleetError(
            f"{len(failed.targets)} of {len(self.targets)} targets failed ({summary}); "
            f"first: {first.target}: {detail}. Every outcome is in .results",
            results=self,
        )

    check = raise_for_errors

    def report(self, slowest: int = 5) -> FleetReport:
        """What this fan-out did at a glance: a summary line, the outcomes grouped by
        error type (with example targets and a message), and the ``slowest`` targets
        with their connect and run times (see ``trainlab.fleet.report.FleetReport``)."""
        from trainlab.fleet.report import FleetReport

        return FleetReport.of(self._items, slowest)

    def __repr__(self) -> str:
        failed = len(self.failed.targets)
        label = f" {self.label!r}" if self.label else ""
        note = ", interrupted" if self.interrupted else ""
        return (
            f"<FleetResult{label} on {len(self.targets)} targets: "
            f"{len(self.targets) - failed} ok, {failed} failed, "
            f"{self.duration * 1e3:.1f} ms{note}>"
        )

    def _repr_html_(self) -> str:
        rows = []
        for o in self._items:
            shown = o.stdout if o.result is not None else o.error
            color = "#1a7f37" if o.ok else "#cf222e"
            status = o.exit_status if o.result is not None else html.escape(o.error_type)
            rows.append(
                f"<tr><td>{html.escape(o.target)}</td><td><code>{html.escape(o.command)}</code>"
                f"</td><td style='color:{color}'>{status}</td>"
                f"<td><pre style='margin:0'>{html.escape(clip(shown, 400)[0])}</pre></td>"
                f"<td><pre style='margin:0'>{html.escape(clip(o.stderr, 200)[0])}</pre></td>"
                f"<td>{o.connect_s * 1e3:.1f}</td><td>{o.duration_s * 1e3:.1f}</td></tr>"
            )
        summary = self.report(slowest=1).summary if self._items else "no targets"
        return (
            f"<div class='trainlab-fleet'><b>{html.escape(summary)}</b><br>"
            f"<small>{html.escape(repr(self))}</small><table>"
            "<tr><th>target</th><th>command</th><th>exit</th><th>stdout / error</th>"
            "<th>stderr</th><th>connect ms</th><th>ms</th></tr>" + "".join(rows) + "</table></div>"
        )
