"""One call's output choices, for the session: the cap, a spool file, a callback, live printing.

``Session.run`` and ``Session.run_many`` turn their ``max_output``, ``output_file``,
``on_output`` and ``stream`` arguments into the captures a transport writes into
(``trainlab.capture``).
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable

from trainlab.capture import (
    CallOutput,
    CommandCapture,
    OnOutput,
    resolve_max_output,
)
from trainlab.transports.base import Transport

__all__ = [
    "SESSION_SETTING",
    "UseSession",
    "call_output",
    "command_capture",
    "fallback_detail",
    "print_live",
]


class UseSession(enum.Enum):
    """A per-call argument left to the session's setting."""

    SETTING = "the session's setting"


#: The default of ``max_output=`` on ``run``/``run_many``: the session's ``max_output``.
SESSION_SETTING = UseSession.SETTING


def print_live(stream: str, text: str) -> None:
    """Write ``text`` to ``sys.stdout`` or ``sys.stderr`` now, as ``!cmd`` does in IPython.

    Looked up at each call, so inside IPython it lands in the running cell.
    """
    target = sys.stdout if stream == "stdout" else sys.stderr
    target.write(text)
    target.flush()


def limit(session_max: int | None, max_output: int | UseSession | None) -> int | None:
    """The byte bound of one call: the session's, or the call's own."""
    if isinstance(max_output, UseSession):
        return session_max
    return resolve_max_output(max_output)


def command_capture(
    session_max: int | None,
    max_output: int | UseSession | None,
    *,
    output_file: str | os.PathLike[str] | None,
    on_output: OnOutput | None,
    stream: bool,
) -> CommandCapture:
    """The capture of one ``run``: ``stream=True`` prints live besides ``on_output``."""
    emit = on_output
    if stream:
        emit = print_live if on_output is None else _both(on_output, print_live)
    return CommandCapture(limit(session_max, max_output), output_file=output_file, on_output=emit)


def call_output(
    session_max: int | None,
    max_output: int | UseSession | None,
    *,
    on_output: Callable[[int, str, str], None] | None,
    stream: bool,
) -> CallOutput:
    """The output of one ``run_many``: ``on_output(index, stream, text)``; ``stream=True``
    prints every command's output live as it arrives."""
    emit = on_output
    if stream:

        def emit(index: int, name: str, text: str) -> None:
            if on_output is not None:
                on_output(index, name, text)
            print_live(name, text)

    return CallOutput(limit(session_max, max_output), on_output=emit)


def fallback_detail(transport: Transport, asked: bool) -> str:
    """The metrics detail of a call that asked for live output from a transport that
    only gives finished results (empty otherwise)."""
    if transport.supports_output or not asked:
        return ""
    return "output streamed and capped when the command ended: the transport does not stream"


def _both(first: OnOutput, second: OnOutput) -> OnOutput:
    def emit(stream: str, text: str) -> None:
        first(stream, text)
        second(stream, text)

    return emit
