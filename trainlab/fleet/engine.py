"""The fan-out engine interface: ``Executor``, which every way of running a fleet implements.

Owns ``Plan`` (what every target does, within what time) and ``Executor``;
imports only ``trainlab.fleet.results`` and ``trainlab.fleet.targets``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trainlab.fleet.results import Outcome, placeholders
from trainlab.fleet.targets import Spec

__all__ = ["GRACE", "Executor", "Plan"]

#: How long a coordinator lets a target's own timeout report itself first, seconds.
GRACE = 1.0


@dataclass(frozen=True)
class Plan:
    """What every target does, and within what time."""

    commands: list[str]
    batch: bool
    stop_on_error: bool
    timeout: float
    deadline: float | None


class Executor(ABC):
    """One fan-out: a plan run on targets, each target's outcomes kept as they come.

    ``Fleet`` makes one executor per fan-out and calls ``execute()``; when Ctrl-C
    interrupts that, it calls ``partial()`` for what finished. Implementations:
    ``trainlab.fleet.threads.ThreadExecutor`` (this machine),
    ``trainlab.fleet.dask_executor.DaskExecutor`` (a Dask cluster) and
    ``trainlab.aws.ssm_executor.SSMExecutor`` (SSM's own fan-out).
    """

    def __init__(self, specs: Sequence[Spec], plan: Plan, update: Callable[[int], None]) -> None:
        self.specs = list(specs)
        self.plan = plan
        self.update = update
        self.outcomes: dict[int, list[Outcome]] = {}

    @abstractmethod
    def execute(self) -> list[Outcome]:
        """Run the plan on every target; the outcomes in the targets' order.

        Keeps each target's outcomes in ``outcomes`` (by the target's index),
        calls ``update(n)`` as ``n`` more targets finish, and turns every failure
        of a target into its rows: it raises only for the fan-out as a whole
        (``KeyboardInterrupt``, a cluster with no workers).
        """

    def ordered(self) -> list[Outcome]:
        """Every target's outcomes, in the targets' order (all must be kept)."""
        return [o for index in range(len(self.specs)) for o in self.outcomes[index]]

    def mark_not_run(self, index: int, kind: str, why: str) -> None:
        """Keep target ``index``'s commands as never run: ``kind`` rows saying ``why``."""
        self.outcomes[index] = placeholders(self.specs[index].label, self.plan.commands, kind, why)

    def partial(self) -> list[Outcome]:
        """Finished outcomes, and a ``Cancelled`` row for every other target."""
        rows: list[Outcome] = []
        for index, spec in enumerate(self.specs):
            rows += self.outcomes.get(index) or placeholders(
                spec.label, self.plan.commands, "Cancelled", "interrupted before it finished"
            )
        return rows
