"""The fleet's cool-down: targets that failed to connect, skipped for a while.

Owns ``Cooldown``; imports the package's results only. A warm fan-out over a fleet
with dead hosts then costs what it costs without them: a target that failed to
connect is a ``SkippedRecentlyFailed`` row at once, saying when and why, until the
cool-down passes or a fan-out asks ``retry_failed=True``. What counts is an outcome
with a ``connect_failure`` (set by the executor that made it: a session that did not
open, or an instance SSM could not deliver the command to). Failures of commands
(a non-zero exit, a command's timeout) are not connect failures and never count.

>>> now = [100.0]
>>> cool = Cooldown(30, clock=lambda: now[0])
>>> cool.learn([Outcome("ssh://db1", "uptime", error="refused", error_type="ConnectError",
...                     connect_failure="refused")])
>>> [o.error_type for o in cool.skip(["ssh://db1", "ssh://web1"], ["uptime"])]
['SkippedRecentlyFailed']
>>> now[0] += 31
>>> cool.skip(["ssh://db1"], ["uptime"])
[]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from trainlab.errors import SkippedRecentlyFailed, TargetError
from trainlab.fleet.results import Outcome

__all__ = ["DEFAULT_COOLDOWN", "Cooldown", "Failure"]

#: Seconds a fleet skips a target that failed to connect, unless told otherwise.
DEFAULT_COOLDOWN = 30.0
# The longest cool-down a fleet takes: a day (clocks and timers take no infinity).
_MAX = 86_400.0


@dataclass(frozen=True)
class Failure:
    """A target's last failure to connect: when (on the clock and the wall), how, and why."""

    at: float
    when: datetime
    error_type: str
    error: str
    connect_failure: str


class Cooldown:
    """Targets that failed to connect, remembered ``seconds`` (0: never) on ``clock``.

    ``skip`` turns the targets still cooling down into rows; ``learn`` reads a
    fan-out's outcomes (a failure to connect is remembered, a command that ran
    forgets it); ``forget`` clears one target or all of them.
    """

    def __init__(
        self, seconds: float = DEFAULT_COOLDOWN, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= _MAX
        ):
            raise TargetError(
                f"cooldown is seconds from 0 (off) to {_MAX:g}, got {seconds!r}: "
                "a fleet skips a target that failed to connect for that long"
            )
        self.seconds = float(seconds)
        self.clock = clock
        self._lock = threading.Lock()
        self._failed: dict[str, Failure] = {}

    def __repr__(self) -> str:
        return f"<Cooldown {self.seconds:g} s, {len(self.failing)} targets cooling down>"

    @property
    def failing(self) -> dict[str, Failure]:
        """The targets cooling down now, with their last failure to connect."""
        now = self.clock()
        with self._lock:
            return {t: f for t, f in self._failed.items() if now - f.at < self.seconds}

    def skip(self, targets: Sequence[str], commands: Sequence[str]) -> list[Outcome]:
        """A ``SkippedRecentlyFailed`` row per command for each of ``targets`` cooling down."""
        failing = self.failing
        now = self.clock()
        rows: list[Outcome] = []
        for target in targets:
            last = failing.get(target)
            if last is None:
                continue
            why = (
                f"skipped: failed to connect {now - last.at:.0f} s ago "
                f"(at {last.when:%H:%M:%S} UTC) with {last.error_type}: {last.error} "
                f"[tried again after the {self.seconds:g} s cool-down, or now with "
                "retry_failed=True]"
            )
            rows += [
                Outcome(
                    target,
                    command,
                    error=why,
                    error_type=SkippedRecentlyFailed.__name__,
                    connect_failure=last.connect_failure,
                )
                for command in commands
            ]
        return rows

    def learn(self, outcomes: Iterable[Outcome]) -> None:
        """Remember the targets that failed to connect; forget those that ran a command."""
        if not self.seconds:
            return
        now, when = self.clock(), datetime.now(UTC)
        failed: dict[str, Failure] = {}
        ran: set[str] = set()
        for o in outcomes:
            if o.connect_failure and o.error_type != SkippedRecentlyFailed.__name__:
                failed.setdefault(
                    o.target, Failure(now, when, o.error_type, o.error, o.connect_failure)
                )
            elif o.result is not None:
                ran.add(o.target)
        with self._lock:
            for target in ran:
                self._failed.pop(target, None)
            self._failed.update(failed)
            # Bounded: entries past the cool-down go.
            for target in [t for t, f in self._failed.items() if now - f.at >= self.seconds]:
                del self._failed[target]

    def forget(self, target: str | None = None) -> None:
        """Forget ``target``'s failure (every target's when ``None``): the next fan-out tries."""
        with self._lock:
            if target is None:
                self._failed.clear()
            else:
                self._failed.pop(target, None)
