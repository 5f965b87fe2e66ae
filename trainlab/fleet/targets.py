"""Fleet targets: a URI or session per target, inventory rows as URIs, the open-file budget.

Owns ``Spec`` (one target, with the options a fleet connects it with),
``NamedTarget`` (a URI with a name and options of its own), the
labels that hide secrets, and how many targets fit in the open-file limit;
imports the session layer, the registry and ``trainlab.uri``, never an executor.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trainlab import registry
from trainlab.errors import TargetError, TrainlabWarning
from trainlab.session import Session, connect
from trainlab.uri import parse_target, redact

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MAX_WORKERS",
    "FleetWarning",
    "NamedTarget",
    "Spec",
    "check_file_limit",
    "default_max_workers",
    "fd_budget",
    "inventory_uris",
    "make_spec",
]

#: Most threads a fan-out uses unless told otherwise.
DEFAULT_MAX_WORKERS = 64
# File descriptors one target may hold: a socket, or a local shell's three pipes.
_FDS_PER_TARGET = 4
# Descriptors left for everything else in the process (logs, notebooks, libraries).
_FD_RESERVE = 64


class FleetWarning(TrainlabWarning):
    """Targets left out of a fleet (no address, no reachable transport, hosts only in an
    ``Include``), or a fan-out holding more connections than the open-file limit allows."""


@dataclass(frozen=True)
class NamedTarget:
    """A fleet target with a name of its own: its row label, and options only it gets.

    Inventories make these (``Fleet.from_ansible``, ``Fleet.from_ssh_config``): the
    inventory's name for a host labels its rows, whatever address it connects to.
    ``options`` win over the fleet's keyword options.

    >>> from trainlab.fleet import Fleet
    >>> Fleet([NamedTarget("web1", "mock://10.0.0.5")]).uris
    ['web1']
    """

    label: str
    uri: str = field(repr=False)  # may hold a password; the label does not
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # may hold secrets


@dataclass(frozen=True)
class Spec:
    """One target: a URI and connect options, or a session given as is."""

    label: str
    uri: str = field(default="", repr=False)  # may hold a password; the label does not
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # may hold secrets
    session: Session | None = None
    # The registry's session, kept between fan-outs: a registry lookup parses the
    # URI and freezes the options, a third of a warm fan-out's own CPU time.
    kept: dict[str, Session] = field(default_factory=dict, compare=False, repr=False)

    def connect(self) -> Session:
        """The target's session: the one given, the one kept, or a new one from the registry."""
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


def inventory_uris(
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
    free = fd_budget() if budget is None else budget
    return max(1, min(DEFAULT_MAX_WORKERS, targets, free // _FDS_PER_TARGET))


def fd_budget() -> int:
    """Descriptors free for a fan-out: the soft ``RLIMIT_NOFILE``, less those open and a reserve."""
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


def make_spec(
    item: str | Session | NamedTarget, options: Mapping[str, Any], timeout: float
) -> Spec:
    """The spec of one fleet target: a session as is, or a URI with the fleet's options."""
    if isinstance(item, Session):
        return Spec(item.uri, session=item)
    if isinstance(item, NamedTarget):
        if not item.label or not isinstance(item.label, str):
            raise TargetError(f"a named fleet target needs a label, got {item.label!r}")
        chosen = _connect_options(item.uri, {**options, **item.options}, timeout)
        return Spec(item.label, uri=item.uri, options=chosen)
    if not isinstance(item, str):
        raise TargetError(
            f"fleet targets are URIs, sessions or NamedTargets, got {type(item).__name__}"
        )
    chosen = _connect_options(item, options, timeout)
    return Spec(_label(item), uri=item, options=chosen)


def check_file_limit(count: int, budget: int) -> None:
    """Warn (``FleetWarning``) when ``count`` kept sessions may overrun ``budget`` descriptors."""
    wanted = count * 2  # kept sessions hold a socket (or pipes) each
    if wanted > budget:
        warnings.warn(
            f"{count} kept sessions may exhaust the open-file limit "
            f"({budget} descriptors free); raise it (ulimit -n) or split the fleet",
            FleetWarning,
            stacklevel=3,  # the caller of Fleet()
        )


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
