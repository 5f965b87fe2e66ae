"""What a command and a path may be: the checks and quoting every call makes.

``command_text`` turns a command line or a list of arguments into one shell line
(quoted safely); ``path_text`` and ``non_negative`` check the other arguments.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from typing import Any

from trainlab.errors import InvalidCommand

__all__ = ["command_text", "non_negative", "path_text"]


def command_text(command: str | Sequence[Any]) -> str:
    """A command as one shell line; a list is quoted argument by argument."""
    if isinstance(command, str):
        text = command
    elif isinstance(command, list | tuple):
        if not command:
            raise InvalidCommand("an empty argument list is not a command")
        parts = []
        for part in command:
            if isinstance(part, str | os.PathLike | int | float) and not isinstance(part, bool):
                parts.append(os.fspath(part) if isinstance(part, os.PathLike) else str(part))
            else:
                raise InvalidCommand(
                    f"command arguments are strings or paths, got {type(part).__name__}"
                )
        text = shlex.join(str(p) for p in parts)
    else:
        raise InvalidCommand(
            f"a command is a string or a list of arguments, got {type(command).__name__}"
        )
    if "\0" in text:
        raise InvalidCommand("a command cannot contain NUL bytes; remove them or pass data by file")
    if not text.strip():
        raise InvalidCommand("an empty string is not a command")
    return text


def path_text(path: Any) -> str:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise InvalidCommand(f"a path is a non-empty string, got {path!r}")
    if "\0" in path:
        raise InvalidCommand("a path cannot contain NUL bytes")
    return path


def non_negative(value: float, name: str) -> float:
    """``value`` as seconds, or ``InvalidCommand`` naming ``name`` when it is not >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidCommand(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)
