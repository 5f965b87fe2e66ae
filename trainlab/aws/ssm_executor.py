"""The SSM executor: a fleet of ssm:// targets and one command through SSM's own fan-out.

Owns ``SSMExecutor``, which implements ``trainlab.fleet.engine.Executor`` with
``trainlab.aws.fanout.ssm_run``; imports the fleet package's engine, results and
targets, and the AWS fan-out. ``Fleet`` imports this module only for ssm:// targets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from trainlab.aws import fanout
from trainlab.errors import TargetError, TrainlabError
from trainlab.fleet.engine import Executor, Plan
from trainlab.fleet.results import Outcome, failure
from trainlab.fleet.targets import Spec
from trainlab.result import CommandResult
from trainlab.uri import parse_target

__all__ = ["UNDELIVERABLE", "SSMExecutor"]

#: The ``connect_failure`` of an instance SSM could not deliver the command to (its
#: ``Undeliverable`` status: not managed by SSM, or its agent not reachable).
UNDELIVERABLE = "undeliverable"


class SSMExecutor(Executor):
    """ssm:// targets and one command: SSM's own fan-out (``trainlab.aws.ssm_run``).

    One ``SendCommand`` per 50 instances of a region, rather than a send and a
    waiter per target; its rows (unmanaged, failed, timed-out instances
    included) become outcomes. An ``Undeliverable`` instance is a connect failure
    (``connect_failure="undeliverable"``), which the fleet's cool-down remembers.
    """

    _KEYS = ("region", "profile", "endpoint_url", "poll_interval", "output_s3_bucket")

    @classmethod
    def takes(cls, specs: Sequence[Spec], plan: Plan) -> bool:
        """True when SSM's fan-out can run ``plan`` on every one of ``specs``."""
        return not plan.batch and all(cls._fits(spec) for spec in specs)

    @classmethod
    def _fits(cls, spec: Spec) -> bool:
        """True when ``ssm_run`` honours every option of ``spec``, the URI's query too."""
        if spec.session is not None or not spec.uri.startswith("ssm://"):
            return False
        try:
            query = parse_target(spec.uri).query
        except TargetError:
            query = {}  # reported as its row by execute()
        return set(spec.options) | set(query) <= set(cls._KEYS)

    def execute(self) -> list[Outcome]:
        """One ``ssm_run`` per region and options, within the plan's timeout and deadline."""
        plan = self.plan
        [command] = plan.commands
        groups: dict[tuple[Any, ...], list[tuple[int, str]]] = {}
        for index, spec in enumerate(self.specs):
            try:
                target = parse_target(spec.uri)
            except TargetError as exc:
                self.outcomes[index] = [failure(spec.label, command, exc, time.perf_counter())]
                self.update(1)
                continue
            given = {**target.query, **spec.options}
            key = tuple(given.get(name) for name in self._KEYS)
            groups.setdefault(key, []).append((index, target.host))
        # Groups run one after another; the fan-out's deadline is shared by all of them.
        end = None if plan.deadline is None else time.monotonic() + plan.deadline
        for (region, profile, endpoint, poll, bucket), members in groups.items():
            since = time.perf_counter()
            budget = plan.timeout if end is None else min(plan.timeout, end - time.monotonic())
            if budget <= 0:
                for index, _ in members:
                    self.mark_not_run(index, "Deadline", "not started: past the deadline")
                self.update(len(members))
                continue
            try:
                frame = fanout.ssm_run(
                    [instance for _, instance in members],
                    command,
                    region=region,
                    profile=profile,
                    endpoint_url=endpoint,
                    timeout=budget,
                    poll_interval=float(poll or 1.0),
                    output_s3_bucket=bucket,
                )
            except TrainlabError as exc:
                for index, _ in members:
                    self.outcomes[index] = [failure(self.specs[index].label, command, exc, since)]
                self.update(len(members))
                continue
            elapsed = time.perf_counter() - since
            rows: dict[str, Any] = {str(r["instance_id"]): r for r in frame.to_dict("records")}
            for index, instance in members:
                self.outcomes[index] = [
                    _ssm_outcome(self.specs[index].label, command, rows.get(instance), elapsed)
                ]
            self.update(len(members))
        return self.ordered()


def _ssm_outcome(
    label: str, command: str, row: Mapping[str, Any] | None, elapsed: float
) -> Outcome:
    if row is None:
        return Outcome(label, command, error="SSM returned no row for it", error_type="Lost")
    if row["status"] in ("Success", "Failed"):
        result = CommandResult(
            command,
            str(row["stdout"]).encode(),
            str(row["stderr"]).encode(),
            int(row["exit_status"]),
            duration=elapsed,
            target=label,
            truncated=bool(row["truncated"]),
            extra={"command_id": row["command_id"]},
        )
        return Outcome(label, command, result, duration=elapsed)
    status = str(row["status"])
    return Outcome(
        label,
        command,
        error=str(row["error"] or status),
        error_type=status,
        duration=elapsed,
        # SSM could not reach the instance's agent: its way of failing to connect, so the
        # fleet's cool-down counts it. A command that failed or timed out there does not.
        connect_failure=UNDELIVERABLE if status == "Undeliverable" else "",
    )
