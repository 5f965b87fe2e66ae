"""The transport seam: I/O for one target, and nothing else.

A transport opens, runs commands, reads files and closes. It does no caching, no
DataFrames and no retries of failed commands: the ``Session`` owns policy. Every
backend exception leaves a transport as a ``TrainlabError`` raised ``from`` it.
"""

from __future__ import annotations

import abc
import getpass
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from trainlab.capture import CallOutput, CommandCapture, StrayOutput
from trainlab.options import Option
from trainlab.result import CommandResult, FileStat
from trainlab.uri import Target

__all__ = ["Transport"]


class Transport(abc.ABC):
    """Base class of every transport.

    Subclasses set ``scheme`` and ``options`` and implement ``open``, ``run``,
    ``read_file``, ``alive`` and ``close``. ``run_many`` is native batching: a
    transport that cannot batch leaves ``supports_batch`` False and the session
    runs the commands one at a time (and says so in the metrics).

    ``concurrent`` says whether several threads may call ``run`` at once; when it
    is False the session serializes calls.

    Output sinks: the session runs commands through ``run_captured`` and
    ``run_many_captured``, handing each command a ``trainlab.capture.CommandCapture``
    (bounded to ``max_output``, maybe spooled to a file and streamed to a callback).
    A transport that sets ``supports_output`` True overrides both and writes every
    chunk into the capture as it arrives, so memory stays flat under a flood and
    output shows live. The defaults here call ``run``/``run_many`` and feed the
    finished result through the capture: a transport written before sinks existed
    keeps working, with the cap applied (and the output streamed) when the command
    ends; the session's metrics say so.
    """

    scheme: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}
    #: The ``Session`` subclass that ``trainlab.connect`` wraps this transport in, as
    #: ``"module:Class"`` (a name, so the transport never imports the session layer);
    #: None for the plain ``Session``. REST, PowerShell and AWS account targets use it
    #: for methods only their sessions have (``get``, ``run_ps``, ``ec2_inventory``).
    session_class: ClassVar[str | None] = None
    #: Opens a target this one is reached through (an SSH jump host) and returns its
    #: transport, open: ``(uri, options) -> Transport``. ``trainlab.connect`` sets it,
    #: so that target is a live session of its own, shared by everyone going through it.
    peer_opener: Callable[[str, Mapping[str, Any]], Transport] | None = None
    #: True when ``run_captured``/``run_many_captured`` write output into the capture
    #: as it arrives; False: the capture gets the finished result.
    supports_output: ClassVar[bool] = False

    def __init__(self, target: Target, options: Mapping[str, Any]) -> None:
        self.target = target
        self.settings = dict(options)
        #: Output a kept shell read between answers (a background job's late bytes).
        self.stray = StrayOutput(target.address)

    # -- identity -------------------------------------------------------------
    def identity(self) -> tuple[Any, ...]:
        """Who runs commands where: the first part of every cache key.

        Two transports with the same identity and result-affecting options give
        the same answers; different identities never share a cached answer.
        """
        user = self.target.user or getpass.getuser()
        return (self.scheme, user, self.target.host, self.target.port, self.target.path)

    @property
    def supports_batch(self) -> bool:
        """True when ``run_many`` sends a whole batch in one round trip."""
        return False

    @property
    def concurrent(self) -> bool:
        """True when several threads may call ``run`` at once (else the session serializes)."""
        return False

    @property
    def mode(self) -> str:
        """A short word for how commands travel (``exec``, ``shell``, ``api``)."""
        return str(self.settings.get("mode", "exec"))

    # -- the seam -------------------------------------------------------------
    @abc.abstractmethod
    def open(self) -> None:
        """Connect. Idempotent: a no-op when already open and alive."""

    @abc.abstractmethod
    def run(self, command: str, timeout: float | None) -> CommandResult:
        """Run one command; a non-zero exit is a result, not an error."""

    def run_many(
        self, commands: Sequence[str], timeout: float | None, stop_on_error: bool
    ) -> list[CommandResult]:
        """Run ``commands`` in one round trip; the results of those that ran, in order."""
        raise NotImplementedError(f"{type(self).__name__} has no native batching")

    def run_captured(
        self, command: str, timeout: float | None, output: CommandCapture
    ) -> CommandResult:
        """``run`` with its output going into ``output`` (bounded, spooled, streamed).

        The result holds what the capture kept (``output.apply``). This default runs
        ``run`` and feeds the finished result through the capture.
        """
        return output.take(self.run(command, timeout))

    def run_many_captured(
        self,
        commands: Sequence[str],
        timeout: float | None,
        stop_on_error: bool,
        output: CallOutput,
    ) -> list[CommandResult]:
        """``run_many`` with command ``i``'s output going into ``output.for_command(i)``."""
        results = self.run_many(commands, timeout, stop_on_error)
        return [output.for_command(i).take(r) for i, r in enumerate(results)]

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """The bytes of a file on the target."""

    def stat(self, path: str) -> FileStat:
        """``stat`` of a path on the target."""
        raise NotImplementedError(f"{type(self).__name__} cannot stat files")

    def upload(self, local: str, remote: str) -> int:
        """Copy a local file to the target; returns the bytes written."""
        raise NotImplementedError(f"{type(self).__name__} cannot transfer files")

    def download(self, remote: str, local: str) -> int:
        """Copy a file from the target; returns the bytes written."""
        raise NotImplementedError(f"{type(self).__name__} cannot transfer files")

    def platform_facts(self) -> dict[str, str] | None:
        """Platform facts the backend knows without running commands, or ``None``."""
        return None

    @abc.abstractmethod
    def alive(self) -> bool:
        """True when the connection (or host process) is usable right now."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every socket, thread and process. Idempotent."""

    def result(
        self,
        command: str,
        stdout: bytes,
        stderr: bytes,
        status: int,
        *,
        started: datetime,
        since: float,
        truncated: bool = False,
    ) -> CommandResult:
        """A CommandResult for this target, timed from ``since`` (a perf_counter value)."""
        return CommandResult(
            command,
            stdout,
            stderr,
            status,
            duration=time.perf_counter() - since,
            target=self.target.address,
            started=started,
            truncated=truncated,
        )

    def forget_secrets(self) -> None:
        """Drop secret option values (called after ``close``)."""
        for name, option in self.options.items():
            if option.secret:
                self.settings[name] = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target.address} mode={self.mode}>"
