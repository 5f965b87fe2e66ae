"""trainlab: explore infrastructure from Jupyter over kept-alive connections.

>>> import trainlab
>>> s = trainlab.connect("local://?mode=shell", reuse=False)
>>> s.run("echo hello").stdout
'hello\\n'
>>> s.close()

``import trainlab`` is light: pandas, paramiko, boto3, pypsrp, IPython and
matplotlib load only when a feature first needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from trainlab.errors import (
    AWSError,
    CommandFailed,
    CommandTimeout,
    ConnectError,
    ConnectTimeout,
    FileError,
    FileMissing,
    FleetError,
    HostKeyError,
    HTTPError,
    InvalidCommand,
    OutputError,
    SessionClosed,
    SkippedRecentlyFailed,
    StrayOutputWarning,
    TargetError,
    TrainlabError,
    TrainlabWarning,
    TransportError,
)
from trainlab.options import Option, describe_options
from trainlab.registry import available_schemes, transport_class
from trainlab.result import BatchResult, CommandResult, FileStat
from trainlab.session import SESSION_OPTIONS, Session, close_all, connect, sessions
from trainlab.transports.base import Transport
from trainlab.uri import Target, parse_target

if TYPE_CHECKING:
    from trainlab import aws as aws
    from trainlab import bench as bench
    from trainlab import sandbox as sandbox
    from trainlab.aws.inventory import PartialInventoryWarning as PartialInventoryWarning
    from trainlab.fleet import Fleet as Fleet
    from trainlab.fleet import FleetResult as FleetResult
    from trainlab.fleet import FleetWarning as FleetWarning
    from trainlab.transports.rest import InsecureTLSWarning as InsecureTLSWarning
    from trainlab.transports.ssh import InsecureHostKeyWarning as InsecureHostKeyWarning

#: The installed trainlab version.
__version__ = "0.1.0"

__all__ = [
    "AWSError",
    "BatchResult",
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "ConnectError",
    "ConnectTimeout",
    "FileError",
    "FileMissing",
    "FileStat",
    "Fleet",
    "FleetError",
    "FleetResult",
    "FleetWarning",
    "HTTPError",
    "HostKeyError",
    "InsecureHostKeyWarning",
    "InsecureTLSWarning",
    "InvalidCommand",
    "Option",
    "OutputError",
    "PartialInventoryWarning",
    "Session",
    "SessionClosed",
    "SkippedRecentlyFailed",
    "StrayOutputWarning",
    "Target",
    "TargetError",
    "TrainlabError",
    "TrainlabWarning",
    "Transport",
    "TransportError",
    "__version__",
    "available_schemes",
    "aws",
    "bench",
    "close_all",
    "connect",
    "describe",
    "load_ipython_extension",
    "parse_target",
    "sessions",
]

# The sandbox is tooling for trying the kit, not API: reachable as trainlab.sandbox, but
# left out of __all__.
_LAZY_MODULES = {"aws", "bench", "sandbox"}
# The warnings defined beside what emits them load with it (paramiko, requests, boto3).
_LAZY_NAMES = {
    "Fleet": "trainlab.fleet",
    "FleetResult": "trainlab.fleet",
    "FleetWarning": "trainlab.fleet",
    "InsecureHostKeyWarning": "trainlab.transports.ssh",
    "InsecureTLSWarning": "trainlab.transports.rest",
    "PartialInventoryWarning": "trainlab.aws.inventory",
}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext trainlab``: registers the ``%train`` magics."""
    from trainlab.magics import load_ipython_extension as load

    load(ipython)


def describe(scheme: str) -> str:
    """The options a scheme takes (its own and the session's), as a text table.

    >>> print(describe("local").splitlines()[0].split()[0])
    cache_bytes
    """
    cls = transport_class(scheme.removesuffix("://"))
    return describe_options({**SESSION_OPTIONS, **cls.options})


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        module = import_module(f"trainlab.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        value = getattr(import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
