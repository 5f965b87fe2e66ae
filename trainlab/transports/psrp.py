"""What ``winrm://``, ``pwsh://`` and ``pwsh+ssh://`` share: how a command travels in a
PowerShell pipeline, and how its streams come back as a result (PSRP packets and requests).
``run_ps`` for objects is ``trainlab.powershell.PowerShellSession``'s.

Each command is one statement of one pipeline, a script of three parts::

    $global:LASTEXITCODE = 0
    <the command>
    $__tl_ok = $?; Write-Information -MessageData "<nonce> <index> <exit> <failed>"

The last line reports ``$LASTEXITCODE`` and ``$?`` on the information stream with
a random per-request nonce, so a batch is one round trip whose messages (which
PSRP keeps in order) split into per-command results at each marker. The exit
status is what ``pwsh -Command`` would exit with: ``$LASTEXITCODE`` when a native
command set it non-zero, else 1 when the last statement failed (``$?`` false) or
a terminating error ended the command, else 0.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from xml.etree import ElementTree

from trainlab import framing
from trainlab.capture import CallOutput, CommandCapture
from trainlab.errors import CommandTimeout, InvalidCommand
from trainlab.result import CommandResult
from trainlab.transports.base import StreamingTransport

__all__ = [
    "RESET",
    "PipelineOutput",
    "PowerShellTransport",
    "Request",
    "as_json_script",
    "build_request",
    "data_packets",
    "packet",
    "packet_payload",
    "parse_mark",
    "unwrap_json_script",
]

RESET = "$global:LASTEXITCODE = 0"
_MARK = (
    "$__tl_ok = $?; Write-Information -MessageData "
    '"{nonce} {index} $([int]$global:LASTEXITCODE) $([int](-not $__tl_ok))"'
)
_STOP = "; if ((-not $__tl_ok) -or $global:LASTEXITCODE) {{ throw '{nonce} stop' }}"
_MARK_LINE = re.compile(
    r'^\$__tl_ok = \$\?; Write-Information -MessageData "(__tl_[0-9a-f]{24}) (\d+) '
    r"\$\(\[int\]\$global:LASTEXITCODE\) \$\(\[int\]\(-not \$__tl_ok\)\)\"(; if .*)?$"
)
_MARK_DATA = re.compile(r"^(__tl_[0-9a-f]{24}) (\d+) (-?\d+) ([01])$")
_JSON_HEAD = "ConvertTo-Json -InputObject @(\n"
_JSON_TAIL = re.compile(r"\n\) -Depth (\d+) -Compress$")


def text(value: Any) -> str:
    """A value from a PowerShell stream as text."""
    return value if isinstance(value, str) else str(value)


def add_scripts(ps: Any, request: Request) -> None:
    """The request's scripts as statements of one pipeline (pypsrp's or psrpcore's)."""
    for script in request.scripts:
        ps.add_script(script)
        ps.add_statement()


def packet(tag: str, guid: uuid.UUID | None, data: bytes | None = None, stream: str = "") -> bytes:
    """One packet of PSRP's out-of-process protocol: a line of XML (``pwsh -s``)."""
    ps_guid = str(guid or uuid.UUID(int=0)).upper()
    if data is None:
        return f"<{tag} PSGuid='{ps_guid}' />\n".encode()
    encoded = base64.b64encode(data).decode()
    return f"<{tag} Stream='{stream or 'Default'}' PSGuid='{ps_guid}'>{encoded}</{tag}>\n".encode()


def data_packets(pool: Any) -> Iterator[bytes]:
    """``<Data>`` packets of everything a psrpcore runspace pool has queued to send."""
    import psrpcore

    while (payload := pool.data_to_send()) is not None:
        prompt = payload.stream_type == psrpcore.StreamType.prompt_response
        stream = "PromptResponse" if prompt else "Default"
        yield packet("Data", payload.pipeline_id, payload.data, stream)


def packet_guid(element: ElementTree.Element) -> uuid.UUID | None:
    """The pipeline a packet is about; None for the pool (the all-zero PSGuid)."""
    guid = uuid.UUID(element.attrib.get("PSGuid", str(uuid.UUID(int=0))))
    return None if guid.int == 0 else guid


def packet_payload(element: ElementTree.Element) -> Any:
    """The psrpcore ``PSRPPayload`` a ``<Data>`` packet carries."""
    import psrpcore

    prompt = element.attrib.get("Stream") == "PromptResponse"
    return psrpcore.PSRPPayload(
        base64.b64decode(element.text or ""),
        psrpcore.StreamType.prompt_response if prompt else psrpcore.StreamType.default,
        packet_guid(element),
    )


@dataclass(frozen=True)
class Request:
    """The statements of one pipeline and what reading its answer needs."""

    nonce: str
    commands: tuple[str, ...]
    scripts: tuple[str, ...]


def build_request(commands: Sequence[str], *, stop_on_error: bool = False) -> Request:
    """One script per command, each ending with its marker (see the module docstring)."""
    if not commands:
        raise InvalidCommand("no commands to run")
    nonce = framing.new_nonce().decode()
    scripts = []
    for index, command in enumerate(commands):
        if "\0" in command:
            raise InvalidCommand("a command cannot contain NUL bytes")
        mark = _MARK.format(nonce=nonce, index=index)
        if stop_on_error and index < len(commands) - 1:
            mark += _STOP.format(nonce=nonce)
        scripts.append(f"{RESET}\n{command}\n{mark}")
    return Request(nonce, tuple(commands), tuple(scripts))


def parse_mark(line: str) -> tuple[str, int, bool] | None:
    """(nonce, index, stops on error) of a marker line, else None (for test servers)."""
    match = _MARK_LINE.match(line)
    if match is None:
        return None
    return match.group(1), int(match.group(2)), match.group(3) is not None


def as_json_script(script: str, depth: int) -> str:
    """``script`` whose objects come back as one compressed JSON array."""
    return f"{_JSON_HEAD}{script}\n) -Depth {depth} -Compress"


def unwrap_json_script(script: str) -> str | None:
    """The inner script of ``as_json_script``, or None (for test servers)."""
    if script.startswith(_JSON_HEAD):
        match = _JSON_TAIL.search(script)
        if match is not None:
            return script[len(_JSON_HEAD) : match.start()]
    return None


class _Command:
    """One command's share of a pipeline: its capture and the records kept beside it."""

    __slots__ = ("capture", "dropped", "kept", "limit", "streams", "wrote")

    def __init__(self, capture: CommandCapture) -> None:
        self.capture = capture
        self.wrote = {"stdout": False, "stderr": False}
        self.streams: dict[str, list[str]] = {}
        self.dropped: dict[str, int] = {}
        self.kept = 0
        self.limit = capture.stdout.limit

    def write(self, stream: str, text: str) -> None:
        """One message as a line of ``stream``: lines are joined with newlines, none after
        the last, so the bytes are the same whether they are streamed or not."""
        data = _encode(text)
        if self.wrote[stream]:
            data = b"\n" + data
        self.wrote[stream] = True
        self.capture.write(stream, data)

    def note(self, stream: str, text: str) -> None:
        """Keep a record for ``result.extra``: the first ones, up to ``max_output`` characters."""
        if self.limit is not None and self.kept + len(text) > self.limit:
            self.dropped[stream] = self.dropped.get(stream, 0) + 1
            return
        self.kept += len(text)
        self.streams.setdefault(stream, []).append(text)

    def extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = dict(self.streams)
        for stream, count in self.dropped.items():
            extra[f"{stream}_dropped"] = count
        return extra


_PREFIX = {"warning": "WARNING: ", "verbose": "VERBOSE: ", "debug": "DEBUG: "}


def _encode(text: str) -> bytes:
    # .NET strings may hold lone surrogates, which UTF-8 cannot: those become "?".
    return text.encode("utf-8", "replace")


class PipelineOutput:
    """A pipeline's messages, each written into its command's capture as it arrives.

    The transports call ``add(stream, text)`` for every message in arrival order
    (PSRP keeps it) and set ``finished`` when the pipeline ends, with ``failure``,
    the text of a terminating error, if one ended it. ``stream`` is ``output``,
    ``error``, ``warning``, ``verbose``, ``debug`` or ``information``.

    Output objects and ``Write-Host``/``Write-Information`` text are stdout lines;
    error records, then warning, verbose and debug records with their console
    prefixes, are stderr lines. A marker closes its command, so a batch's messages
    go to ``capture_for(index)`` of the command that wrote them and nothing is held
    here but each command's capture (bounded) and the records kept for
    ``result.extra`` (bounded alike).

    >>> request = build_request(["Get-Date"])
    >>> seen = []
    >>> capture = CommandCapture(on_output=lambda stream, text: seen.append((stream, text)))
    >>> output = PipelineOutput(request, lambda index: capture)
    >>> output.add("output", "Monday")
    >>> output.add("warning", "late")
    >>> seen
    [('stdout', 'Monday'), ('stderr', 'WARNING: late')]
    """

    def __init__(self, request: Request, capture_for: Callable[[int], CommandCapture]) -> None:
        self.request = request
        self.finished = False
        self.failure: str | None = None
        self._capture_for = capture_for
        self._commands: list[_Command] = []  # the commands that wrote or finished, in order
        self.done: list[framing.FramedOutput] = []
        self.extras: list[dict[str, Any]] = []

    def _current(self) -> _Command | None:
        """The command whose messages arrive now; None after the last one finished."""
        index = len(self.done)
        if index >= len(self.request.commands):
            return None
        if index == len(self._commands):
            self._commands.append(_Command(self._capture_for(index)))
        return self._commands[index]

    def add(self, stream: str, text: str) -> None:
        """One message of the pipeline, in arrival order."""
        if stream == "information":
            mark = _MARK_DATA.match(text)
            if mark is not None and mark.group(1) == self.request.nonce:
                while len(self.done) < min(int(mark.group(2)), len(self.request.commands) - 1):
                    self._close(None)
                code, failed = int(mark.group(3)), mark.group(4) == "1"
                self._close(code if code else int(failed))
                return
        command = self._current()
        if command is None:
            return  # after the last marker: no command's output
        if stream == "information":  # Write-Host and Write-Information text
            command.write("stdout", text)
            command.note("information", text)
        elif stream == "output":
            command.write("stdout", text)
        elif stream == "error":
            command.write("stderr", text)
        else:
            command.write("stderr", _PREFIX.get(stream, "") + text)
            command.note(stream, text)

    def _close(self, status: int | None) -> None:
        """The current command finished: exit ``status``, or None to derive it (1 if it
        wrote to stderr, else 0)."""
        command = self._current()
        if command is None:
            return
        capture = command.capture
        capture.close()
        self.done.append(
            framing.FramedOutput(
                stdout=capture.stdout.value(),
                stderr=capture.stderr.value(),
                exit_status=int(command.wrote["stderr"]) if status is None else status,
                duration=None,
                stdout_dropped=capture.stdout.dropped,
                stderr_dropped=capture.stderr.dropped,
            )
        )
        self.extras.append(command.extra())

    def end(self) -> None:
        """The pipeline ended: settle the command it ended in.

        Markers carry the command's index, so a command that ended without its
        marker (``exit`` in the script) still gets its own result: status 1 if it
        wrote an error, else 0, since the value given to ``exit`` does not travel.
        """
        if len(self.done) >= len(self.request.commands):
            return
        if self.failure is not None and f"{self.request.nonce} stop" not in self.failure:
            command = self._current()
            if command is not None:  # a terminating error ended this command
                command.write("stderr", self.failure)
            self._close(1)
        elif self.failure is None and self.finished:
            self._close(None)  # the pipeline ended early and cleanly: ``exit`` in this command

    def running(self) -> CommandCapture | None:
        """The capture of the command that had started and not finished, if any."""
        index = len(self.done)
        return self._commands[index].capture if index < len(self._commands) else None


def results(
    output: PipelineOutput, target: str, started: datetime, wall: float
) -> list[CommandResult]:
    """CommandResults of the commands that ran, each with its own streams in ``extra``."""
    output.end()
    found = framing.framed_results(output.request.commands, output.done, target, started, wall)
    for result, extra in zip(found, output.extras, strict=False):
        result.extra.update(extra)
    return found


def timeout_error(
    output: PipelineOutput, target: str, timeout: float | None, aftermath: str
) -> CommandTimeout:
    """The CommandTimeout of a pipeline stopped at its deadline: the commands that had
    finished (``partial``, for a batch) and the head and tail of what the running one
    wrote (at most ``framing.PARTIAL_LIMIT`` a stream)."""
    stdout = stderr = b""
    running = output.running()
    if running is not None:
        running.close()
        stdout, stderr = running.partial(framing.PARTIAL_LIMIT)
    return framing.cut_off(
        output.request.commands,
        output.done,
        target,
        timeout,
        aftermath,
        stdout=stdout,
        stderr=stderr,
    )


class PowerShellTransport(StreamingTransport):
    """What the PowerShell transports share: batches, ``run_ps`` sessions, no file API.

    Output streams: each message goes into its command's capture as it arrives
    (``PipelineOutput``), so ``on_output`` sees it while the pipeline runs and a
    flood of records keeps at most ``max_output`` bytes a stream. One message is
    one piece: a single output object is received whole before it is written
    (PSRP sends an object's fragments, and the client rebuilds it, before it can
    be read), so the bound applies between objects, not within one.
    """

    session_class: ClassVar[str | None] = "trainlab.powershell:PowerShellSession"

    @property
    def supports_batch(self) -> bool:
        return True

    def run_captured(
        self, command: str, timeout: float | None, output: CommandCapture
    ) -> CommandResult:
        return self._pipeline([command], timeout, False, lambda _index: output)[0]

    def run_many_captured(
        self,
        commands: Sequence[str],
        timeout: float | None,
        stop_on_error: bool,
        output: CallOutput,
    ) -> list[CommandResult]:
        return self._pipeline(commands, timeout, stop_on_error, output.for_command)

    def _pipeline(
        self,
        commands: Sequence[str],
        timeout: float | None,
        stop_on_error: bool,
        capture_for: Callable[[int], CommandCapture],
    ) -> list[CommandResult]:
        request = build_request(commands, stop_on_error=stop_on_error)
        output = PipelineOutput(request, capture_for)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        self._invoke(request, timeout, output)
        wall = time.perf_counter() - t0
        return results(output, self.target.address, started, wall)

    def _invoke(self, request: Request, timeout: float | None, output: PipelineOutput) -> None:
        """Run ``request`` as one pipeline, every message into ``output``, until it ends."""
        raise NotImplementedError  # pragma: no cover - every PowerShell transport defines it

    def read_file(self, path: str) -> bytes:
        raise NotImplementedError(f"{self.scheme}:// reads files with run_ps('Get-Content ...')")
