"""Fleets: one command (or batch) on many targets at once, with every target a row.

Threads on this machine by default, bounded by the open-file limit; a Dask
cluster (``executor=Client(...)``) to reach beyond it. Sessions come from the
live-session registry, so a second fan-out over the same fleet reuses every
connection, here and on each Dask worker.

The package: ``results`` (outcomes, ``FleetResult``), ``report`` (a fan-out at a
glance), ``cooldown`` (targets that failed to connect, skipped for a while),
``targets`` (URIs, labels, the open-file budget), ``inventories`` (Ansible
inventories and ssh_config as targets), ``engine`` (the ``Executor`` interface and
``Plan``), ``threads`` and ``dask_executor`` (two executors; SSM's is
``trainlab.aws.ssm_executor``) and ``fleet`` (the ``Fleet`` facade).

>>> import trainlab
>>> fleet = trainlab.Fleet(["mock://web1", "mock://web2"], responses={"hostname": "web\\n"})
>>> r = fleet.run("hostname", progress=False)
>>> r
<FleetResult 'hostname' on 2 targets: 2 ok, 0 failed, ... ms>
>>> list(r.frame["target"])
['mock://web1', 'mock://web2']
"""

from __future__ import annotations

from trainlab.fleet.cooldown import Cooldown
from trainlab.fleet.fleet import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from trainlab.fleet.fleet import Fleet
from trainlab.fleet.report import FleetReport
from trainlab.fleet.results import FLEET_COLUMNS, FleetResult, Outcome
from trainlab.fleet.targets import DEFAULT_MAX_WORKERS as DEFAULT_MAX_WORKERS
from trainlab.fleet.targets import FleetWarning, NamedTarget, default_max_workers
from trainlab.fleet.threads import run_target as run_target

__all__ = [
    "FLEET_COLUMNS",
    "Cooldown",
    "Fleet",
    "FleetReport",
    "FleetResult",
    "FleetWarning",
    "NamedTarget",
    "Outcome",
    "default_max_workers",
]
