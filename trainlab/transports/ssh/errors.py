"""How paramiko's and the socket's failures become trainlab errors: one context manager.

Imports paramiko and trainlab.errors only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import paramiko

from trainlab.errors import TrainlabError, TransportError

__all__ = ["map_errors", "why"]


@contextlib.contextmanager
def map_errors(
    doing: str,
    *,
    error: type[TrainlabError] = TransportError,
    hint: str = "",
    cleanup: Callable[[], object] | None = None,
) -> Iterator[None]:
    """Raise ``error("<doing>: <why><hint>")`` from a paramiko, EOF or socket failure.

    ``cleanup`` runs first (close a channel, mark a shell broken). trainlab's own
    errors pass through untouched, ``FileError`` (an ``OSError`` too) included.
    """
    try:
        yield
    except TrainlabError:
        raise
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if cleanup is not None:
            cleanup()
        raise error(f"{doing}: {why(exc)}{hint}") from exc


def why(exc: BaseException) -> str:
    """An SSH failure in words; a refused channel says what usually refuses it."""
    if isinstance(exc, paramiko.ChannelException):
        return (
            f"the server refused the channel ({exc.text or 'no reason'}, code {exc.code}); "
            "it may allow no more sessions on this connection (sshd's MaxSessions)"
        )
    return str(exc) or type(exc).__name__
