"""A scripted transport for unit tests and documentation examples.

Answers come from ``responses``: a mapping of command to a string (stdout), bytes,
an int (exit status), a ``(stdout, stderr, exit_status)`` tuple, a
``CommandResult``, an exception to raise, a list of any of these (one per call,
the last repeating), or a callable taking the command. It never touches a
network or a process; it is not a substitute for testing a real transport.

>>> import trainlab
>>> s = trainlab.connect("mock://web1", responses={"hostname": "web1\\n"}, reuse=False)
>>> s.run("hostname").stdout
'web1\\n'
>>> s.run("nope").exit_status
127
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from trainlab.errors import FileMissing
from trainlab.options import Option
from trainlab.result import CommandResult, FileStat
from trainlab.transports.base import Transport

__all__ = ["MockTransport"]


class MockTransport(Transport):
    """Scripted answers; counts opens, closes and calls."""

    scheme: ClassVar[str] = "mock"
    options: ClassVar[Mapping[str, Option]] = {
        "responses": Option(dict, None, "command -> answer (see the module docs)"),
        "files": Option(dict, None, "path -> bytes or text"),
        "batch": Option(bool, True, "answer run_many natively (False: one at a time)"),
        "default_exit": Option(int, 127, "exit status for an unscripted command"),
        "latency": Option(
            float, 0.0, "seconds each call sleeps (for demonstrations)", minimum=0, maximum=3_600
        ),
        "password": Option(str, None, "a secret, to test that it never shows", secret=True),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        self.calls: list[str] = []
        self.batches: list[list[str]] = []
        self.opens = 0
        self.closes = 0
        self._open = False
        self._dead = False
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def supports_batch(self) -> bool:
        return bool(self.settings.get("batch", True))

    @property
    def concurrent(self) -> bool:
        return True

    def open(self) -> None:
        if self._open and not self._dead:
            return
        self.opens += 1
        self._open = True
        self._dead = False

    def alive(self) -> bool:
        return self._open and not self._dead

    def kill(self) -> None:
        """Pretend the connection dropped (tests of reconnection)."""
        self._dead = True

    def close(self) -> None:
        if self._open:
            self.closes += 1
        self._open = False

    def run(self, command: str, timeout: float | None) -> CommandResult:
        with self._lock:
            self.calls.append(command)
        return self._answer(command)

    def run_many(
        self, commands: Sequence[str], timeout: float | None, stop_on_error: bool
    ) -> list[CommandResult]:
        with self._lock:
            self.batches.append(list(commands))
        results = []
        for command in commands:
            result = self._answer(command)
            results.append(result)
            if stop_on_error and not result.ok:
                break
        return results

    def _answer(self, command: str) -> CommandResult:
        if self.settings.get("latency"):
            time.sleep(self.settings["latency"])
        responses = self.settings.get("responses") or {}
        with self._lock:
            count = self._counts.get(command, 0)
            self._counts[command] = count + 1
        if command not in responses:
            status = self.settings["default_exit"]
            message = f"mock: {command}: no scripted answer\n".encode() if status else b""
            return self._result(command, (b"", message, status))
        answer: Any = responses[command]
        if isinstance(answer, list):
            answer = answer[min(count, len(answer) - 1)] if answer else ""
        if callable(answer) and not isinstance(answer, type):
            answer = answer(command)
        if isinstance(answer, BaseException) or (
            isinstance(answer, type) and issubclass(answer, BaseException)
        ):
            raise answer
        return self._result(command, answer)

    def _result(self, command: str, answer: Any) -> CommandResult:
        now = datetime.now(UTC)
        where = self.target.address
        if isinstance(answer, CommandResult):
            return CommandResult(
                command,
                answer.stdout_bytes,
                answer.stderr_bytes,
                answer.exit_status,
                duration=answer.duration,
                target=where,
                started=now,
            )
        if isinstance(answer, bool):
            answer = int(not answer)
        if isinstance(answer, int):
            return CommandResult(command, b"", b"", answer, target=where, started=now)
        if isinstance(answer, tuple):
            out, err, status = answer
            return CommandResult(
                command, _bytes(out), _bytes(err), int(status), target=where, started=now
            )
        return CommandResult(command, _bytes(answer), b"", 0, target=where, started=now)

    def read_file(self, path: str) -> bytes:
        files = self.settings.get("files") or {}
        if path not in files:
            raise FileMissing(errno.ENOENT, f"{path}: no such file on {self.target.address}")
        return _bytes(files[path])

    def stat(self, path: str) -> FileStat:
        data = self.read_file(path)
        return FileStat(path, "file", len(data), 0o644, 0, 0, 0.0)


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")
