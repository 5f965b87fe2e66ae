"""Fleets from the inventories people already keep: Ansible's, and OpenSSH's client config.

Owns how an Ansible host's connection variables become a target (read through
ansible-core's own inventory API) and which ``Host`` entries of an ssh_config a fleet
takes; imports the fleet's targets, the registry and the session's option table, and
ansible-core or paramiko only when called.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainlab import registry
from trainlab.errors import TargetError
from trainlab.fleet.targets import FleetWarning, NamedTarget
from trainlab.session import SESSION_OPTIONS
from trainlab.uri import Target, parse_target

__all__ = [
    "ANSIBLE_HINT",
    "ANSIBLE_VARIABLES",
    "UnsupportedHost",
    "ansible_targets",
    "host_target",
    "split_options",
    "ssh_config_targets",
]

ANSIBLE_HINT = "pip install 'trainlab[ansible]'"

#: What a target takes from an Ansible host's variables: each role and the variables that
#: give it, the last one set winning, as in ansible-core's ssh and sudo plugins.
ANSIBLE_VARIABLES: dict[str, tuple[str, ...]] = {
    "connection": ("ansible_connection",),
    "host": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "key_file": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
    "sudo": ("ansible_become",),
    "sudo_user": ("ansible_become_user", "ansible_sudo_user"),
    "become_method": ("ansible_become_method",),
}

# ansible_connection -> the scheme that reaches the host the same way ("smart" is
# Ansible's old default, meaning ssh).
_CONNECTIONS = {
    "ssh": "ssh",
    "smart": "ssh",
    "paramiko": "ssh",
    "paramiko_ssh": "ssh",
    "local": "local",
}
_SUDO = ("sudo", "ansible.builtin.sudo")
# Ansible's boolean words (ansible.module_utils.parsing.convert_bool).
_TRUE = {"y", "yes", "on", "1", "true", "t", "1.0"}
_FALSE = {"n", "no", "off", "0", "false", "f", "0.0"}
_WILDCARD = set("*?!")
_INCLUDE = re.compile(r"^\s*include\s", re.IGNORECASE | re.MULTILINE)


class UnsupportedHost(TargetError):
    """An inventory host the fleet leaves out: no trainlab transport reaches it as asked."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


# ------------------------------------------------------------------- options
def split_options(
    fleet_class: type, options: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fleet's own keyword arguments, the session options) among ``options``.

    The fleet's are its class's keyword-only parameters (``timeout``, ``max_workers``...).
    """
    own = {
        name
        for name, parameter in inspect.signature(fleet_class).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return (
        {k: v for k, v in options.items() if k in own},
        {k: v for k, v in options.items() if k not in own},
    )


def _with_options(found: list[NamedTarget], options: Mapping[str, Any]) -> list[NamedTarget]:
    """Each target with the session ``options`` its transport takes; its own options win.

    An inventory may mix schemes (an Ansible ``local`` host beside ``ssh`` ones): an
    option goes to the targets whose transport declares it, and one that none of
    them declares is an error, as ``connect`` would raise for each.
    """
    schemes = sorted({parse_target(t.uri).scheme for t in found})
    declared = {s: set(SESSION_OPTIONS) | set(registry.transport_class(s).options) for s in schemes}
    unknown = sorted(k for k in options if not any(k in names for names in declared.values()))
    if unknown:
        shown = " or ".join(f"{s}://" for s in schemes)
        raise TargetError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for {shown}; "
            f"trainlab.describe({schemes[0]!r}) lists the valid ones"
        )
    out = []
    for target in found:
        names = declared[parse_target(target.uri).scheme]
        given = {k: v for k, v in options.items() if k in names}
        out.append(replace(target, options={**given, **target.options}))
    return out


def _report_skipped(skipped: list[UnsupportedHost], source: Path) -> None:
    if not skipped:
        return
    shown = "; ".join(str(s) for s in skipped[:10]) + ("; ..." if len(skipped) > 10 else "")
    warnings.warn(
        f"{len(skipped)} host(s) of {source} left out of the fleet: {shown}",
        FleetWarning,
        stacklevel=4,  # the caller of Fleet.from_ansible / from_ssh_config
    )


# ------------------------------------------------------------------- Ansible
def host_target(name: str, variables: Mapping[str, Any]) -> NamedTarget:
    """The target of Ansible host ``name`` from its (templated) variables.

    ``ansible_connection`` ssh, paramiko or unset gives ``ssh://user@host:port`` with
    ``key_file``, ``sudo`` and ``sudo_user`` options; ``local`` gives ``local://``.
    Anything else raises ``UnsupportedHost``, as does becoming with another method
    than sudo; a value that is not what Ansible takes raises ``TargetError``.

    >>> t = host_target("db1", {"ansible_host": "10.0.0.9", "ansible_port": "2222",
    ...                         "ansible_user": "ops", "ansible_become": "yes"})
    >>> t.label, t.uri, dict(t.options)
    ('db1', 'ssh://ops@10.0.0.9:2222', {'sudo': True})
    """
    given = {role: _last(variables, names) for role, names in ANSIBLE_VARIABLES.items()}
    connection = _text(given["connection"]) or "ssh"
    scheme = _CONNECTIONS.get(connection.removeprefix("ansible.builtin."))
    if scheme is None:
        raise UnsupportedHost(
            name,
            f"ansible_connection={connection} has no trainlab transport "
            "(ssh, paramiko and local do)",
        )
    options: dict[str, Any] = {}
    if given["sudo"] is not None:
        options["sudo"] = _boolean(name, "ansible_become", given["sudo"])
        method = _text(given["become_method"]) or "sudo"
        if options["sudo"] and method not in _SUDO:
            raise UnsupportedHost(
                name, f"ansible_become_method={method}: trainlab becomes another user by sudo only"
            )
    if given["sudo_user"] is not None:
        options["sudo_user"] = _text(given["sudo_user"])
    if scheme == "local":
        if options.get("sudo"):
            raise UnsupportedHost(
                name, "ansible_become on a local connection: local:// has no sudo"
            )
        return NamedTarget(name, "local://")
    if given["key_file"] is not None:
        options["key_file"] = _text(given["key_file"])
    host = _text(given["host"]) or name
    uri = Target(
        "ssh", host=host, user=_text(given["user"]) or None, port=_port(name, given["port"])
    )
    try:
        parse_target(uri.address)
    except TargetError as exc:
        raise TargetError(f"Ansible host {name}: {exc}") from None
    return NamedTarget(name, uri.address, options)


def ansible_targets(
    path: str | os.PathLike[str], pattern: str = "all", options: Mapping[str, Any] | None = None
) -> list[NamedTarget]:
    """The targets of the hosts of Ansible inventory ``path`` that ``pattern`` selects.

    ``path`` is an inventory file (INI, YAML, any inventory plugin's) or directory, read
    by ansible-core as ``ansible -i path`` reads it (group_vars and host_vars beside it
    included); ``pattern`` is an Ansible host pattern (``web:&prod``, ``all:!staging``).
    Host variables are templated as Ansible templates them. ``options`` go to every
    target whose transport takes them; a host's own variables win. Hosts no transport
    reaches (``UnsupportedHost``) are left out with a ``FleetWarning``.
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise TargetError(f"no Ansible inventory at {source}")
    if not isinstance(pattern, str) or not pattern.strip():
        raise TargetError(f"an Ansible host pattern is a non-empty string, got {pattern!r}")
    lib = _ansible()
    try:
        loader = lib.DataLoader()
        inventory = lib.InventoryManager(loader=loader, sources=[str(source)])
        manager = lib.VariableManager(loader=loader, inventory=inventory)
        hosts = inventory.get_hosts(pattern=pattern)
    except lib.AnsibleError as exc:
        raise TargetError(f"cannot read Ansible inventory {source}: {_first_line(exc)}") from exc
    if not hosts:
        if not inventory.hosts:
            raise TargetError(
                f"Ansible found no hosts in {source} (is it an inventory? "
                "Ansible's warnings above say why it could not parse it)"
            )
        groups = sorted(set(inventory.groups) - {"all", "ungrouped"})
        raise TargetError(
            f"pattern {pattern!r} matches no host in {source}; "
            f"its groups: {', '.join(groups) or 'none'}"
        )
    found: list[NamedTarget] = []
    skipped: list[UnsupportedHost] = []
    for host in hosts:
        name = str(host.name)
        try:
            variables = manager.get_vars(host=host, include_hostvars=False)
        except lib.AnsibleError as exc:
            raise TargetError(
                f"Ansible host {name}: cannot read its variables: {_first_line(exc)}"
            ) from exc
        templar = lib.Templar(loader=loader, variables=variables)
        wanted: dict[str, Any] = {}
        for variable in (v for names in ANSIBLE_VARIABLES.values() for v in names):
            if variables.get(variable) is None:
                continue
            try:
                wanted[variable] = templar.template(variables[variable])
            except lib.AnsibleError as exc:
                raise TargetError(
                    f"Ansible host {name}: cannot resolve {variable}: {_first_line(exc)}"
                ) from exc
        try:
            found.append(host_target(name, wanted))
        except UnsupportedHost as exc:
            skipped.append(exc)
    if not found:
        raise TargetError(
            f"no host that {pattern!r} selects in {source} has a trainlab transport: "
            + "; ".join(str(s) for s in skipped[:10])
        )
    chosen_targets = _with_options(found, options or {})
    _report_skipped(skipped, source)
    return chosen_targets


class _Ansible:
    """ansible-core's inventory API, imported on first use."""

    def __init__(self) -> None:
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar
        from ansible.vars.manager import VariableManager

        self.AnsibleError = AnsibleError
        self.DataLoader = DataLoader
        self.InventoryManager = InventoryManager
        self.Templar = Templar
        self.VariableManager = VariableManager


def _ansible() -> _Ansible:
    try:
        return _Ansible()
    except ImportError as exc:
        raise TargetError(f"Fleet.from_ansible needs ansible-core: {ANSIBLE_HINT}") from exc


# ---------------------------------------------------------------- ssh_config
def ssh_config_targets(
    pattern: str = "*",
    path: str | os.PathLike[str] = "~/.ssh/config",
    options: Mapping[str, Any] | None = None,
) -> list[NamedTarget]:
    """``ssh://NAME`` for each concrete ``Host`` name of ssh_config ``path`` that ``pattern``
    matches, in name order.

    ``pattern`` is an OpenSSH pattern list (``web*,db1``, ``*,!staging-*``). Names with
    wildcards or negations are patterns, not hosts, and are not listed. Each target
    reads ``path`` itself when it connects (its ``ssh_config`` option), so HostName,
    Port, User, IdentityFile and ProxyJump resolve exactly as for
    ``trainlab.connect("ssh://NAME")``.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise TargetError(f"no OpenSSH client config at {source}")
    if not isinstance(pattern, str) or not pattern.strip():
        raise TargetError(f"an ssh_config host pattern is a non-empty string, got {pattern!r}")
    registry.transport_class("ssh")  # names the extra to install when paramiko is missing
    import paramiko

    try:
        text = source.read_text()
        config = paramiko.SSHConfig.from_text(text)
    except (OSError, UnicodeDecodeError, paramiko.SSHException, ValueError) as exc:
        raise TargetError(f"cannot read ssh config {source}: {exc}") from exc
    names = sorted(n for n in config.get_hostnames() if not _WILDCARD & set(n))
    chosen = [n for n in names if matches_pattern(n, pattern)]
    if _INCLUDE.search(text):
        warnings.warn(
            f"{source} has Include lines, which paramiko's parser (and so ssh:// sessions) "
            "does not follow: hosts named only in the included files are not in the fleet",
            FleetWarning,
            stacklevel=3,
        )
    if not chosen:
        raise TargetError(
            f"pattern {pattern!r} matches no Host in {source}; "
            f"its hosts: {', '.join(names) or 'none'}"
        )
    found: list[NamedTarget] = []
    skipped: list[UnsupportedHost] = []
    for name in chosen:
        if name != name.lower():
            # URI host names are lower case and paramiko matches Host names case-sensitively.
            skipped.append(UnsupportedHost(name, "write the Host name in lower case to reach it"))
            continue
        uri = Target("ssh", host=name).address
        try:
            parse_target(uri)
        except TargetError as exc:
            skipped.append(UnsupportedHost(name, str(exc)))
            continue
        found.append(NamedTarget(name, uri, {"ssh_config": str(source)}))
    if not found:
        raise TargetError(f"no Host {pattern!r} selects in {source} can be reached: {skipped[0]}")
    chosen_targets = _with_options(found, options or {})
    _report_skipped(skipped, source)
    return chosen_targets


def matches_pattern(name: str, patterns: str) -> bool:
    """Whether ``name`` matches an OpenSSH pattern list: globs, comma-separated, ``!`` excludes.

    >>> matches_pattern("web2", "web*,!web1"), matches_pattern("web1", "web*,!web1")
    (True, False)
    """
    words = [w.strip() for w in patterns.split(",") if w.strip()]
    if any(fnmatch.fnmatchcase(name, w[1:]) for w in words if w.startswith("!")):
        return False
    return any(fnmatch.fnmatchcase(name, w) for w in words if not w.startswith("!"))


# ------------------------------------------------------------------- helpers
def _last(variables: Mapping[str, Any], names: Iterable[str]) -> Any:
    value = None
    for name in names:
        if variables.get(name) is not None:
            value = variables[name]
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _boolean(host: str, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = _text(value).lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise TargetError(
        f"Ansible host {host}: {name}={value!r} is not a boolean (yes/no, true/false)"
    )


def _port(host: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        port = int(str(value).strip())
    except ValueError:
        raise TargetError(
            f"Ansible host {host}: ansible_port={value!r} is not a port number"
        ) from None
    if not 1 <= port <= 65535:
        raise TargetError(f"Ansible host {host}: ansible_port={port} is not within 1-65535")
    return port


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
