"""Scheme -> transport class, imported lazily, with the pip extra to install.

Built-in transports are listed by module path so that ``import trainlab`` imports
none of paramiko, boto3 or pypsrp. Third-party transports register under the
entry-point group ``trainlab.transports`` (name = scheme, value = ``module:Class``).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from importlib import metadata

from trainlab.errors import TargetError
from trainlab.transports.base import Transport

__all__ = ["available_schemes", "transport_class"]

ENTRY_POINT_GROUP = "trainlab.transports"


@dataclass(frozen=True)
class _Known:
    module: str
    name: str
    extra: str | None  # the pip extra that brings its dependencies
    needs: str = ""  # the third-party package(s), for the message


BUILTIN: dict[str, _Known] = {
    "local": _Known("trainlab.transports.local", "LocalTransport", None),
    "mock": _Known("trainlab.transports.mock", "MockTransport", None),
    "ssh": _Known("trainlab.transports.ssh", "SSHTransport", "ssh", "paramiko"),
    "aws": _Known("trainlab.transports.aws", "AWSAccountTransport", "aws", "boto3"),
    "ssm": _Known("trainlab.transports.ssm", "SSMTransport", "aws", "boto3"),
    "https": _Known("trainlab.transports.rest", "RESTTransport", "rest", "requests"),
    "http": _Known("trainlab.transports.rest", "HTTPTransport", "rest", "requests"),
    "winrm": _Known("trainlab.transports.winrm", "WinRMTransport", "winrm", "pypsrp"),
    "winrms": _Known("trainlab.transports.winrm", "WinRMSTransport", "winrm", "pypsrp"),
    "pwsh": _Known("trainlab.transports.pwsh", "PwshTransport", "winrm", "psrpcore"),
    "pwsh+ssh": _Known(
        "trainlab.transports.pwsh_ssh", "PwshSSHTransport", "ssh,winrm", "paramiko and psrpcore"
    ),
}

_loaded: dict[str, type[Transport]] = {}
_plugins: dict[str, metadata.EntryPoint] | None = None
_lock = threading.Lock()


def _entry_points() -> dict[str, metadata.EntryPoint]:
    global _plugins  # noqa: PLW0603 - discovered once per process
    if _plugins is None:
        found = {ep.name.lower(): ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        _plugins = found
    return _plugins


def refresh_plugins() -> None:
    """Forget discovered plugins so newly installed ones are found."""
    global _plugins  # noqa: PLW0603
    with _lock:
        _plugins = None
        for scheme in [s for s in _loaded if s not in BUILTIN]:
            del _loaded[scheme]


def available_schemes() -> list[str]:
    """Every scheme ``connect`` understands: built in, then plugins."""
    return sorted(set(BUILTIN) | set(_entry_points()))


def transport_class(scheme: str) -> type[Transport]:
    """The transport class for ``scheme``; ``TargetError`` names the fix if there is none."""
    scheme = scheme.lower()
    with _lock:
        cls = _loaded.get(scheme)
        if cls is not None:
            return cls
        known = BUILTIN.get(scheme)
        if known is not None:
            cls = _import_builtin(scheme, known)
        else:
            plugin = _entry_points().get(scheme)
            if plugin is None:
                raise TargetError(
                    f"unknown scheme {scheme + '://'!r}; known schemes: "
                    + ", ".join(s + "://" for s in available_schemes())
                    + f". A third-party transport registers under the entry-point group "
                    f"{ENTRY_POINT_GROUP!r}."
                )
            cls = _load_plugin(scheme, plugin)
        _loaded[scheme] = cls
        return cls


def _import_builtin(scheme: str, known: _Known) -> type[Transport]:
    try:
        module = importlib.import_module(known.module)
    except ImportError as exc:
        missing = exc.name or known.needs or "a dependency"
        extra = f"pip install 'trainlab[{known.extra}]'" if known.extra else "reinstall trainlab"
        raise TargetError(
            f"the {scheme}:// transport needs {missing}, which is not installed: {extra}"
        ) from exc
    cls: type[Transport] = getattr(module, known.name)
    return cls


def _load_plugin(scheme: str, plugin: metadata.EntryPoint) -> type[Transport]:
    try:
        cls = plugin.load()
    except ImportError as exc:
        dist = plugin.dist.name if plugin.dist else plugin.value
        raise TargetError(
            f"the {scheme}:// transport from {dist} could not be imported ({exc}); "
            f"reinstall it: pip install --force-reinstall {dist}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise TargetError(
            f"entry point {plugin.name} = {plugin.value} is not a trainlab Transport subclass"
        )
    return cls
