"""Command-line arguments that the ``trainlab`` command and the ``%train`` magic share.

Owns ``-o KEY=VALUE`` options and the arguments that choose a fleet's targets (URIs,
``--ansible PATH`` or ``--ssh-config [PATH]``, with ``--pattern``), declared and checked
once, so ``trainlab fleet`` and ``%train fleet`` take the same words and refuse the
same mistakes with the same ``TargetError``; imports the fleet package once a fleet is made.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_fleet_arguments(parser)
>>> args = parser.parse_args(["mock://a", "mock://b", "-o", "cooldown=0", "--timeout", "5"])
>>> fleet = fleet_from_arguments(args)
>>> fleet.uris, fleet.timeout, fleet.cooldown.seconds
(['mock://a', 'mock://b'], 5.0, 0.0)
>>> fleet_from_arguments(parser.parse_args(["mock://a", "--pattern", "web*"]))
Traceback (most recent call last):
...
trainlab.errors.TargetError: --pattern picks hosts of --ansible or --ssh-config, not of URIs: ...
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from trainlab.errors import TargetError
from trainlab.options import Option

if TYPE_CHECKING:
    from trainlab.fleet import Cooldown, Fleet

__all__ = [
    "FLEET_ARGUMENTS",
    "FLEET_TEXT_OPTIONS",
    "add_fleet_arguments",
    "fleet_from_arguments",
    "key_values",
]

#: The arguments that make a fleet, as ``(names, add_argument keywords)``: the ``trainlab
#: fleet`` parser adds them as they are, ``%train fleet`` through ``magic_arguments``.
FLEET_ARGUMENTS: tuple[tuple[tuple[str, ...], Mapping[str, Any]], ...] = (
    (
        ("uris",),
        {"nargs": "*", "metavar": "URI", "help": "targets (or --ansible PATH, or --ssh-config)"},
    ),
    (("--ansible",), {"metavar": "PATH", "help": "the hosts of this Ansible inventory"}),
    (
        ("--ssh-config",),
        {
            "metavar": "PATH",
            "nargs": "?",
            "const": "~/.ssh/config",
            "help": "the Host entries of this OpenSSH config (default ~/.ssh/config)",
        },
    ),
    (
        ("--pattern",),
        {"help": "hosts to take: an Ansible pattern (default all), an ssh_config one (default *)"},
    ),
    (
        ("-o", "--option"),
        {
            "action": "append",
            "default": [],
            "metavar": "KEY=VALUE",
            "help": "a session option, or the fleet's own (cooldown=S...); repeatable",
        },
    ),
    (
        ("--timeout",),
        {"type": float, "default": None, "help": "per-target deadline in seconds (default 60)"},
    ),
    (("--deadline",), {"type": float, "default": None, "help": "whole fan-out, seconds"}),
    (("--max-workers",), {"type": int, "default": None, "help": "targets worked on at once"}),
)

#: The ``Fleet``'s own keyword arguments that ``-o KEY=VALUE`` may give: their text is
#: converted here (the fleet checks their range); every other key is a session option,
#: which each transport converts itself.
FLEET_TEXT_OPTIONS: Mapping[str, Option] = {
    "timeout": Option(float, None, "per-target deadline, seconds"),
    "deadline": Option(float, None, "the whole fan-out's deadline, seconds"),
    "cooldown": Option(float, None, "seconds a target that failed to connect is skipped (0: off)"),
    "max_workers": Option(int, None, "targets worked on at once"),
    "progress": Option(bool, None, "a progress bar (true/false)"),
}

_SOURCES = "URIs, --ansible PATH or --ssh-config [PATH]"


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``FLEET_ARGUMENTS`` to ``parser``."""
    for names, settings in FLEET_ARGUMENTS:
        parser.add_argument(*names, **settings)


def key_values(items: Iterable[str]) -> dict[str, Any]:
    """``-o KEY=VALUE`` words as a dict; values stay text (each transport converts its own).

    >>> key_values(["sudo=yes", "key_file=/k=1"])
    {'sudo': 'yes', 'key_file': '/k=1'}
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TargetError(
                f"option {item!r} is not KEY=VALUE: give each -o a key, '=' and its value"
            )
        options[key.strip()] = value
    return options


def fleet_from_arguments(args: argparse.Namespace, *, cooldown: Cooldown | None = None) -> Fleet:
    """The fleet that ``args`` (parsed from ``FLEET_ARGUMENTS``) name.

    Its targets come from exactly one of the URIs, ``--ansible`` and ``--ssh-config``;
    ``--timeout``, ``--deadline`` and ``--max-workers`` win over the same ``-o`` keys;
    ``cooldown`` (a ``Cooldown`` to share between fan-outs) is used unless ``-o
    cooldown=S`` is given. A mistake raises ``TargetError`` naming it and the fix.
    """
    given = [
        name
        for name, chosen in (
            ("URIs", bool(args.uris)),
            ("--ansible", args.ansible is not None),
            ("--ssh-config", args.ssh_config is not None),
        )
        if chosen
    ]
    if not given:
        raise TargetError(f"no targets: give {_SOURCES}")
    if len(given) > 1:
        raise TargetError(
            f"{' and '.join(given)} given together: take the targets from one of {_SOURCES} "
            "(--pattern picks hosts within an inventory)"
        )
    if args.uris and args.pattern is not None:
        raise TargetError(
            "--pattern picks hosts of --ansible or --ssh-config, not of URIs: "
            "drop it, or list only the URIs you want"
        )
    options = key_values(args.option)
    for name, option in FLEET_TEXT_OPTIONS.items():
        if name in options:
            options[name] = option.coerce(name, options[name])
    for name in ("timeout", "deadline", "max_workers"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if cooldown is not None:
        options.setdefault("cooldown", cooldown)
    from trainlab.fleet import Fleet

    if args.ansible is not None:
        return Fleet.from_ansible(args.ansible, args.pattern or "all", **options)
    if args.ssh_config is not None:
        return Fleet.from_ssh_config(args.pattern or "*", args.ssh_config, **options)
    return Fleet(args.uris, **options)
