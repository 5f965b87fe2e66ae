"""PSRP's out-of-process protocol over any pair of byte streams, and the transports on it.

``pwsh -s`` (a local process's pipes, ``pwsh://``) and ``pwsh -sshs`` (sshd's
``powershell`` subsystem on an SSH channel, ``pwsh+ssh://``) speak the same protocol:
one XML packet a line each way. ``OutOfProcessClient`` keeps one runspace pool on
psrpcore's client classes over a ``ByteStream`` and runs pipelines on it, with a
client-side deadline on every wait: past it the pipeline is stopped with a
``<Signal>``, and a host that does not answer is dropped (the next call starts a new
one). ``OutOfProcessTransport`` is the transport both schemes share; each says only
how its streams start.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
import uuid
from typing import Any, Protocol
from xml.etree import ElementTree

import psrpcore
from psrpcore.types import PSInvocationState, RunspacePoolState

from trainlab.errors import ConnectError, TransportError
from trainlab.transports import psrp
from trainlab.transports._deadline import DeadlinePassed
from trainlab.transports.psrp import PipelineOutput, PowerShellTransport
from trainlab.transports.psrp import packet as _packet

__all__ = ["ByteStream", "OutOfProcessClient", "OutOfProcessTransport"]

# How long a stopped pipeline may take to say so before the host is dropped.
_STOP_GRACE = 5.0
# How long the host may take to acknowledge closing its pool.
_CLOSE_GRACE = 2.0
_FINAL = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)


class ByteStream(Protocol):
    """The two streams of a PowerShell host in server mode, as the client sees them."""

    def write(self, data: bytes) -> None:
        """Write all of ``data``; ``OSError`` or ``TimeoutError`` when the host stops reading."""

    def read(self, wait: float | None) -> bytes | None:
        """What the host wrote, waiting up to ``wait`` seconds (None: until something
        comes); None when nothing came, ``b""`` when the host closed its output."""

    def alive(self) -> bool:
        """True while the host may still answer."""

    def ended(self) -> str:
        """How the host's output ended, for a message: ``exited (status 1)``."""

    def errors(self) -> str:
        """The end of what the host wrote on its error stream (to show in messages)."""

    def end(self) -> None:
        """Close the host's input (its server loop ends) and let it go, within a bound."""

    def kill(self) -> None:
        """End the host now and release the streams."""


class OutOfProcessClient:
    """A runspace pool opened over ``stream``, and the pipelines run on it.

    ``name`` says which host it is in messages ("the PowerShell host 'pwsh'");
    ``check`` says what to check when the host does not speak PSRP. Opening waits
    up to ``timeout`` seconds for the pool; ``ConnectError`` if it does not open.
    """

    def __init__(self, stream: ByteStream, *, name: str, check: str, timeout: float) -> None:
        self.stream = stream
        self.name = name
        self.check = check
        self.broken = False
        self._buffer = b""
        self.pool = psrpcore.ClientRunspacePool()
        try:
            self.pool.open()
            self._send_data()
            deadline = time.monotonic() + timeout
            while self.pool.state != RunspacePoolState.Opened:
                self._step(self._packet(deadline), None)
        except DeadlinePassed:
            tail = self._errors()  # before kill(), which may drop what it reads
            self.kill()
            raise ConnectError(
                f"{name} did not open a runspace within {timeout:g} s; {check}{tail}"
            ) from None
        except TransportError as exc:
            tail = self._errors()
            self.kill()
            if tail in str(exc):
                tail = ""
            raise ConnectError(f"{name} did not open a runspace ({exc}); {check}{tail}") from exc
        except BaseException:
            self.kill()  # interrupted or refused mid-open: no host is left behind untracked
            raise

    # -- the host -------------------------------------------------------------
    def alive(self) -> bool:
        """True while the host may still answer and no call has given it up."""
        return not self.broken and self.stream.alive()

    def _errors(self) -> str:
        text = self.stream.errors()
        return f"; it wrote: {text}" if text else ""

    def kill(self) -> None:
        """Give the host up: end it now and release its streams."""
        self.broken = True
        self.stream.kill()

    def close(self) -> None:
        """Close the pool (bounded), then let the host go."""
        if self.alive():
            with contextlib.suppress(
                OSError, TransportError, DeadlinePassed, psrpcore.PSRPCoreError
            ):
                self._write(_packet("Close", None))
                deadline = time.monotonic() + _CLOSE_GRACE
                while True:  # the pool's CloseAck, after any pipeline's still on the way
                    element = self._packet(deadline)
                    if element.tag == "CloseAck" and psrp.packet_guid(element) is None:
                        break
        self.broken = True
        self.stream.end()

    # -- packets --------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        try:
            self.stream.write(data)
        except (OSError, TimeoutError) as exc:
            self.broken = True
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TransportError(
                f"{self.name} stopped reading ({reason or type(exc).__name__}); the command "
                "is not re-run, and the next call starts a new host"
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
                        return ElementTree.fromstring(line)  # noqa: S314 - our own host's
                    except ElementTree.ParseError as exc:
                        self.broken = True
                        raise TransportError(
                            f"{self.name} wrote something that is not a PSRP packet "
                            f"({line[:80]!r}); {self.check}"
                        ) from exc
                continue
            wait = None
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise DeadlinePassed
            try:
                chunk = self.stream.read(wait)
            except OSError as exc:
                self.broken = True
                raise TransportError(
                    f"{self.name} could not be read ({exc}); the command is not re-run, "
                    "and the next call starts a new host"
                ) from exc
            if chunk is None:
                continue
            if not chunk:
                self.broken = True
                raise TransportError(
                    f"{self.name} {self.stream.ended()}; the command is not re-run, "
                    "and the next call starts a new host" + self._errors()
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
                    f"{self.name}'s runspace pool is {event.state.name.lower()}{reason}; "
                    "the next call starts a new host"
                )
            if output is not None:
                _record(event, output)
        self._send_data()  # answers the pool owes (key exchange, host calls)

    def _until(
        self,
        tag: str,
        pipeline_id: uuid.UUID,
        deadline: float | None,
        output: PipelineOutput | None,
    ) -> None:
        """Read up to the host's ``tag`` about ``pipeline_id`` (an earlier pipeline's late
        CloseAck is skipped), feeding what comes before it to the pool."""
        while True:
            element = self._packet(deadline)
            if element.tag == tag and psrp.packet_guid(element) == pipeline_id:
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
            self._until("CommandAck", ps.pipeline_id, deadline, output)
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
            self._until("SignalAck", pipeline_id, grace, output)
            while not output.finished:
                self._step(self._packet(grace), output)
            self._write(_packet("Close", pipeline_id))
            self._until("CloseAck", pipeline_id, grace, None)
            self.pool.pipeline_table.pop(pipeline_id, None)
        except (DeadlinePassed, TransportError):
            self.kill()
            return (
                "the host did not stop the pipeline, so it was dropped and the next call "
                "starts a new one"
            )
        return "the pipeline was stopped and the PowerShell host stays in use"

    def _close_pipeline(self, ps: psrpcore.ClientPowerShell) -> None:
        # The answer needs nothing from the host's CloseAck, so it is not waited for:
        # it arrives before the next command's packets, which skip it (a round trip
        # less per command on a link with latency).
        self._write(_packet("Close", ps.pipeline_id))
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


class OutOfProcessTransport(PowerShellTransport):
    """A PowerShell transport on one kept out-of-process host: health-checked before
    each call, started again (``open``) after it died, dropped on ``close``.
    Subclasses start the host in ``_start_host``."""

    def __init__(self, target: Any, options: Any) -> None:
        super().__init__(target, options)
        self._host: OutOfProcessClient | None = None
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        return "host"

    @abc.abstractmethod
    def _start_host(self) -> OutOfProcessClient:
        """A new host with its runspace pool open; ``ConnectError`` if none starts."""

    def open(self) -> None:
        with self._lock:
            if self._host is not None and self._host.alive():
                return
            if self._host is not None:
                self._host.kill()
                self._host = None
            self._host = self._start_host()

    def alive(self) -> bool:
        host = self._host
        return host is not None and host.alive()

    def close(self) -> None:
        with self._lock:
            if self._host is not None:
                self._host.close()
                self._host = None

    def _invoke(self, request: psrp.Request, timeout: float | None, output: PipelineOutput) -> None:
        host = self._host
        if host is None or host.broken:
            raise TransportError("the PowerShell host is not running; the session starts it again")
        host.invoke(request, timeout, self.target.address, output)
