"""Deprecated alias of ``trainlab.fleet.dask_executor``, where the Dask executor now lives.

Kept so old imports, and worker plugins pickled under this path, still resolve.
"""

from __future__ import annotations

import warnings

from trainlab.fleet.dask_executor import (
    PLUGIN_NAME,
    DaskExecutor,
    SessionPlugin,
    assign,
    worker_stats,
)

__all__ = ["PLUGIN_NAME", "DaskRun", "SessionPlugin", "assign", "worker_stats"]

DaskRun = DaskExecutor  # its former name

warnings.warn(
    "trainlab._dask is deprecated; import from trainlab.fleet.dask_executor",
    DeprecationWarning,
    stacklevel=2,
)
