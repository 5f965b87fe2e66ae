"""Connect retries as a value: which connect failures earn another attempt, and the pauses.

A refused connection, a name that does not resolve and a network that cannot be
reached are answers: an attempt a moment later gets the same one, so they fail at
once. A timeout or a reset while connecting may pass, and is tried again, with
backoff, a bounded number of times. Imports only the standard library.

>>> policy = ConnectRetry(retries=2, backoff=0.5)
>>> policy.retries_after(ConnectionRefusedError(111, "Connection refused"), attempt=0)
False
>>> policy.retries_after(TimeoutError("timed out"), attempt=0), policy.pause(1)
(True, 1.0)

Every transport says a failed connect the same way: the failure in ``FAILURE_WORDS``,
the attempts in ``attempts_made``, then its own fix.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["DEFINITE", "FAILURE_WORDS", "ConnectRetry", "attempts_made", "connect_failure"]

#: Connect failures that are answers, not faults: not retried unless asked.
DEFINITE = frozenset({"refused", "unresolvable", "unreachable"})

#: Each kind of connect failure (``connect_failure``) in words.
FAILURE_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "refused": "connection refused",
        "unresolvable": "the host name does not resolve",
        "unreachable": "the host or its network is unreachable",
        "timeout": "timed out",
        "reset": "the connection was reset",
    }
)

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, getattr(errno, "EHOSTDOWN", -1)}
_RESET = {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE}
_TEMPORARY_NAME = {getattr(socket, "EAI_AGAIN", -3)}
# How far down a chain of wrapped exceptions (requests -> urllib3 -> socket) to look.
_DEPTH = 8


def connect_failure(exc: BaseException) -> str:
    """How a connect attempt failed, read from ``exc`` or the exceptions it wraps.

    ``refused``, ``unresolvable``, ``unreachable`` (the ``DEFINITE`` ones),
    ``timeout``, ``reset``, or ``""`` when no socket failure is found.

    >>> connect_failure(OSError(errno.EHOSTUNREACH, "No route to host"))
    'unreachable'
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    for _ in range(_DEPTH):
        if current is None or id(current) in seen:
            break
        seen.add(id(current))
        kind = _kind(current)
        if kind:
            return kind
        current = _wrapped(current)
    return ""


def attempts_made(attempts: int, *, an_answer: bool) -> str:
    """The attempts a failed connect made, and why there were no more when it was tried once
    because its failure was an answer (``an_answer``: refused, unresolvable, unreachable,
    and not retried anyway).

    >>> attempts_made(1, an_answer=True)
    '1 attempt, not retried: the answer would be the same'
    >>> attempts_made(3, an_answer=False)
    '3 attempts'
    """
    said = f"{attempts} attempt" + ("" if attempts == 1 else "s")
    if attempts == 1 and an_answer:
        said += ", not retried: the answer would be the same"
    return said


def _kind(exc: BaseException) -> str:
    said = getattr(exc, "failure", "")  # a ConnectError whose transport named it
    if said and isinstance(said, str):
        return said
    if isinstance(exc, socket.gaierror):
        return "timeout" if exc.errno in _TEMPORARY_NAME else "unresolvable"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno == errno.ECONNREFUSED:
            return "refused"
        if exc.errno in _UNREACHABLE:
            return "unreachable"
        if exc.errno in _RESET:
            return "reset"
        if exc.errno == errno.ETIMEDOUT:
            return "timeout"
    name = type(exc).__name__
    if name == "NameResolutionError":  # urllib3's, raised from the gaierror
        return "unresolvable"
    if name in {"ConnectTimeoutError", "ConnectTimeout"}:
        return "timeout"
    return ""


def _wrapped(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` wraps: its cause, urllib3's ``reason``, an exception argument
    (requests' first, urllib3's ``ProtocolError("Connection aborted.", error)`` second)."""
    if exc.__cause__ is not None:
        return exc.__cause__
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    wrapped = [arg for arg in exc.args if isinstance(arg, BaseException)]
    if wrapped:
        return wrapped[0]
    return exc.__context__


@dataclass(frozen=True)
class ConnectRetry:
    """How many more connect attempts, after which failures, with what pauses.

    ``retries`` more attempts after a timeout or a reset, pausing ``backoff``
    seconds, doubling each time, each pause at most ``max_pause``. A refused,
    unresolvable or unreachable target fails at once unless ``definite`` is True
    (a host that is still booting). ``sleep`` waits; tests pass their own.
    """

    retries: int = 2
    backoff: float = 0.5
    max_pause: float = 60.0
    definite: bool = False
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_pause < 0:
            raise ValueError("retries, backoff and max_pause are never negative")

    @property
    def attempts(self) -> int:
        """The most attempts, the first included."""
        return 1 + self.retries

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0 for the first)."""
        return float(min(self.backoff * (2**attempt), self.max_pause))

    def retries_after(self, exc: BaseException, attempt: int) -> bool:
        """Whether failed attempt number ``attempt`` (0: the first), with ``exc``, earns another."""
        if attempt + 1 >= self.attempts:
            return False
        return self.definite or connect_failure(exc) not in DEFINITE
