"""Fleets: one command (or batch) on many targets at once, with every target a row.

Threads on this machine by default, bounded by the open-file limit; a Dask
cluster (``executor=Client(...)``) to reach beyond it. Sessions come from the
live-session registry, so a second fan-out over the same fleet reuses every
connection, here and on each Dask worker.

>>> import trainlab
>>> fleet = trainlab.Fleet(["mock://web1", "mock://web2"], responses={"hostname": "web\\n"})
>>> r = fleet.run("hostname", progress=False)
>>> r
<FleetResult 'hostname' on 2 targets: 2 ok, 0 failed, ... ms>
>>> list(r.frame["target"])
['mock://web1', 'mock://web2']
"""

from __future__ import annotations

import html
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainlab import registry
from trainlab.errors import FleetError, TargetError
from trainlab.progress import progress_bar
from trainlab.result import RESULT_COLUMNS, CommandResult, Items, clip, results_frame
from trainlab.session import Session, close_quietly, command_text, connect
from trainlab.uri import redact

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FLEET_COLUMNS",
    "Fleet",
    "FleetResult",
    "FleetWarning",
    "Outcome",
    "default_max_workers",
]

#: Most threads a fan-out uses unless told otherwise.
DEFAULT_MAX_WORKERS = 64
#: Per-target deadline (connect and command) unless told otherwise, seconds.
DEFAULT_TIMEOUT = 60.0
# File descriptors one target may hold: a socket, or a local shell's three pipes.
_FDS_PER_TARGET = 4
# Descriptors left for everything else in the process (logs, notebooks, libraries).
_FD_RESERVE = 64
# How long the coordinator lets a target's own timeout report itself first.
_GRACE = 1.0
# The coordinator wakes at least this often (expiry checks, Ctrl-C in a notebook).
_TICK = 0.2

FLEET_COLUMNS = (*RESULT_COLUMNS, "reused", "error_type", "error")
_FLEET_DTYPES = {"exit_status": "Int64", "ok": "bool", "cached": "bool", "reused": "bool"}


class FleetWarning(UserWarning):
    """A fan-out will hold more connections than the open-file limit comfortably allows."""


# ------------------------------------------------------------------- outcomes


@dataclass(frozen=True, eq=False)
class Outcome:
    """What one command did on one target: its result, or why there is none.

    ``error_type`` names the failure class (``ConnectError``, ``HostKeyError``,
    ``CommandTimeout``, ``Deadline``, ``Cancelled``, ...); ``error`` says what
    happened. ``reused`` is True when the target's session was already open.
    """

    target: str
    command: str
    result: CommandResult | None = None
    error: str = ""
    error_type: str = ""
    duration: float = 0.0
    reused: bool = False

    @property
    def ok(self) -> bool:
        """True when the command ran and exited 0."""
        return self.result is not None and self.result.ok

    @property
    def exit_status(self) -> int | None:
        return None if self.result is None else self.result.exit_status

    @property
    def stdout(self) -> str:
        return "" if self.result is None else self.result.stdout

    @property
    def stderr(self) -> str:
        return "" if self.result is None else self.result.stderr

    @property
    def duration_s(self) -> float:
        """The command's own duration; for a failure, how long the target took to fail."""
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


def _failure(target: str, command: str, exc: BaseException, since: float) -> Outcome:
    message = str(exc) or type(exc).__name__
    return Outcome(
        target,
        command,
        error=message,
        error_type=type(exc).__name__,
        duration=time.perf_counter() - since,
    )


def _placeholder(target: str, commands: Sequence[str], kind: str, why: str) -> list[Outcome]:
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
                f"<td>{o.duration_s * 1e3:.1f}</td></tr>"
            )
        return (
            f"<div class='trainlab-fleet'><small>{html.escape(repr(self))}</small><table>"
            "<tr><th>target</th><th>command</th><th>exit</th><th>stdout / error</th>"
            "<th>stderr</th><th>ms</th></tr>" + "".join(rows) + "</table></div>"
        )


# ---------------------------------------------------------------------- specs


@dataclass(frozen=True)
class _Spec:
    """One target: a URI and connect options, or a session given as is."""

    label: str
    uri: str = field(default="", repr=False)  # may hold a password; the label does not
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # may hold secrets
    session: Session | None = None
    # The registry's session, kept between fan-outs: a registry lookup parses the
    # URI and freezes the options, a third of a warm fan-out's own CPU time.
    kept: dict[str, Session] = field(default_factory=dict, compare=False, repr=False)

    def connect(self) -> Session:
        if self.session is not None:
            return self.session
        kept = self.kept.get("session")
        if kept is not None and not kept.closed:
            return kept  # a dropped connection reopens on its next call, as always
        session = connect(self.uri, **self.options)
        self.kept["session"] = session
        return session

    def portable(self) -> tuple[str, str, dict[str, Any]]:
        """(label, uri, options) to send to another process."""
        if self.session is not None:
            settings = {k: v for k, v in self.session.transport.settings.items() if v is not None}
            return self.label, self.session.uri, settings
        return self.label, self.uri, dict(self.options)


def _inventory_uris(
    inventory: pd.DataFrame,
    via: str = "ssh",
    user: str | None = None,
    port: int | None = None,
    columns: Mapping[str, str] | None = None,
) -> list[str]:
    """One URI per inventory row that has an address (see ``Fleet.from_inventory``)."""
    mapping = {"instance_id": "instance_id", "region": "region", **(columns or {})}
    present = set(inventory.columns)
    if "host" not in mapping:
        mapping["host"] = next(
            (c for c in ("private_ip", "public_ip", "host") if c in present), "private_ip"
        )
    for role in ("host", "user", "port", "transport"):
        name = mapping.get(role)
        if name is not None and role in (columns or {}) and name not in present:
            raise TargetError(f"the inventory has no column {name!r} (for {role})")
    uris: list[str] = []
    missing = 0
    for _, row in inventory.iterrows():
        scheme = str(_cell(row, mapping.get("transport")) or via).removesuffix("://")
        if scheme == "ssm":
            instance = _cell(row, mapping["instance_id"])
            if not instance:
                missing += 1
                continue
            region = _cell(row, mapping["region"])
            uris.append(f"ssm://{instance}" + (f"?region={region}" if region else ""))
            continue
        host = _cell(row, mapping["host"])
        if not host:
            missing += 1
            continue
        who = _cell(row, mapping.get("user")) or user
        where = _cell(row, mapping.get("port")) or port
        netloc = (f"{who}@" if who else "") + (f"[{host}]" if ":" in str(host) else str(host))
        uris.append(f"{scheme}://{netloc}" + (f":{int(where)}" if where else ""))
    if missing:
        warnings.warn(
            f"{missing} inventory rows have no address for via={via!r} and are left out",
            FleetWarning,
            stacklevel=3,  # the caller of from_inventory or Fleet()
        )
    return uris


def default_max_workers(targets: int, budget: int | None = None) -> int:
    """Threads for a fan-out over ``targets``: at most 64, within the open-file limit.

    Each target may hold a few descriptors while it connects and runs; the soft
    ``RLIMIT_NOFILE`` minus what is open now (and a reserve; ``budget`` if already
    counted) bounds how many run at once.
    """
    free = _fd_budget() if budget is None else budget
    return max(1, min(DEFAULT_MAX_WORKERS, targets, free // _FDS_PER_TARGET))


def _fd_budget() -> int:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no rlimits here (Windows)
        return DEFAULT_MAX_WORKERS * _FDS_PER_TARGET
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 0
    return max(0, soft - used - _FD_RESERVE)


def _label(uri: str) -> str:
    """``uri`` as a fleet names it: its password and secret query options hidden."""
    from urllib.parse import parse_qsl

    from trainlab.uri import parse_target

    label = redact(uri)
    try:
        declared = registry.transport_class(parse_target(uri).scheme).options
    except TargetError:
        return label  # reported per target when it connects
    base, sep, query = label.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(key in declared and declared[key].secret for key, _ in pairs):
        return label
    shown = [
        f"{key}=***" if key in declared and declared[key].secret else f"{key}={value}"
        for key, value in pairs
    ]
    return base + sep + "&".join(shown)


def _connect_options(uri: str, options: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    """The options a fleet connects ``uri`` with: the caller's, and two defaults.

    A scheme with a shell mode gets ``mode="shell"`` unless told otherwise: one
    kept shell per target answers a repeated fan-out in about half the time of
    a channel per command (benchmarks/bench_fleet.py). A scheme with a connect
    ``timeout`` option gets the per-target deadline when that is shorter.
    """
    from trainlab.uri import parse_target

    chosen = dict(options)
    try:
        target = parse_target(uri)
        cls = registry.transport_class(target.scheme)
    except TargetError:
        return chosen  # reported per target when it connects
    given = set(chosen) | set(target.query)
    mode = cls.options.get("mode")
    if mode is not None and mode.choices and "shell" in mode.choices and "mode" not in given:
        chosen["mode"] = "shell"
    declared = cls.options.get("timeout")
    if (
        declared is not None
        and "timeout" not in given
        and (declared.default is None or timeout < float(declared.default))
    ):
        chosen["timeout"] = timeout
    return chosen


# ---------------------------------------------------------------------- fleet


class Fleet:
    """Many targets, one call: ``run`` and ``run_many`` fan out and keep every outcome.

    Parameters
    ----------
    targets
        Target URIs, ``Session`` objects, or an inventory DataFrame (see
        ``from_inventory``). Repeated targets are run once.
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
    **options
        Passed to ``trainlab.connect`` for every URI target. Transports with a
        shell mode (``ssh://``, ``local://``) default to ``mode="shell"`` in a
        fleet: a kept shell per target; ``mode="exec"`` shares the sessions of
        plain ``connect()`` calls instead.

    >>> fleet = Fleet(["mock://a", "mock://b"], responses={"uptime": "up\\n"})
    >>> fleet.run("uptime", progress=False).frame[["target", "stdout"]].to_dict("list")
    {'target': ['mock://a', 'mock://b'], 'stdout': ['up\\n', 'up\\n']}
    """

    def __init__(
        self,
        targets: Sequence[str | Session] | pd.DataFrame,
        *,
        max_workers: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        progress: bool | Callable[[int, int], None] | None = None,
        **options: Any,
    ) -> None:
        if hasattr(targets, "columns"):  # an inventory, as from_inventory takes it
            targets = _inventory_uris(
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
        self.options = dict(options)
        specs: dict[str, _Spec] = {}
        for item in targets:
            spec = self._spec(item)
            specs.setdefault(spec.label, spec)
        if not specs:
            raise TargetError("a fleet needs at least one target")
        self._specs = list(specs.values())
        if max_workers is not None and (isinstance(max_workers, bool) or max_workers < 1):
            raise TargetError(f"max_workers must be a positive number, got {max_workers!r}")
        budget = _fd_budget()  # lists /proc/self/fd: once per fleet
        self.max_workers = max_workers or default_max_workers(len(self._specs), budget)
        self.last_result: FleetResult | None = None
        self._check_file_limit(budget)

    def _spec(self, item: str | Session) -> _Spec:
        if isinstance(item, Session):
            return _Spec(item.uri, session=item)
        if not isinstance(item, str):
            raise TargetError(f"fleet targets are URIs or sessions, got {type(item).__name__}")
        options = _connect_options(item, self.options, self.timeout)
        return _Spec(_label(item), uri=item, options=options)

    def _check_file_limit(self, budget: int) -> None:
        wanted = len(self._specs) * 2  # kept sessions hold a socket (or pipes) each
        if wanted > budget:
            warnings.warn(
                f"{len(self._specs)} kept sessions may exhaust the open-file limit "
                f"({budget} descriptors free); raise it (ulimit -n) or split the fleet",
                FleetWarning,
                stacklevel=3,
            )

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
        return cls(_inventory_uris(inventory, via, user, port, columns), **kwargs)

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
        """Close the fleet's sessions in this process (those it has made or was given)."""
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
    ) -> FleetResult:
        """Run ``command`` on every target at once; one ``Outcome`` per target.

        ``timeout`` and ``deadline`` override the fleet's for this call (the
        connect timeout stays the fleet's, so sessions are reused). ``check=True``
        raises ``FleetError`` when any target failed. ``executor`` may be a
        ``dask.distributed.Client``: targets are then split across its workers.
        """
        text = command_text(command)
        return self._fan_out(
            [text], False, False, timeout, deadline, check, executor, progress, text
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
    ) -> FleetResult:
        """Run ``commands`` as one batch per target; one ``Outcome`` per target and command."""
        if isinstance(commands, str):
            raise TargetError("run_many takes a list of commands; use run() for one command")
        texts = [command_text(c) for c in commands]
        if not texts:
            raise TargetError("run_many needs at least one command")
        label = f"{len(texts)} commands"
        return self._fan_out(
            texts, True, stop_on_error, timeout, deadline, check, executor, progress, label
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
    ) -> FleetResult:
        plan = _Plan(
            commands=commands,
            batch=batch,
            stop_on_error=stop_on_error,
            timeout=self.timeout if timeout is None else _positive(timeout, "timeout"),
            deadline=self.deadline if deadline is None else _positive(deadline, "deadline"),
        )
        chosen = self.progress if progress is None else progress
        started = time.perf_counter()
        with _Progress(chosen, len(self._specs), label) as bar:
            run: _Run
            if executor is None and _SSMRun.takes(self._specs, plan):
                run = _SSMRun(self._specs, plan, bar.update)
            elif executor is None:
                run = _ThreadRun(self._specs, plan, self.max_workers, bar.update)
            else:
                from trainlab._dask import DaskRun

                run = DaskRun(executor, self._specs, plan, self.max_workers, bar.update)
            try:
                outcomes = run.execute()
            except KeyboardInterrupt as exc:
                partial = FleetResult(
                    run.partial(),
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
        result = FleetResult(outcomes, duration=time.perf_counter() - started, label=label)
        self.last_result = result
        return result.raise_for_errors() if check else result


def _cell(row: Any, column: str | None) -> Any:
    if column is None or column not in row.index:
        return None
    value = row[column]
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # a list-like cell is a value, not a missing one
        pass
    return value


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise TargetError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


# ------------------------------------------------------------------ execution


@dataclass(frozen=True)
class _Plan:
    """What every target does, and within what time."""

    commands: list[str]
    batch: bool
    stop_on_error: bool
    timeout: float
    deadline: float | None


def run_target(
    spec: _Spec, plan: _Plan, budget: float, hold: _Holder | None = None
) -> list[Outcome]:
    """Connect (or reuse) and run the plan on one target; never raises a TrainlabError."""
    since = time.perf_counter()
    label = spec.label
    if budget <= 0:
        return _placeholder(label, plan.commands, "Deadline", "not started: past the deadline")
    end = time.monotonic() + budget
    reused = False
    try:
        session = spec.connect()
        reused = session.alive
        if hold is not None:
            hold.add(label, session, opened_here=not reused)
        session.open()
        remaining = max(0.001, end - time.monotonic())
        if plan.batch:
            batch = session.run_many(
                plan.commands, timeout=remaining, stop_on_error=plan.stop_on_error
            )
            outcomes = [Outcome(label, r.command, r, reused=reused) for r in batch]
            outcomes += [
                Outcome(label, c, error="not run after a failure", error_type="Skipped")
                for c in batch.skipped
            ]
            return outcomes
        [command] = plan.commands
        return [Outcome(label, command, session.run(command, timeout=remaining), reused=reused)]
    except Exception as exc:  # every failure is a row: nothing is lost
        failure = _failure(label, "", exc, since)
        # A batch past its deadline keeps the commands that finished before it.
        done = list(getattr(exc, "partial", None) or []) if plan.batch else []
        return [Outcome(label, r.command, r, reused=reused) for r in done] + [
            Outcome(
                label,
                command,
                error=failure.error,
                error_type=failure.error_type,
                duration=failure.duration,
                reused=reused,
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

    def add(self, label: str, session: Session, *, opened_here: bool) -> None:
        with self._lock:
            if opened_here:
                self._opened.append(session)
            self._busy[label] = session

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


class _Run:
    """One fan-out's state: the targets, the plan, and the outcomes so far."""

    def __init__(self, specs: Sequence[_Spec], plan: _Plan, update: Callable[[int], None]) -> None:
        self.specs = list(specs)
        self.plan = plan
        self.update = update
        self.outcomes: dict[int, list[Outcome]] = {}

    def execute(self) -> list[Outcome]:  # pragma: no cover - each executor defines it
        raise NotImplementedError

    def ordered(self) -> list[Outcome]:
        return [o for index in range(len(self.specs)) for o in self.outcomes[index]]

    def partial(self) -> list[Outcome]:
        """Finished outcomes, and a ``Cancelled`` row for every other target."""
        rows: list[Outcome] = []
        for index, spec in enumerate(self.specs):
            rows += self.outcomes.get(index) or _placeholder(
                spec.label, self.plan.commands, "Cancelled", "interrupted before it finished"
            )
        return rows


class _ThreadRun(_Run):
    """A fan-out in a thread pool on this machine, watched by the calling thread."""

    def __init__(
        self,
        specs: Sequence[_Spec],
        plan: _Plan,
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
                    if end is not None and now > end + _GRACE:
                        why = "the fan-out's deadline passed" + (
                            " while it ran" if began is not None else " before it started"
                        )
                        self._give_up(index, future, "Deadline", why)
                    elif began is not None and now > began + plan.timeout + _GRACE:
                        self._give_up(
                            index, future, "Timeout", f"no answer within {plan.timeout:g} s"
                        )
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
                _failure(spec.label, c, exc, time.perf_counter()) for c in self.plan.commands
            ]
        self.update(1)

    def _give_up(self, index: int, future: Future[list[Outcome]], kind: str, why: str) -> None:
        future.cancel()
        label = self.specs[index].label
        self.outcomes[index] = _placeholder(label, self.plan.commands, kind, why)
        self.update(1)


class _SSMRun(_Run):
    """ssm:// targets and one command: SSM's own fan-out (``trainlab.aws.ssm_run``).

    One ``SendCommand`` per 50 instances of a region, rather than a send and a
    waiter per target; its rows (unmanaged, failed, timed-out instances
    included) become outcomes.
    """

    _KEYS = ("region", "profile", "endpoint_url", "poll_interval", "output_s3_bucket")

    @classmethod
    def takes(cls, specs: Sequence[_Spec], plan: _Plan) -> bool:
        return not plan.batch and all(cls._fits(spec) for spec in specs)

    @classmethod
    def _fits(cls, spec: _Spec) -> bool:
        """True when ``ssm_run`` honours every option of ``spec``, the URI's query too."""
        from trainlab.uri import parse_target

        if spec.session is not None or not spec.uri.startswith("ssm://"):
            return False
        try:
            query = parse_target(spec.uri).query
        except TargetError:
            query = {}  # reported as its row by execute()
        return set(spec.options) | set(query) <= set(cls._KEYS)

    def execute(self) -> list[Outcome]:
        from trainlab.aws.fanout import ssm_run
        from trainlab.errors import TrainlabError
        from trainlab.uri import parse_target

        plan = self.plan
        [command] = plan.commands
        groups: dict[tuple[Any, ...], list[tuple[int, str]]] = {}
        for index, spec in enumerate(self.specs):
            try:
                target = parse_target(spec.uri)
            except TargetError as exc:
                self.outcomes[index] = [_failure(spec.label, command, exc, time.perf_counter())]
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
                    self.outcomes[index] = _placeholder(
                        self.specs[index].label,
                        plan.commands,
                        "Deadline",
                        "not started: past the deadline",
                    )
                self.update(len(members))
                continue
            try:
                frame = ssm_run(
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
                    self.outcomes[index] = [_failure(self.specs[index].label, command, exc, since)]
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
    return Outcome(
        label,
        command,
        error=str(row["error"] or row["status"]),
        error_type=str(row["status"]),
        duration=elapsed,
    )


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

    def update(self, count: int) -> None:
        self.done += count
        self.bar.update(count)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
