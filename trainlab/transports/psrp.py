"""What ``winrm://`` and ``pwsh://`` share: how a command travels in a PowerShell
pipeline, and how its streams come back as a result (PSRP packets and requests).
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from xml.etree import ElementTree

from trainlab import framing
from trainlab.errors import CommandTimeout, InvalidCommand
from trainlab.result import CommandResult
from trainlab.transports.base import Transport

if TYPE_CHECKING:
    pass

__all__ = [
    "RESET",
    "Events",
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


@dataclass
class Events:
    """A pipeline's messages in arrival order: ``(stream, text)`` pairs and the end state.

    ``stream`` is ``output``, ``error``, ``warning``, ``verbose``, ``debug`` or
    ``information``; ``failure`` is the text of a terminating error.
    """

    items: list[tuple[str, str]] = field(default_factory=list)
    finished: bool = False
    failure: str | None = None

    def add(self, stream: str, text: str) -> None:
        self.items.append((stream, text))


@dataclass
class _Collected:
    output: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    streams: dict[str, list[str]] = field(default_factory=dict)

    def outcome(self, status: int) -> framing.FramedOutput:
        return framing.FramedOutput(
            stdout=_encode("\n".join(self.output)),
            stderr=_encode("\n".join(self.errors)),
            exit_status=status,
            duration=None,
        )


_PREFIX = {"warning": "WARNING: ", "verbose": "VERBOSE: ", "debug": "DEBUG: "}


def _encode(text: str) -> bytes:
    # .NET strings may hold lone surrogates, which UTF-8 cannot: those become "?".
    return text.encode("utf-8", "replace")


def outcomes(
    request: Request, events: Events
) -> tuple[list[framing.FramedOutput], list[dict[str, list[str]]]]:
    """Per-command outputs (and their other streams) of the commands that ran.

    Markers carry the command's index, so a command that ended without its marker
    (``exit`` in the script) still gets its own result: status 1 if it wrote an
    error, else 0, since the value given to ``exit`` does not travel.
    """
    done: list[framing.FramedOutput] = []
    extras: list[dict[str, list[str]]] = []
    current = _Collected()

    def close(status: int | None) -> None:
        nonlocal current
        done.append(current.outcome(int(bool(current.errors)) if status is None else status))
        extras.append(current.streams)
        current = _Collected()

    for stream, text in events.items:
        if stream == "information":
            mark = _MARK_DATA.match(text)
            if mark is not None and mark.group(1) == request.nonce:
                while len(done) < min(int(mark.group(2)), len(request.commands) - 1):
                    close(None)
                code, failed = int(mark.group(3)), mark.group(4) == "1"
                close(code if code else int(failed))
                continue
            current.output.append(text)  # Write-Host and Write-Information text
            current.streams.setdefault("information", []).append(text)
        elif stream == "output":
            current.output.append(text)
        elif stream == "error":
            current.errors.append(text)
        else:
            current.errors.append(_PREFIX.get(stream, "") + text)
            current.streams.setdefault(stream, []).append(text)
    if len(done) < len(request.commands):
        if events.failure is not None and f"{request.nonce} stop" not in events.failure:
            current.errors.append(events.failure)  # a terminating error ended this command
            close(1)
        elif events.failure is None and events.finished:
            close(None)  # the pipeline ended early and cleanly: ``exit`` in this command
    return done, extras


def results(
    request: Request, events: Events, target: str, started: datetime, wall: float
) -> list[CommandResult]:
    """CommandResults of the commands that ran, each with its own streams in ``extra``."""
    outputs, extras = outcomes(request, events)
    found = framing.framed_results(request.commands, outputs, target, started, wall)
    for result, extra in zip(found, extras, strict=True):
        result.extra.update(extra)
    return found


def timeout_error(
    request: Request, events: Events, target: str, timeout: float | None, aftermath: str
) -> CommandTimeout:
    """The CommandTimeout of a pipeline stopped at its deadline, with what had finished."""
    finished = Events(events.items)  # a stopped pipeline's own error is not a command's result
    outputs, _ = outcomes(request, finished)
    return framing.cut_off(request.commands, outputs, target, timeout, aftermath)


class PowerShellTransport(Transport):
    """What ``winrm://`` and ``pwsh://`` share: batches, ``run_ps`` sessions, no file API."""

    session_class: ClassVar[str | None] = "trainlab.powershell:PowerShellSession"

    @property
    def supports_batch(self) -> bool:
        return True

    def run(self, command: str, timeout: float | None) -> CommandResult:
        return self.run_many([command], timeout, False)[0]

    def run_many(
        self, commands: Sequence[str], timeout: float | None, stop_on_error: bool
    ) -> list[CommandResult]:
        request = build_request(commands, stop_on_error=stop_on_error)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        events = self._invoke(request, timeout)
        wall = time.perf_counter() - t0
        return results(request, events, self.target.address, started, wall)

    def _invoke(self, request: Request, timeout: float | None) -> Events:
        """Run ``request`` as one pipeline; its events, finished."""
        raise NotImplementedError  # pragma: no cover - every PowerShell transport defines it

    def read_file(self, path: str) -> bytes:
        raise NotImplementedError(f"{self.scheme}:// reads files with run_ps('Get-Content ...')")
