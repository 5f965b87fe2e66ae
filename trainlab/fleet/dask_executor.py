"""The Dask executor: a fleet's targets split across a cluster's workers, sessions kept on each.

Owns ``DaskExecutor`` and the worker plugin ``SessionPlugin``; imports the package's
engine, results, targets and thread executor (each worker runs its targets with it),
and ``distributed``, which is why ``Fleet`` imports this module only for ``executor=``.

Each target always goes to the same worker while the cluster keeps its workers
(rendezvous hashing on the target and the worker addresses), and every worker
process keeps its live sessions between calls in its own registry, owned by
``SessionPlugin``; so a second fan-out reuses the workers' connections. Inside
a worker, the targets it got run in a thread pool, as on one machine.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from distributed import WorkerPlugin, as_completed, get_worker

from trainlab.errors import TargetError
from trainlab.fleet.engine import GRACE, Executor, Plan
from trainlab.fleet.results import Outcome, placeholders
from trainlab.fleet.targets import Spec
from trainlab.fleet.threads import ThreadExecutor

__all__ = ["PLUGIN_NAME", "DaskExecutor", "SessionPlugin", "assign", "worker_stats"]

PLUGIN_NAME = "trainlab-sessions"  # also written out where it runs on the scheduler
# Slack for a task to reach a worker and its answer to come back, seconds.
_TRANSIT = 30.0


class SessionPlugin(WorkerPlugin):
    """A Dask worker's live trainlab sessions, kept between fan-outs, closed at teardown.

    ``trainlab.connect`` on the worker returns the session the last fan-out
    opened to the same target with the same options; the plugin counts the
    fan-outs it served and closes every session when the worker stops.
    """

    name = PLUGIN_NAME

    def __init__(self) -> None:
        self.fanouts = 0
        self.targets = 0

    def setup(self, worker: Any) -> None:
        self.worker_address = str(getattr(worker, "address", ""))

    def teardown(self, worker: Any) -> None:
        from trainlab.session import close_all

        close_all()

    def stats(self) -> dict[str, Any]:
        """Fan-outs served, targets run, and the worker's open sessions."""
        from trainlab.session import live_sessions

        open_sessions = [s for s in live_sessions() if s.opened is not None]
        return {
            "fanouts": self.fanouts,
            "targets": self.targets,
            "sessions": len(open_sessions),
            "connects": sum(1 + s.reconnects for s in open_sessions),
        }


def assign(labels: Sequence[str], workers: Sequence[str]) -> dict[str, list[int]]:
    """Worker address -> indexes of ``labels``, by rendezvous hashing (stable per target)."""
    groups: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        best = max(
            workers,
            key=lambda worker: hashlib.blake2b(
                f"{label}\0{worker}".encode(), digest_size=8
            ).digest(),
        )
        groups.setdefault(best, []).append(index)
    return groups


class _Targets(list[tuple[str, str, dict[str, Any]]]):
    """A worker's (label, uri, options) targets; its repr, in Dask's logs of a failed
    task, names them only: URIs and options may hold passwords and passphrases."""

    def __repr__(self) -> str:
        return f"<trainlab targets {[label for label, _, _ in self]}>"


def _work(
    specs: list[tuple[str, str, dict[str, Any]]], plan: Plan, max_workers: int
) -> list[Outcome]:
    """Runs on a worker: the targets it was given, in its own thread pool."""
    plugin: Any = None
    try:
        plugin = get_worker().plugins.get(PLUGIN_NAME)
    except ValueError:  # not on a worker (a synchronous test scheduler)
        plugin = None
    if plugin is not None:
        plugin.fanouts += 1
        plugin.targets += len(specs)
    local = [Spec(label, uri=uri, options=options) for label, uri, options in specs]
    return ThreadExecutor(local, plan, max_workers, lambda _count: None).execute()


def worker_stats(client: Any) -> dict[str, dict[str, Any]]:
    """Per worker address: the ``SessionPlugin`` counters (fan-outs, sessions, connects)."""

    def stats(dask_worker: Any) -> dict[str, Any]:
        plugin = dask_worker.plugins.get(PLUGIN_NAME)
        return {} if plugin is None else dict(plugin.stats())

    answer: dict[str, dict[str, Any]] = client.run(stats)
    return answer


class DaskExecutor(Executor):
    """A fan-out whose targets are split across a ``dask.distributed.Client``'s workers."""

    def __init__(
        self,
        client: Any,
        specs: Sequence[Spec],
        plan: Plan,
        max_workers: int,
        update: Callable[[int], None],
    ) -> None:
        if not hasattr(client, "submit") or not hasattr(client, "run_on_scheduler"):
            raise TargetError(
                f"executor= takes a dask.distributed.Client, got {type(client).__name__}"
            )
        super().__init__(specs, plan, update)
        self.client = client
        self.max_workers = max_workers

    def execute(self) -> list[Outcome]:
        client, plan = self.client, self.plan
        # A lambda travels by value: the scheduler needs no trainlab installed.
        workers, registered = client.run_on_scheduler(
            lambda dask_scheduler: (
                sorted(dask_scheduler.workers),
                "trainlab-sessions" in dask_scheduler.worker_plugins,
            )
        )
        if not workers:
            raise TargetError("the Dask cluster has no workers")
        if not registered:
            client.register_plugin(SessionPlugin(), name=PLUGIN_NAME)
        groups = assign([spec.label for spec in self.specs], workers)
        tag = uuid.uuid4().hex[:12]
        started = time.monotonic()
        futures: dict[Any, list[int]] = {}
        for number, (worker, indexes) in enumerate(sorted(groups.items())):
            future = client.submit(
                _work,
                _Targets(self.specs[i].portable() for i in indexes),
                plan,
                self.max_workers,
                key=f"trainlab-fleet-{tag}-{number}",
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
            futures[future] = indexes
        largest = max(len(indexes) for indexes in groups.values())
        waves = math.ceil(largest / max(1, self.max_workers))
        bound = (
            plan.deadline + GRACE if plan.deadline is not None else waves * (plan.timeout + GRACE)
        ) + _TRANSIT
        try:
            for future in as_completed(list(futures), timeout=bound):  # type: ignore[no-untyped-call]
                self._keep(futures[future], future)
        except TimeoutError:
            late = [f for f, indexes in futures.items() if indexes[0] not in self.outcomes]
            client.cancel(late)
            waited = time.monotonic() - started
            for future in late:
                for index in futures[future]:
                    self.mark_not_run(
                        index, "Deadline", f"no answer from the Dask worker within {waited:.0f} s"
                    )
                self.update(len(futures[future]))
        except KeyboardInterrupt:
            client.cancel([f for f, indexes in futures.items() if indexes[0] not in self.outcomes])
            raise
        return self.ordered()

    def _keep(self, indexes: list[int], future: Any) -> None:
        try:
            rows: list[Outcome] = future.result()
        except Exception as exc:  # the task failed on the worker: every target is a row
            rows = []
            for index in indexes:
                rows += placeholders(
                    self.specs[index].label,
                    self.plan.commands,
                    type(exc).__name__,
                    f"the Dask task failed: {exc}",
                )
        by_target: dict[str, list[Outcome]] = {}
        for row in rows:
            by_target.setdefault(row.target, []).append(row)
        for index in indexes:
            label = self.specs[index].label
            self.outcomes[index] = by_target.get(label) or placeholders(
                label, self.plan.commands, "Lost", "the Dask worker returned no row for it"
            )
        self.update(len(indexes))
