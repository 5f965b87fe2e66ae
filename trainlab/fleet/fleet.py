"""The ``Fleet`` facade: many targets, one call; it picks the executor for each fan-out.

Owns ``Fleet`` and its progress reporting; imports the package's results, targets,
engine and thread executor, and the Dask and SSM executors only when a fan-out needs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainlab.commands import command_text
from trainlab.errors import TargetError
from trainlab.fleet.cooldown import DEFAULT_COOLDOWN, Cooldown
from trainlab.fleet.engine import Executor, Plan
from trainlab.fleet.results import FleetResult, Outcome
from trainlab.fleet.targets import (
    NamedTarget,
    Spec,
    check_file_limit,
    default_max_workers,
    fd_budget,
    inventory_uris,
    make_spec,
)
from trainlab.fleet.threads import ThreadExecutor
from trainlab.progress import failures, progress_bar
from trainlab.session import Session, close_quietly

if TYPE_CHECKING:
    import os

    import pandas as pd

__all__ = ["DEFAULT_TIMEOUT", "Fleet"]

#: Per-target deadline (connect and command) unless told otherwise, seconds.
DEFAULT_TIMEOUT = 60.0


class Fleet:
    """Many targets, one call: ``run`` and ``run_many`` fan out and keep every outcome.

    >>> fleet = Fleet(["mock://a", "mock://b"], responses={"uptime": "up\\n"})
    >>> fleet.run("uptime", progress=False).frame[["target", "stdout"]].to_dict("list")
    {'target': ['mock://a', 'mock://b'], 'stdout': ['up\\n', 'up\\n']}

    Parameters
    ----------
    targets
        Target URIs, ``Session`` objects, ``NamedTarget`` objects, or an inventory
        DataFrame (see ``from_inventory``). Repeated targets are run once.
    max_workers
        Targets worked on at once (default: up to 64, within the open-file limit).
    timeout
        Per-target deadline in seconds for connecting and running (default 60).
        Transports with a connect ``timeout`` option get this one when it is
        shorter and none was given.
    deadline
        Deadline of a whole fan-out in seconds (default: none beyond the
        per-target one). Targets not finished by then are ``Deadline`` rows.
    progress
        ``True``: a tqdm bar (notebooks and terminals); ``False``: none; a
        callable gets ``(done, total)`` after each target. Default: a bar when
        tqdm is installed and more than one target runs.
    cooldown
        Seconds a target that failed to connect is skipped (default 30; 0: never):
        later fan-outs report it at once as a ``SkippedRecentlyFailed`` row saying
        when it failed and why. ``run(..., retry_failed=True)`` and ``close()`` try
        it again; failed commands never count. A ``Cooldown`` (with its own clock)
        is taken as is.
    **options
        Passed to ``trainlab.connect`` for every URI target. Transports with a
        shell mode (``ssh://``, ``local://``) default to ``mode="shell"`` in a
        fleet: a kept shell per target; ``mode="exec"`` shares the sessions of
        plain ``connect()`` calls instead.
    """

    def __init__(
        self,
        targets: Sequence[str | Session | NamedTarget] | pd.DataFrame,
        *,
        max_workers: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        progress: bool | Callable[[int, int], None] | None = None,
        cooldown: float | Cooldown = DEFAULT_COOLDOWN,
        **options: Any,
    ) -> None:
        if hasattr(targets, "columns"):  # an inventory, as from_inventory takes it
            targets = inventory_uris(
                targets,  # type: ignore[arg-type]
                via=options.pop("via", "ssh"),
                user=options.pop("user", None),
                port=options.pop("port", None),
                columns=options.pop("columns", None),
            )
        if isinstance(targets, str | Session):
            targets = [targets]
        self.timeout = _positive(timeout, "timeout")
        self.deadline = None if deadline is None else _positive(deadline, "deadline")
        self.progress = progress
        self.cooldown = cooldown if isinstance(cooldown, Cooldown) else Cooldown(cooldown)
        self.options = dict(options)
        specs: dict[str, Spec] = {}
        for item in targets:
            spec = make_spec(item, self.options, self.timeout)
            specs.setdefault(spec.label, spec)
        if not specs:
            raise TargetError("a fleet needs at least one target")
        self._specs = list(specs.values())
        if max_workers is not None and (isinstance(max_workers, bool) or max_workers < 1):
            raise TargetError(f"max_workers must be a positive number, got {max_workers!r}")
        budget = fd_budget()  # lists /proc/self/fd: once per fleet
        self.max_workers = max_workers or default_max_workers(len(self._specs), budget)
        self.last_result: FleetResult | None = None
        check_file_limit(len(self._specs), budget)

    @classmethod
    def from_inventory(
        cls,
        inventory: pd.DataFrame,
        *,
        via: str = "ssh",
        user: str | None = None,
        port: int | None = None,
        columns: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Fleet:
        """A fleet from an inventory DataFrame (``trainlab.aws.ec2_inventory``'s, or yours).

        ``columns`` maps roles to column names: ``host`` (default ``private_ip``,
        then ``public_ip``), ``user``, ``port``, ``transport`` (a scheme per row,
        else ``via``), ``instance_id`` and ``region`` (for ``via="ssm"``). Rows
        without a host (or instance id) are left out with a ``FleetWarning``.

        >>> import pandas as pd
        >>> inv = pd.DataFrame({"private_ip": ["10.0.0.5"], "name": ["web1"]})
        >>> Fleet.from_inventory(inv, user="ec2-user").uris
        ['ssh://ec2-user@10.0.0.5']
        """
        return cls(inventory_uris(inventory, via, user, port, columns), **kwargs)

    @classmethod
    def from_ansible(
        cls, path: str | os.PathLike[str], pattern: str = "all", **options: Any
    ) -> Fleet:
        """A fleet of the hosts of an Ansible inventory that ``pattern`` selects.

        Read by ansible-core (extra ``ansible``) as ``ansible -i path`` reads it:
        INI or YAML, groups and children, ranges, group_vars and host_vars, patterns
        such as ``web:&prod`` or ``all:!staging``. Each host's row is labelled with
        its inventory name. ``ansible_host``, ``ansible_port`` and ``ansible_user``
        make an ``ssh://`` URI; ``ansible_ssh_private_key_file``, ``ansible_become``
        and ``ansible_become_user`` become ``key_file``, ``sudo`` and ``sudo_user``,
        winning over the same keyword options; ``ansible_connection=local`` makes
        ``local://``. Hosts of other connections (winrm, docker...) or become
        methods are left out with a ``FleetWarning``. ``options`` are the
        ``Fleet`` arguments and session options for every target that takes them.
        """
        from trainlab.fleet.inventories import ansible_targets, split_options

        fleet_options, session_options = split_options(cls, options)
        return cls(ansible_targets(path, pattern, session_options), **fleet_options)

    @classmethod
    def from_ssh_config(
        cls, pattern: str = "*", path: str | os.PathLike[str] = "~/.ssh/config", **options: Any
    ) -> Fleet:
        """A fleet of the ``Host`` entries of an OpenSSH client config that ``pattern`` matches.

        ``pattern`` is an OpenSSH pattern list (``web*,!web3``); wildcard entries
        are patterns, not hosts. Each target is ``ssh://NAME`` reading ``path``
        (``ssh_config``) as any ``ssh://`` session does, so HostName, Port, User,
        IdentityFile and ProxyJump apply; rows are labelled ``NAME``. ``options``
        are the ``Fleet`` arguments and session options for every target.
        """
        from trainlab.fleet.inventories import split_options, ssh_config_targets

        fleet_options, session_options = split_options(cls, options)
        return cls(ssh_config_targets(pattern, path, session_options), **fleet_options)

    # ------------------------------------------------------------ properties
    @property
    def uris(self) -> list[str]:
        """The targets, as the fleet names them."""
        return [spec.label for spec in self._specs]

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        shown = ", ".join(self.uris[:3]) + (", ..." if len(self) > 3 else "")
        return f"<Fleet {len(self)} targets [{shown}] max_workers={self.max_workers}>"

    def sessions(self) -> list[Session]:
        """The fleet's sessions (from the registry; opened lazily on first use)."""
        return [spec.connect() for spec in self._specs]

    def close(self) -> None:
        """Close the fleet's sessions in this process (those it has made or was given).

        Forgets the targets cooling down too: the next fan-out tries every target.
        """
        self.cooldown.forget()
        for spec in self._specs:
            session = spec.session or spec.kept.pop("session", None)
            if session is not None:
                close_quietly(session)

    # -------------------------------------------------------------- fan-out
    def run(
        self,
        command: str | Sequence[Any],
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        check: bool = False,
        executor: Any = None,
        progress: bool | Callable[[int, int], None] | None = None,
        retry_failed: bool = False,
    ) -> FleetResult:
        """Run ``command`` on every target at once; one ``Outcome`` per target.

        ``timeout`` and ``deadline`` override the fleet's for this call (the
        connect timeout stays the fleet's, so sessions are reused). ``check=True``
        raises ``FleetError`` when any target failed. ``executor`` may be a
        ``dask.distributed.Client``: targets are then split across its workers.
        ``retry_failed=True`` tries the targets cooling down too (see ``cooldown``).
        """
        text = command_text(command)
        return self._fan_out(
            [text], False, False, timeout, deadline, check, executor, progress, text, retry_failed
        )

    def run_many(
        self,
        commands: Sequence[str | Sequence[Any]],
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        stop_on_error: bool = False,
        check: bool = False,
        executor: Any = None,
        progress: bool | Callable[[int, int], None] | None = None,
        retry_failed: bool = False,
    ) -> FleetResult:
        """Run ``commands`` as one batch per target; one ``Outcome`` per target and command."""
        if isinstance(commands, str):
            raise TargetError("run_many takes a list of commands; use run() for one command")
        texts = [command_text(c) for c in commands]
        if not texts:
            raise TargetError("run_many needs at least one command")
        label = f"{len(texts)} commands"
        return self._fan_out(
            texts,
            True,
            stop_on_error,
            timeout,
            deadline,
            check,
            executor,
            progress,
            label,
            retry_failed,
        )

    def _fan_out(  # noqa: PLR0917 - private, called from run and run_many only
        self,
        commands: list[str],
        batch: bool,
        stop_on_error: bool,
        timeout: float | None,
        deadline: float | None,
        check: bool,
        executor: Any,
        progress: bool | Callable[[int, int], None] | None,
        label: str,
        retry_failed: bool = False,
    ) -> FleetResult:
        plan = Plan(
            commands=commands,
            batch=batch,
            stop_on_error=stop_on_error,
            timeout=self.timeout if timeout is None else _positive(timeout, "timeout"),
            deadline=self.deadline if deadline is None else _positive(deadline, "deadline"),
        )
        chosen = self.progress if progress is None else progress
        started = time.perf_counter()
        if retry_failed:
            self.cooldown.forget()
        skipped = self.cooldown.skip(self.uris, commands)
        cooling = {o.target for o in skipped}
        specs = [spec for spec in self._specs if spec.label not in cooling]
        with _Progress(chosen, len(self._specs), label) as bar:
            run = self._executor(plan, executor, bar.update, specs) if specs else None
            try:
                if cooling:
                    bar.update(len(cooling))
                outcomes = run.execute() if run is not None else []
                bar.outcome = failures(o.ok for o in [*outcomes, *skipped])
            except KeyboardInterrupt as exc:
                partial = FleetResult(
                    _in_order(self.uris, (run.partial() if run is not None else []) + skipped),
                    duration=time.perf_counter() - started,
                    label=label,
                    interrupted=True,
                )
                self.last_result = partial
                exc.results = partial  # type: ignore[attr-defined]
                finished = {o.target for o in partial if o.error_type != "Cancelled"}
                exc.add_note(
                    f"trainlab: {len(finished)} of {len(self)} targets had finished; "
                    "every outcome is in fleet.last_result"
                )
                raise
        self.cooldown.learn(outcomes)
        result = FleetResult(
            _in_order(self.uris, outcomes + skipped),
            duration=time.perf_counter() - started,
            label=label,
        )
        self.last_result = result
        return result.raise_for_errors() if check else result

    def _executor(
        self, plan: Plan, client: Any, update: Callable[[int], None], specs: list[Spec]
    ) -> Executor:
        """The engine of one fan-out: a Dask ``client``'s workers, SSM's own, or threads here."""
        if client is not None:
            from trainlab.fleet.dask_executor import DaskExecutor

            return DaskExecutor(client, specs, plan, self.max_workers, update)
        if any(spec.uri.startswith("ssm://") for spec in specs):
            from trainlab.aws.ssm_executor import SSMExecutor

            if SSMExecutor.takes(specs, plan):
                return SSMExecutor(specs, plan, update)
        return ThreadExecutor(specs, plan, self.max_workers, update)


def _in_order(targets: Sequence[str], outcomes: Sequence[Outcome]) -> list[Outcome]:
    """``outcomes`` in the fleet's order of ``targets`` (each target's rows kept in order;
    a row for a target the fleet does not name comes last, never lost)."""
    by_target: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_target.setdefault(outcome.target, []).append(outcome)
    ordered = [o for target in targets for o in by_target.pop(target, [])]
    return ordered + [o for rows in by_target.values() for o in rows]


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise TargetError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class _Progress:
    """A tqdm bar, a callback, or nothing; one ``update`` for all three."""

    def __init__(
        self, choice: bool | Callable[[int, int], None] | None, total: int, label: str
    ) -> None:
        self.total = total
        self.done = 0
        self.callback: Callable[[int, int], None] | None = None
        enabled: bool | None = bool(choice)
        if callable(choice) and not isinstance(choice, bool):
            self.callback, enabled = choice, False
        elif choice is None:
            enabled = None if total > 1 else False  # a bar when tqdm is there
        self.bar = progress_bar(enabled, total=total, desc=f"fleet {label[:40]}", unit="target")
        self.outcome = ""  # "N failed", for the line the bar leaves

    def update(self, count: int) -> None:
        self.done += count
        self.bar.update(count)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close(self.outcome)
