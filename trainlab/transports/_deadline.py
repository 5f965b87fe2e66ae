"""The one signal a transport's wait loops raise when a deadline passes.

It never leaves a transport: the transport catches it and raises ``CommandTimeout``
(with what finished) or ``TransportError`` in its place.
"""

from __future__ import annotations

__all__ = ["DeadlinePassed"]


class DeadlinePassed(Exception):
    """A wait ran past its deadline; carries the output read before it, where kept."""

    def __init__(self, stdout: list[bytes] | None = None, stderr: list[bytes] | None = None):
        super().__init__("deadline")
        self.stdout = stdout if stdout is not None else []
        self.stderr = stderr if stderr is not None else []
