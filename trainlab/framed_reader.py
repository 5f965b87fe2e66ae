"""The framing protocol read as it arrives: each command's bytes into its own capture.

``framing.parse_response`` splits a whole answer once it is in memory; a
``FrameReader`` is fed the streams chunk by chunk, finds each marker line as it
arrives and routes the bytes before it to that command's ``CommandCapture``, so
a bounded capture can drop the middle of a flood while the markers at the end
of each command are still seen, and a batch keeps its per-command boundaries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from trainlab.capture import CommandCapture
from trainlab.errors import CommandTimeout, TransportError
from trainlab.framing import PARTIAL_LIMIT, FramedOutput, Request, cut_off, parse_duration

__all__ = ["FrameReader", "held_back"]

# A marker line is short; more pending bytes than this after a nonce mean the
# protocol broke.
_LONGEST_MARKER = 4096


@dataclass
class _Stream:
    name: str
    index: int = 0  # the command whose bytes arrive now
    pending: bytes = b""  # the end of the last chunk: maybe the start of a marker
    done: bool = False  # the request's last (``Z``) marker was read


class FrameReader:
    """One framed request's answer, fed chunk by chunk from stdout and stderr.

    >>> from trainlab.framing import build_request
    >>> request = build_request(["echo a", "echo b"], nonce=b"__tl_n")
    >>> reader = FrameReader(request, lambda i: CommandCapture())
    >>> reader.feed("stderr", b"__tl_n E 0\\n__tl_n E 1 Z 2\\n")
    >>> reader.feed("stdout", b"a\\n__tl_n E 0 0\\nb\\n__tl_n E 1 0 Z 2\\n")
    >>> reader.done, [o.stdout for o in reader.outputs()]
    (True, [b'a\\n', b'b\\n'])

    Parameters
    ----------
    request
        The request whose answer this is.
    capture_for
        ``capture_for(index)`` gives command ``index``'s capture (called once per
        command, when its first byte or marker arrives).
    clock
        Time the commands from the arrival of their markers (a host without a
        clock); ``sent`` is when the request was written.
    """

    def __init__(
        self,
        request: Request,
        capture_for: Callable[[int], CommandCapture],
        *,
        clock: bool = False,
        sent: float | None = None,
    ) -> None:
        self.request = request
        self._capture_for = capture_for
        self._mark = request.nonce + b" E "
        self._streams = {"stdout": _Stream("stdout"), "stderr": _Stream("stderr")}
        self._captures: list[CommandCapture] = []
        self._status: list[int] = []
        self._durations: list[float | None] = []
        self._clock = clock
        self._previous = time.perf_counter() if sent is None else sent

    @property
    def stdout_done(self) -> bool:
        return self._streams["stdout"].done

    @property
    def stderr_done(self) -> bool:
        return self._streams["stderr"].done

    @property
    def finished(self) -> int:
        """How many commands are answered (both of their markers read)."""
        return min(self._streams["stdout"].index, self._streams["stderr"].index)

    @property
    def done(self) -> bool:
        """True when both streams carried the request's last marker."""
        return self.stdout_done and self.stderr_done

    def feed(self, stream: str, data: bytes) -> None:
        """Take one chunk of ``stream`` (``"stdout"`` or ``"stderr"``)."""
        state = self._streams[stream]
        if state.done:
            return  # after the last marker: a background job's bytes, not this answer
        buf = state.pending + data if state.pending else data
        pos = 0
        while True:
            at = buf.find(self._mark, pos)
            if at < 0:
                cut = len(buf) - held_back(buf, pos, self._mark)
                self._route(state, buf[pos:cut])
                state.pending = buf[cut:]
                return
            self._route(state, buf[pos:at])
            end = buf.find(b"\n", at)
            if end < 0:
                state.pending = buf[at:]
                if len(state.pending) > _LONGEST_MARKER:
                    raise TransportError("the shell's answer holds a broken marker line")
                return
            self._marker(state, buf[at + len(self._mark) : end].split(b" "))
            pos = end + 1
            if state.done:
                state.pending = b""
                return

    def write(self, index: int, stream: str, data: bytes) -> None:
        """Take ``data`` that command ``index`` wrote to ``stream`` on a channel of its
        own (a host with split outputs): its markers still come through ``feed``."""
        if data and index < len(self.request.commands):
            self._capture(index).write(stream, data)

    def _capture(self, index: int) -> CommandCapture:
        while len(self._captures) <= index:
            self._captures.append(self._capture_for(len(self._captures)))
        return self._captures[index]

    def _route(self, state: _Stream, data: bytes) -> None:
        if data and state.index < len(self.request.commands):
            self._capture(state.index).write(state.name, data)

    def _marker(self, state: _Stream, fields: list[bytes]) -> None:
        try:
            index = int(fields[0])
        except ValueError:
            raise TransportError("the shell's answer holds a broken marker line") from None
        if index != state.index or index >= len(self.request.commands):
            raise TransportError(f"the shell's answer is out of step at command {index}")
        last = b"Z" in fields
        if last:
            fields = fields[: fields.index(b"Z")]
        if state.name == "stdout":
            duration = parse_duration(fields[2:])
            if duration is None and self._clock:
                now = time.perf_counter()
                duration, self._previous = max(0.0, now - self._previous), now
            self._status.append(int(fields[1]))
            self._durations.append(duration)
        capture = self._capture(index)
        state.index += 1
        state.done = last
        other = self._streams["stderr" if state.name == "stdout" else "stdout"]
        if other.index > index:  # both of its markers are in: the command is finished
            capture.close()

    def outputs(self) -> list[FramedOutput]:
        """The finished commands' outputs, in order."""
        results = []
        for index in range(self.finished):
            capture = self._captures[index]
            results.append(
                FramedOutput(
                    stdout=capture.stdout.value(),
                    stderr=capture.stderr.value(),
                    exit_status=self._status[index],
                    duration=self._durations[index],
                    stdout_dropped=capture.stdout.dropped,
                    stderr_dropped=capture.stderr.dropped,
                )
            )
        return results

    def finish(self) -> None:
        """The answer ended (or was cut off) here: bytes held back as maybe the start
        of a marker are the running command's output after all."""
        for state in self._streams.values():
            if not state.done and state.pending:
                self._route(state, state.pending)
                state.pending = b""

    def close(self) -> None:
        """Close every capture (files, decoders). Idempotent."""
        for capture in self._captures:
            capture.close()

    def timeout_error(
        self, target: str, timeout: float | None, *, aftermath: str
    ) -> CommandTimeout:
        """The CommandTimeout of this request cut off at its deadline: the finished
        commands as ``partial`` (a batch), and the head and tail of what the running
        one wrote (at most ``PARTIAL_LIMIT`` a stream) as ``stdout``/``stderr``."""
        self.finish()  # a marker cut off is the command's output
        outputs = self.outputs()
        running = len(outputs)
        stdout = stderr = b""
        if running < len(self._captures):
            capture = self._captures[running]
            capture.close()
            stdout, stderr = capture.partial(PARTIAL_LIMIT)
        return cut_off(
            self.request.commands, outputs, target, timeout, aftermath, stdout=stdout, stderr=stderr
        )


def held_back(buf: bytes, pos: int, mark: bytes) -> int:
    """How many bytes at the end of ``buf[pos:]`` may begin ``mark``: a stream reader
    keeps them for the next chunk, where the mark may go on.

    >>> held_back(b"out __tl", 0, b"__tl_x E ")
    4
    """
    for size in range(min(len(mark) - 1, len(buf) - pos), 0, -1):
        if buf.endswith(mark[:size]):
            return size
    return 0
