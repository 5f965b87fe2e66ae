"""Bounded output capture: what a command writes, kept at most ``max_output`` bytes a stream.

A transport that accepts a sink (``Transport.supports_output``) writes every chunk of
a command's stdout and stderr into a ``CommandCapture`` as it arrives; the capture
keeps a head and a tail, counts what it drops, spools everything to a file when
asked and hands decoded text to an ``on_output`` callback, so memory stays flat
however much a command writes.

>>> capture = CommandCapture(max_output=8)
>>> capture.write("stdout", b"0123456789abcdef")
>>> capture.stdout.value(), capture.stdout.dropped, capture.truncated
(b'0123cdef', 8, True)
"""

from __future__ import annotations

import codecs
import os
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import IO

from trainlab.result import CommandResult

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "CallOutput",
    "CommandCapture",
    "OnOutput",
    "StrayOutput",
    "StreamCapture",
    "resolve_max_output",
]

#: The default most bytes kept per stream (the result cache holds 64 MiB in all).
DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024

#: ``on_output(stream, text)``: ``stream`` is ``"stdout"`` or ``"stderr"``.
OnOutput = Callable[[str, str], None]


def resolve_max_output(value: int | None) -> int | None:
    """``max_output`` as a byte count, or ``None`` for no bound (``None`` and 0 both mean it).

    >>> resolve_max_output(0) is None, resolve_max_output(10)
    (True, 10)
    """
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        from trainlab.errors import InvalidCommand

        raise InvalidCommand(f"max_output must be a byte count >= 0 or None, got {value!r}")
    return value


class StreamCapture:
    """One stream, kept as a head and a tail of at most ``limit`` bytes together.

    The head keeps the first ``limit // 2`` bytes and the tail the last
    ``limit - limit // 2``; what lies between is counted in ``dropped`` and not
    kept. With ``limit=None`` every byte is kept.
    """

    __slots__ = (
        "_chunks",
        "_head",
        "_head_limit",
        "_split",
        "_tail",
        "_tail_limit",
        "_tail_size",
        "dropped",
        "limit",
        "total",
    )

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.total = 0
        self.dropped = 0
        self._chunks: list[bytes] = []  # everything, until the limit is crossed
        self._split = False  # True once the bytes are kept as head and tail
        self._head: bytes | memoryview = b""
        self._head_limit = 0 if limit is None else limit // 2
        self._tail_limit = 0 if limit is None else limit - limit // 2
        # Pieces of the tail; the first is cut with a memoryview (no copy) as it ages.
        self._tail: deque[bytes | memoryview] = deque()
        self._tail_size = 0

    def write(self, data: bytes) -> None:
        """Keep ``data`` (or the part of it the bound allows)."""
        self.total += len(data)
        if self._split:
            self._append_tail(data)
        elif self.limit is None or self.total <= self.limit:
            self._chunks.append(data)
        else:  # the limit is crossed now: the first bytes become the head
            self._split = True
            chunks, self._chunks = [*self._chunks, data], []
            head: list[bytes] = []
            room = self._head_limit
            for chunk in chunks:
                if room >= len(chunk):
                    head.append(chunk)
                    room -= len(chunk)
                elif room:
                    head.append(chunk[:room])
                    self._append_tail(memoryview(chunk)[room:])
                    room = 0
                else:
                    self._append_tail(chunk)
            self._head = b"".join(head)

    def _append_tail(self, data: bytes | memoryview) -> None:
        self._tail.append(data)
        self._tail_size += len(data)
        excess = self._tail_size - self._tail_limit
        while excess > 0:
            first = self._tail[0]
            if len(first) <= excess:
                self._tail.popleft()
                self._tail_size -= len(first)
                self.dropped += len(first)
                excess -= len(first)
            else:
                self._tail[0] = memoryview(first)[excess:]
                self._tail_size -= excess
                self.dropped += excess
                excess = 0

    def value(self) -> bytes:
        """The bytes kept: all of them, or the head followed by the tail.

        The pieces are joined once and then kept as views of the joined bytes, so
        asking again costs nothing and the capture holds one copy.
        """
        if not self._split:
            if len(self._chunks) > 1:
                self._chunks = [b"".join(self._chunks)]
            return self._chunks[0] if self._chunks else b""
        head, tail = self._head, self._tail
        if len(tail) == 1 and isinstance(head, memoryview) and isinstance(tail[0], memoryview):
            joined = head.obj
            if (
                isinstance(joined, bytes)
                and tail[0].obj is joined
                and len(joined) == len(head) + self._tail_size
            ):
                return joined  # nothing arrived since the last join
        joined = b"".join([self._head, *self._tail])
        view = memoryview(joined)
        self._head = view[: len(self._head)]
        self._tail = deque([view[len(self._head) :]])
        return joined

    def clipped(self, limit: int) -> bytes:
        """At most ``limit`` of the kept bytes: all of them, or their head and tail."""
        if not self._split or len(self._head) + self._tail_size <= limit:
            kept = self.value()
            if len(kept) <= limit:
                return kept
            return kept[: limit // 2] + kept[len(kept) - (limit - limit // 2) :]
        # Head and tail are larger than asked: take the ends without joining it all.
        want = limit - limit // 2
        pieces: list[bytes | memoryview] = []
        for piece in reversed(self._tail):
            pieces.append(piece[-want:] if len(piece) > want else piece)
            want -= len(pieces[-1])
            if want <= 0:
                break
        return b"".join([self._head[: limit // 2], *reversed(pieces)])


class CommandCapture:
    """One command's two streams: bounded, optionally spooled and streamed.

    Parameters
    ----------
    max_output
        Most bytes kept per stream (head and tail, half each); ``None``: all.
    output_file
        A path that receives every byte of stdout; stderr goes to ``<path>.stderr``.
        Both files are created (truncated) when the capture is.
    on_output
        ``on_output(stream, text)`` with each chunk as it arrives, decoded as UTF-8
        incrementally (a character split between chunks arrives whole; invalid
        bytes are replaced). An exception it raises stops the command and propagates.
    """

    def __init__(
        self,
        max_output: int | None = None,
        *,
        output_file: str | os.PathLike[str] | None = None,
        on_output: OnOutput | None = None,
    ) -> None:
        self.stdout = StreamCapture(max_output)
        self.stderr = StreamCapture(max_output)
        self._files: dict[str, IO[bytes]] = {}
        if output_file is not None:
            path = os.fspath(output_file)
            self._files["stdout"] = open(path, "wb")  # noqa: SIM115 - closed by close()
            try:
                self._files["stderr"] = open(path + ".stderr", "wb")  # noqa: SIM115
            except BaseException:
                self._files["stdout"].close()
                raise
        self._emit = on_output
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for name in ("stdout", "stderr")
        }

    @property
    def streams(self) -> bool:
        """True when output goes somewhere as it arrives (a file or a callback)."""
        return bool(self._files) or self._emit is not None

    @property
    def truncated(self) -> bool:
        """True when either stream dropped bytes."""
        return bool(self.stdout.dropped or self.stderr.dropped)

    def write(self, stream: str, data: bytes) -> None:
        """Take one chunk of ``stream`` (``"stdout"`` or ``"stderr"``)."""
        if not data:
            return
        (self.stdout if stream == "stdout" else self.stderr).write(data)
        spool = self._files.get(stream)
        if spool is not None:
            spool.write(data)
        if self._emit is not None:
            text = self._decoders[stream].decode(data)
            if text:
                self._emit(stream, text)

    def close(self) -> None:
        """Flush the decoders (a character cut off at the end) and close the files. Idempotent."""
        if self._emit is not None:
            emit, self._emit = self._emit, None
            for stream, decoder in self._decoders.items():
                text = decoder.decode(b"", final=True)
                if text:
                    emit(stream, text)
        for spool in self._files.values():
            spool.close()

    def partial(self, limit: int) -> tuple[bytes, bytes]:
        """Stdout and stderr clipped to ``limit`` bytes each (head and tail), for an error."""
        return self.stdout.clipped(limit), self.stderr.clipped(limit)

    def apply(self, result: CommandResult) -> CommandResult:
        """``result`` holding what this capture kept, with ``truncated`` and the drop counts."""
        return replace(
            result,
            stdout_bytes=self.stdout.value(),
            stderr_bytes=self.stderr.value(),
            truncated=result.truncated or self.truncated,
            stdout_dropped=result.stdout_dropped + self.stdout.dropped,
            stderr_dropped=result.stderr_dropped + self.stderr.dropped,
        )

    def take(self, result: CommandResult) -> CommandResult:
        """Feed a finished ``result`` through the capture (for a transport that cannot
        stream): the callback and the file get its output now, and it is capped."""
        try:
            self.write("stdout", result.stdout_bytes)
            self.write("stderr", result.stderr_bytes)
        finally:
            self.close()
        return self.apply(result)


class CallOutput:
    """What one ``run_many`` call asks of its output: a capture per command.

    ``for_command(index)`` makes command ``index``'s ``CommandCapture``; ``on_output``
    here takes the command's index first: ``on_output(index, stream, text)``. A batch
    has no spool file (``output_file`` is for one command, ``Session.run``).
    """

    def __init__(
        self,
        max_output: int | None,
        *,
        on_output: Callable[[int, str, str], None] | None = None,
        indices: Sequence[int] | None = None,
        captures: list[CommandCapture] | None = None,
    ) -> None:
        self.max_output = max_output
        self.on_output = on_output
        self._indices = indices
        self.captures: list[CommandCapture] = [] if captures is None else captures

    def for_command(self, index: int) -> CommandCapture:
        """A fresh capture for command ``index`` of this call."""
        emit = self.on_output
        number = index if self._indices is None else self._indices[index]
        capture = CommandCapture(
            self.max_output,
            on_output=None if emit is None else (lambda stream, text: emit(number, stream, text)),
        )
        self.captures.append(capture)
        return capture

    def subset(self, indices: Sequence[int]) -> CallOutput:
        """This call's output for some of its commands: ``for_command(i)`` of the
        result is command ``indices[i]`` of the call (the ones not answered from the cache)."""
        return CallOutput(
            self.max_output, on_output=self.on_output, indices=indices, captures=self.captures
        )

    def close(self) -> None:
        """Close every capture made (decoders). Idempotent."""
        for capture in self.captures:
            capture.close()


class StrayOutput:
    r"""Output that arrived outside every command's answer, kept for a user to see.

    A background job that writes after its command ended writes to no command: on
    ``local://`` each command's FIFOs tell it apart whenever it arrives; an SSH kept
    shell shares one channel, and what arrives between two answers is no command's.
    Such output is handed here instead of to a later command, the last ``limit`` bytes
    of each stream are kept, ``total`` counts every byte, and the first arrival warns
    once (``StrayOutputWarning``), naming the fix.

    >>> stray = StrayOutput("demo", limit=4)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     stray.add("stdout", b"LATE")
    ...     stray.add("stdout", b"R\n")
    >>> stray.stdout, stray.total, len(seen)
    (b'TER\n', 6, 1)
    """

    def __init__(self, where: str, limit: int = 64 * 1024) -> None:
        self.where = where
        self.limit = limit
        self.stdout = b""
        self.stderr = b""
        self.total = 0
        self._warned = False
        self._lock = threading.Lock()

    def add(self, stream: str, data: bytes) -> None:
        """Keep the end of ``data``, which arrived on ``stream`` outside any answer."""
        if not data:
            return
        with self._lock:
            self.total += len(data)
            if stream == "stdout":
                self.stdout = (self.stdout + data)[-self.limit :]
            else:
                self.stderr = (self.stderr + data)[-self.limit :]
            warn, self._warned = not self._warned, True
        if warn:
            from trainlab.errors import StrayOutputWarning

            warnings.warn(
                StrayOutputWarning(
                    f"a background job wrote to {self.where} after its command ended; "
                    "that output is in no result, and session.stray_output keeps its end. "
                    "Send such a job's output elsewhere (`job >/dev/null 2>&1 &` or to a "
                    "file), or run it with mode=exec, where each command has its own channel"
                ),
                stacklevel=2,
            )

    def clear(self) -> None:
        """Forget what was kept (the next arrival does not warn again)."""
        with self._lock:
            self.stdout = self.stderr = b""
            self.total = 0

    def __repr__(self) -> str:
        return (
            f"<StrayOutput {self.where} total={self.total} "
            f"stdout={self.stdout[-60:]!r} stderr={self.stderr[-60:]!r}>"
        )
