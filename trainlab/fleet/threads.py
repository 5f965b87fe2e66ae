"""The thread executor: a fan-out in a thread pool on this machine, watched by the caller.

Owns ``run_target`` (one target: connect or reuse, run, every failure a row) and
``ThreadExecutor``; imports the package's engine, results and targets, and the session layer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from trainlab.errors import ConnectError
from trainlab.fleet.engine import GRACE, Executor, Plan
from trainlab.fleet.results import Outcome, failure, placeholders
from trainlab.fleet.targets import Spec
from trainlab.session import Session, close_quietly
from trainlab.transports.retry import connect_failure

__all__ = ["ThreadExecutor", "run_target"]

# The coordinator wakes at least this often (expiry checks, Ctrl-C in a notebook).
_TICK = 0.2


def run_target(spec: Spec, plan: Plan, budget: float, hold: _Holder | None = None) -> list[Outcome]:
    """Connect (or reuse) and run the plan on one target; never raises a TrainlabError.

    Times the connect (``connect_s``) apart from the run, and marks a failure to
    connect (``connect_failure``): a fleet's cool-down skips such a target for a while.
    """
    since = time.perf_counter()
    label = spec.label
    if budget <= 0:
        return placeholders(label, plan.commands, "Deadline", "not started: past the deadline")
    end = time.monotonic() + budget
    reused = False
    connected: float | None = None
    try:
        session = spec.connect()
        reused = session.alive
        if hold is not None:
            hold.add(label, session, opened_here=not reused)
        session.open()
        connected = time.perf_counter()
        if hold is not None:
            hold.connected(label)
        connect_s = connected - since
        remaining = max(0.001, end - time.monotonic())
        if plan.batch:
            batch = session.run_many(
                plan.commands, timeout=remaining, stop_on_error=plan.stop_on_error
            )
            outcomes = [
                Outcome(label, r.command, r, reused=reused, connect_s=connect_s) for r in batch
            ]
            outcomes += [
                Outcome(
                    label,
                    c,
                    error="not run after a failure",
                    error_type="Skipped",
                    reused=reused,
                    connect_s=connect_s,
                )
                for c in batch.skipped
            ]
            return outcomes
        [command] = plan.commands
        return [
            Outcome(
                label,
                command,
                session.run(command, timeout=remaining),
                reused=reused,
                connect_s=connect_s,
            )
        ]
    except Exception as exc:  # every failure is a row: nothing is lost
        failed = failure(label, "", exc, since if connected is None else connected)
        how = ""
        # Opening failed, or a run's ConnectError whose transport names it a failure to
        # connect (SSM: Undeliverable); a command's broken connection is not one.
        if isinstance(exc, ConnectError) and (connected is None or exc.failure):
            how = connect_failure(exc) or "other"
        connect_s = (time.perf_counter() if connected is None else connected) - since
        # A batch past its deadline keeps the commands that finished before it.
        done = list(getattr(exc, "partial", None) or []) if plan.batch else []
        return [Outcome(label, r.command, r, reused=reused, connect_s=connect_s) for r in done] + [
            Outcome(
                label,
                command,
                error=failed.error,
                error_type=failed.error_type,
                duration=0.0 if connected is None else failed.duration,
                reused=reused,
                connect_s=connect_s,
                connect_failure=how,
            )
            for command in plan.commands[len(done) :]
        ]
    finally:
        if hold is not None:
            hold.done(label)


class _Holder:
    """Sessions a fan-out touched, so an interruption can close what it opened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened: list[Session] = []
        self._busy: dict[str, Session] = {}
        self._connected: set[str] = set()

    def add(self, label: str, session: Session, *, opened_here: bool) -> None:
        with self._lock:
            if opened_here:
                self._opened.append(session)
            self._busy[label] = session

    def connected(self, label: str) -> None:
        with self._lock:
            self._connected.add(label)

    def is_connected(self, label: str) -> bool:
        """Whether ``label``'s session got open in this fan-out (else it is still connecting)."""
        with self._lock:
            return label in self._connected

    def done(self, label: str) -> None:
        with self._lock:
            self._busy.pop(label, None)

    def close_all(self, timeout: float = 5.0) -> None:
        """Close the sessions opened here and those still running a command, in parallel."""
        with self._lock:
            doomed = {id(s): s for s in self._opened}
            doomed.update({id(s): s for s in self._busy.values()})
        threads = [
            threading.Thread(target=close_quietly, args=(s,), daemon=True) for s in doomed.values()
        ]
        for thread in threads:
            thread.start()
        end = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))


class ThreadExecutor(Executor):
    """A fan-out in a thread pool on this machine, watched by the calling thread."""

    def __init__(
        self,
        specs: Sequence[Spec],
        plan: Plan,
        max_workers: int,
        update: Callable[[int], None],
    ) -> None:
        super().__init__(specs, plan, update)
        self.max_workers = max(1, min(max_workers, len(self.specs)))
        self.started: dict[int, float] = {}
        self.holder = _Holder()
        self._lock = threading.Lock()

    def _task(self, index: int, end: float | None) -> list[Outcome]:
        now = time.monotonic()
        with self._lock:
            self.started[index] = now
        budget = self.plan.timeout if end is None else min(self.plan.timeout, end - now)
        return run_target(self.specs[index], self.plan, budget, self.holder)

    def execute(self) -> list[Outcome]:
        plan = self.plan
        end = None if plan.deadline is None else time.monotonic() + plan.deadline
        pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="trainlab-fleet")
        futures: dict[Future[list[Outcome]], int] = {}
        try:
            for index in range(len(self.specs)):  # Ctrl-C may land while they queue
                futures[pool.submit(self._task, index, end)] = index
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=_TICK, return_when=FIRST_COMPLETED)
                for future in done:
                    self._keep(futures[future], future)
                now = time.monotonic()
                for future in list(pending):
                    index = futures[future]
                    with self._lock:
                        began = self.started.get(index)
                    if end is not None and now > end + GRACE:
                        why = "the fan-out's deadline passed" + (
                            " while it ran" if began is not None else " before it started"
                        )
                        self._give_up(index, future, "Deadline", why)
                    elif began is not None and now > began + plan.timeout + GRACE:
                        self._time_out(index, future)
                    else:
                        continue
                    pending.discard(future)
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            self.holder.close_all()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return self.ordered()

    def _keep(self, index: int, future: Future[list[Outcome]]) -> None:
        if index in self.outcomes:
            return
        try:
            self.outcomes[index] = future.result()
        except BaseException as exc:  # a bug, not a target's failure: still a row
            spec = self.specs[index]
            self.outcomes[index] = [
                failure(spec.label, c, exc, time.perf_counter()) for c in self.plan.commands
            ]
        self.update(1)

    def _time_out(self, index: int, future: Future[list[Outcome]]) -> None:
        """Give up on a target past its timeout: still connecting, it failed to connect."""
        label, timeout = self.specs[index].label, self.plan.timeout
        if self.holder.is_connected(label):
            self._give_up(index, future, "Timeout", f"no answer within {timeout:g} s")
            return
        future.cancel()
        with self._lock:
            waited = time.monotonic() - self.started.get(index, time.monotonic() - timeout)
        why = f"no answer within {timeout:g} s while connecting"
        self.outcomes[index] = [
            Outcome(
                label,
                command,
                error=why,
                error_type="ConnectTimeout",
                connect_s=waited,
                connect_failure="timeout",
            )
            for command in self.plan.commands
        ]
        self.update(1)

    def _give_up(self, index: int, future: Future[list[Outcome]], kind: str, why: str) -> None:
        future.cancel()
        self.mark_not_run(index, kind, why)
        self.update(1)
