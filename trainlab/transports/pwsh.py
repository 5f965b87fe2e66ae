"""``pwsh://``: one local PowerShell host process, kept and reused (ruby-pwsh's Manager).

The process is ``pwsh -NoProfile -NoLogo -s``: PowerShell's out-of-process remoting
server, which speaks PSRP as one XML packet a line on stdin and stdout. psrpcore's
client classes build and read the messages; this module moves the packets, with a
client-side deadline on every wait (ruby-pwsh has none): past it the pipeline is
stopped with a ``<Signal>``, and a host that does not answer is killed and started
again on the next call. ``connect()`` returns the live session for the same
executable, arguments and options, so one process serves every notebook cell.
Each record goes into its command's capture as its packet is read
(``psrp.PipelineOutput``), so output shows live and stays bounded.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import select
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from typing import IO, Any, ClassVar
from xml.etree import ElementTree

import psrpcore
from psrpcore.types import PSInvocationState, RunspacePoolState

from trainlab.errors import ConnectError, TargetError, TransportError
from trainlab.options import Option
from trainlab.transports import psrp
from trainlab.transports._deadline import DeadlinePassed
from trainlab.transports.psrp import PipelineOutput, PowerShellTransport
from trainlab.transports.psrp import packet as _packet

__all__ = ["PwshTransport"]

_READ_SIZE = 256 * 1024
# How long a stopped pipeline may take to say so before the host is killed.
_STOP_GRACE = 5.0
# How long the host may leave its input full before it counts as hung.
_WRITE_LIMIT = 30.0
_FINAL = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)


class PwshTransport(PowerShellTransport):
    """PowerShell on this machine, in one kept host process.

    Options: ``executable`` (default: ``pwsh`` on PATH, else ``powershell``),
    ``arguments`` (default ``-NoProfile -NoLogo -s``), ``cwd``, ``open_timeout``.
    """

    scheme: ClassVar[str] = "pwsh"
    options: ClassVar[Mapping[str, Option]] = {
        "executable": Option(
            str, None, "the PowerShell executable (default: pwsh on PATH)", affects_result=True
        ),
        "arguments": Option(
            str,
            "-NoProfile -NoLogo -s",
            "arguments that start its out-of-process server mode",
            affects_result=True,
        ),
        "cwd": Option(str, None, "working directory of the host process", affects_result=True),
        "open_timeout": Option(
            float,
            30.0,
            "seconds to wait for the host to open its runspace",
            minimum=0.1,
            maximum=86_400,
        ),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        if target.host not in ("", "localhost"):
            raise TargetError(
                f"pwsh:// runs PowerShell on this machine and takes no host (got {target.host!r}); "
                f"use winrm://{target.host} for a remote Windows host"
            )
        self._host: _Host | None = None
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        return "host"

    def identity(self) -> tuple[Any, ...]:
        return ("pwsh", getpass.getuser(), os.uname().nodename)

    def _argv(self) -> list[str]:
        executable = self.settings.get("executable")
        if not executable:
            executable = shutil.which("pwsh") or shutil.which("powershell")
            if executable is None:
                raise ConnectError(
                    "pwsh:// needs PowerShell, and neither pwsh nor powershell is on PATH: "
                    "install PowerShell 7 (https://aka.ms/powershell) or pass executable="
                )
        return [executable, *shlex.split(self.settings["arguments"])]

    # -- lifecycle ------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self._host is not None and self._host.alive():
                return
            if self._host is not None:
                self._host.kill()
                self._host = None
            self._host = _Host(
                self._argv(),
                cwd=self.settings.get("cwd"),
                timeout=self.settings["open_timeout"],
            )

    def alive(self) -> bool:
        host = self._host
        return host is not None and host.alive()

    def close(self) -> None:
        with self._lock:
            if self._host is not None:
                self._host.close()
                self._host = None

    def platform_facts(self) -> dict[str, str] | None:
        """This machine's platform, where the host runs: no command needed."""
        import platform

        facts = {
            "kernel": platform.system(),
            "kernel_release": platform.release(),
            "arch": platform.machine(),
        }
        with contextlib.suppress(OSError, AttributeError):
            release = platform.freedesktop_os_release()
            facts["id"] = release.get("ID", "")
            facts["id_like"] = release.get("ID_LIKE", "")
            facts["release"] = release.get("VERSION_ID", "")
            facts["pretty_name"] = release.get("PRETTY_NAME", "")
        return facts

    # -- commands -------------------------------------------------------------
    def _invoke(self, request: psrp.Request, timeout: float | None, output: PipelineOutput) -> None:
        host = self._host
        if host is None or host.broken:
            raise TransportError("the PowerShell host is not running; the session starts it again")
        host.invoke(request, timeout, self.target.address, output)


class _Host:
    """A PowerShell process in server mode, and the client runspace pool it serves."""

    def __init__(self, argv: list[str], *, cwd: str | None, timeout: float) -> None:
        self.argv = argv
        self.broken = False
        self._errors: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives with the process
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                cwd=cwd,
                start_new_session=True,  # a terminal's Ctrl-C must not reach the host
                bufsize=0,
            )
        except OSError as exc:
            self._errors.close()
            if cwd is not None and exc.filename == cwd:  # the working directory, not the program
                raise ConnectError(
                    f"could not start the PowerShell host in {cwd!r}: {exc.strerror}; check cwd="
                ) from exc
            raise ConnectError(
                f"could not start the PowerShell host {argv[0]!r}: {exc.strerror}; "
                "check executable="
            ) from exc
        if self.proc.stdin is None or self.proc.stdout is None:  # pragma: no cover
            raise ConnectError("the PowerShell host started without pipes")
        self.in_fd = self.proc.stdin.fileno()
        self.out_fd = self.proc.stdout.fileno()
        os.set_blocking(self.out_fd, False)
        os.set_blocking(self.in_fd, False)
        self._readable = select.poll()  # poll, not select: descriptors may exceed 1024
        self._readable.register(self.out_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._writable = select.poll()
        self._writable.register(self.in_fd, select.POLLOUT | select.POLLERR)
        self._buffer = b""
        self.pool = psrpcore.ClientRunspacePool()
        try:
            self.pool.open()
            self._send_data()
            deadline = time.monotonic() + timeout
            while self.pool.state != RunspacePoolState.Opened:
                self._step(self._packet(deadline), None)
        except DeadlinePassed:
            tail = self._stderr_tail()  # before kill(), which closes the file it reads
            self.kill()
            raise ConnectError(
                f"the PowerShell host {argv[0]!r} did not open a runspace within {timeout:g} s; "
                f"check that {shlex.join(argv)!r} starts PowerShell's server mode (-s)" + tail
            ) from None
        except TransportError as exc:
            tail = self._stderr_tail()
            self.kill()
            if tail in str(exc):
                tail = ""
            raise ConnectError(
                f"the PowerShell host {argv[0]!r} did not open a runspace ({exc}); check that "
                f"{shlex.join(argv)!r} starts PowerShell's server mode (-s)" + tail
            ) from exc
        except BaseException:
            self.kill()  # interrupted or refused mid-open: no process is left behind untracked
            raise

    # -- process --------------------------------------------------------------
    def alive(self) -> bool:
        return not self.broken and self.proc.poll() is None

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._errors.seek(0)
            text = self._errors.read()[-500:].decode("utf-8", "replace").strip()
            if text:
                return f"; it wrote: {text}"
        return ""

    def kill(self) -> None:
        self.broken = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, 9)
        self._reap()

    def _reap(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._errors.close()

    def close(self) -> None:
        if self.proc.poll() is None and not self.broken:
            with contextlib.suppress(
                OSError, TransportError, DeadlinePassed, psrpcore.PSRPCoreError
            ):
                self._write(_packet("Close", None))
                deadline = time.monotonic() + 2.0
                while True:
                    if self._packet(deadline).tag == "CloseAck":
                        break
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # EOF ends the server loop
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self._reap()

    # -- packets --------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        """Write all of ``data``; a host that stops reading for _WRITE_LIMIT is broken."""
        view = memoryview(data)
        limit = time.monotonic() + _WRITE_LIMIT
        try:
            while view:
                try:
                    view = view[os.write(self.in_fd, view) :]
                except BlockingIOError:
                    remaining = limit - time.monotonic()
                    if remaining <= 0 or not self._writable.poll(int(remaining * 1000) + 1):
                        raise TimeoutError(f"no room in its input for {_WRITE_LIMIT:g} s") from None
        except (OSError, TimeoutError) as exc:
            self.broken = True
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TransportError(
                f"the PowerShell host stopped reading ({reason}); the command is not "
                "re-run, and the next call starts a new host"
            ) from exc

    def _send_data(self) -> None:
        for data in psrp.data_packets(self.pool):
            self._write(data)

    def _packet(self, deadline: float | None) -> ElementTree.Element:
        """The next packet from the host; ``DeadlinePassed`` past ``deadline``."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                if line.strip():
                    try:
                        return ElementTree.fromstring(line)  # noqa: S314 - our own child
                    except ElementTree.ParseError as exc:
                        self.broken = True
                        raise TransportError(
                            f"the PowerShell host wrote something that is not a PSRP packet "
                            f"({line[:80]!r}); is {self.argv[0]!r} running in server mode (-s)?"
                        ) from exc
                continue
            wait = None
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise DeadlinePassed
            if not self._readable.poll(-1 if wait is None else int(wait * 1000) + 1):
                continue
            try:
                chunk = os.read(self.out_fd, _READ_SIZE)
            except BlockingIOError:
                continue
            if not chunk:
                self.broken = True
                code = self.proc.poll()
                raise TransportError(
                    f"the PowerShell host exited (status {code}); the command is not re-run, "
                    "and the next call starts a new host" + self._stderr_tail()
                )
            self._buffer += chunk

    def _step(self, element: ElementTree.Element, output: PipelineOutput | None) -> None:
        """Feed one packet to the pool; a pipeline's messages go to ``output`` as they come."""
        if element.tag != "Data":
            return
        self.pool.receive_data(psrp.packet_payload(element))
        while True:
            event = self.pool.next_event()
            if event is None:
                break
            if isinstance(event, psrpcore.RunspacePoolStateEvent) and event.state in (
                RunspacePoolState.Broken,
                RunspacePoolState.Closed,
            ):
                self.broken = True
                reason = f": {event.reason}" if event.reason else ""
                raise TransportError(
                    f"the PowerShell host's runspace pool is {event.state.name.lower()}{reason}; "
                    "the next call starts a new host"
                )
            if output is not None:
                _record(event, output)
        self._send_data()  # answers the pool owes (key exchange, host calls)

    def _until(self, tag: str, deadline: float | None, output: PipelineOutput | None) -> None:
        while True:
            element = self._packet(deadline)
            if element.tag == tag:
                return
            self._step(element, output)

    # -- pipelines ------------------------------------------------------------
    def invoke(
        self, request: psrp.Request, timeout: float | None, target: str, output: PipelineOutput
    ) -> None:
        """Run ``request``; each message goes into ``output`` as its packet is read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ps = psrpcore.ClientPowerShell(self.pool)
        psrp.add_scripts(ps, request)
        try:
            ps.start()
            self._write(_packet("Command", ps.pipeline_id))
            self._until("CommandAck", deadline, output)
            self._send_data()
            while not output.finished:
                self._step(self._packet(deadline), output)
        except DeadlinePassed:
            try:
                aftermath = self._stop(ps.pipeline_id, output)
            except BaseException:
                self.kill()  # an on_output that raised while the pipeline stopped
                raise
            raise psrp.timeout_error(output, target, timeout, aftermath) from None
        except BaseException:
            # Interrupted mid-exchange (Ctrl-C, an on_output that raised): the stream is
            # out of step, so the host goes and the next call starts a new one.
            self.kill()
            raise
        self._close_pipeline(ps)

    def _stop(self, pipeline_id: uuid.UUID, output: PipelineOutput) -> str:
        """Stop a timed-out pipeline; returns what became of it, for the error."""
        try:
            self._write(_packet("Signal", pipeline_id))
            grace = time.monotonic() + _STOP_GRACE
            self._until("SignalAck", grace, output)
            while not output.finished:
                self._step(self._packet(grace), output)
            self._write(_packet("Close", pipeline_id))
            self._until("CloseAck", grace, None)
            self.pool.pipeline_table.pop(pipeline_id, None)
        except (DeadlinePassed, TransportError):
            self.kill()
            return (
                "the host did not stop the pipeline, so it was killed and the next call "
                "starts a new one"
            )
        return "the pipeline was stopped and the PowerShell host stays in use"

    def _close_pipeline(self, ps: psrpcore.ClientPowerShell) -> None:
        self._write(_packet("Close", ps.pipeline_id))
        try:
            self._until("CloseAck", time.monotonic() + _STOP_GRACE, None)
        except DeadlinePassed:
            self.kill()
            raise TransportError(
                "the PowerShell host did not acknowledge closing a finished pipeline; "
                "the next call starts a new host"
            ) from None
        ps.close()


def _record(event: psrpcore.PSRPEvent[Any, Any], output: PipelineOutput) -> None:
    """Hand one PSRP event to ``output`` as (stream, text), or mark the pipeline's end."""
    if isinstance(event, psrpcore.PipelineOutputEvent):
        output.add("output", psrp.text(event.data))
    elif isinstance(event, psrpcore.ErrorRecordEvent):
        output.add("error", psrp.text(event.record))
    elif isinstance(event, psrpcore.WarningRecordEvent):
        output.add("warning", psrp.text(getattr(event.record, "Message", event.record)))
    elif isinstance(event, psrpcore.VerboseRecordEvent):
        output.add("verbose", psrp.text(getattr(event.record, "Message", event.record)))
    elif isinstance(event, psrpcore.DebugRecordEvent):
        output.add("debug", psrp.text(getattr(event.record, "Message", event.record)))
    elif isinstance(event, psrpcore.InformationRecordEvent):
        output.add("information", psrp.text(getattr(event.record, "MessageData", event.record)))
    elif isinstance(event, psrpcore.PipelineStateEvent) and event.state in _FINAL:
        output.finished = True
        if event.state != PSInvocationState.Completed and event.reason is not None:
            output.failure = psrp.text(event.reason)
