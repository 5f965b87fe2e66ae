"""What both PowerShell test servers do with a pipeline: run its scripts with /bin/sh.

The servers speak PSRP faithfully (psrpcore's ``ServerRunspacePool`` and
``ServerPipeline``) but run no PowerShell. Each statement's script runs with
``/bin/sh -c``; its whole stdout comes back as one string object and its stderr as
one ErrorRecord, both decoded as UTF-8 (invalid bytes become U+FFFD, as when
PowerShell reads a native command's output into strings). With ``lines=True``
each line is its own record instead (newline removed), sent as soon as the
script writes it, as PowerShell sends a native command's lines: a pipeline that
writes many records over time. The few PowerShell
lines the transports wrap around a command (``trainlab.transports.psrp``)
are recognised and answered as PowerShell
would: the exit-status marker, ``$LASTEXITCODE`` reset, ``ConvertTo-Json``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import psrpcore
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSInvocationState,
)

from trainlab.transports import psrp

__all__ = ["ShellPipeline", "handle_pool_events"]


class ShellPipeline:
    """One server pipeline whose scripts run with /bin/sh on a thread of their own.

    ``lock`` guards the runspace pool (psrpcore objects are not thread-safe);
    ``flush`` is called, outside the lock, whenever messages are ready to send;
    ``lines`` sends each line of a script's output as its own record, as it comes.
    """

    def __init__(
        self,
        pipeline: psrpcore.ServerPipeline,
        lock: threading.Lock,
        flush: Callable[[], None],
        *,
        lines: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.lock = lock
        self.flush = flush
        self.lines = lines
        self.stopped = False
        self.finished = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self, metadata: psrpcore.PowerShell) -> None:
        scripts = [command.command_text for command in metadata.commands]
        self._thread = threading.Thread(
            target=self._run, args=(scripts,), name="psrp-pipeline", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Kill the running script; the pipeline ends in the Stopped state."""
        self.stopped = True
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def join(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _emit(self, action: Callable[[], Any]) -> None:
        with self.lock:
            action()
        self.flush()

    def _run(self, scripts: list[str]) -> None:
        try:
            with self.lock:  # Running travels with the first output, not in a round trip alone
                self.pipeline.start()
            failure = self._statements(scripts)
            if self.stopped:
                self._emit(self.pipeline.stop)
            elif failure is not None:
                # psrpcore has no public call for a failed pipeline; its own servers use this.
                self._emit(lambda: self.pipeline._change_state(PSInvocationState.Failed, failure))
            else:
                self._emit(self.pipeline.complete)
        finally:
            self.finished.set()

    def _statements(self, scripts: list[str]) -> ErrorRecord | None:
        last_exit = 0
        for script in scripts:
            body = script
            mark: tuple[str, int, bool] | None = None
            if body.startswith(psrp.RESET + "\n"):
                last_exit = 0
                body = body[len(psrp.RESET) + 1 :]
            head, _, tail = body.rpartition("\n")
            found = psrp.parse_mark(tail)
            if found is not None:
                mark, body = found, head
            inner = psrp.unwrap_json_script(body)
            if inner is not None:
                body = inner
            ok = True
            if body.strip():
                last_exit = self._sh(body)
                ok = last_exit == 0
            if self.stopped:
                return None
            if mark is not None:
                nonce, index, stops = mark
                data = f"{nonce} {index} {last_exit} {int(not ok)}"
                self._emit(partial(self.pipeline.write_information, data, "trainlab"))
                if stops and not ok:
                    return _error_record(f"{nonce} stop", "RuntimeException")
        return None

    def _sh(self, script: str) -> int:
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:  # pragma: no cover - /bin/sh is always there
            reason = str(exc)
            self._emit(lambda: self.pipeline.write_error(NETException(Message=reason)))
            return 1
        self._proc = proc
        if self.lines:
            self._send_lines(proc)
            self._proc = None
            return proc.wait()
        stdout, stderr = proc.communicate()
        self._proc = None
        if self.stopped:
            return proc.returncode
        if stdout:
            text = stdout.decode("utf-8", "replace")
            self._emit(lambda: self.pipeline.write_output(text))
        if stderr:
            message = stderr.decode("utf-8", "replace")
            self._emit(
                lambda: self.pipeline.write_error(
                    NETException(Message=message),
                    ErrorCategoryInfo(Category=ErrorCategory.NotSpecified, Reason="NativeError"),
                    fully_qualified_error_id="NativeCommandError",
                )
            )
        return proc.returncode

    def _send_lines(self, proc: subprocess.Popen[bytes]) -> None:
        """Each complete line of the script's stdout (stderr) as an output (error) record,
        sent as it is read; what a read brings travels in one flush."""
        if proc.stdout is None or proc.stderr is None:  # pragma: no cover - both are PIPE
            raise RuntimeError("the script started without its output pipes")
        pending = {proc.stdout.fileno(): b"", proc.stderr.fileno(): b""}
        errors = proc.stderr.fileno()
        with selectors.DefaultSelector() as selector:
            for fd in pending:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                for key, _ in selector.select():
                    fd = int(key.fd)
                    chunk = os.read(fd, 1 << 16)
                    if chunk:
                        *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
                    else:  # the end: a last line without its newline is a line too
                        selector.unregister(fd)
                        lines, pending[fd] = ([pending[fd]] if pending[fd] else []), b""
                    if lines and not self.stopped:
                        self._records(fd == errors, lines)
        proc.stdout.close()
        proc.stderr.close()

    def _records(self, errors: bool, lines: list[bytes]) -> None:
        texts = [line.decode("utf-8", "replace") for line in lines]
        with self.lock:
            for text in texts:
                if errors:
                    self.pipeline.write_error(
                        NETException(Message=text),
                        ErrorCategoryInfo(
                            Category=ErrorCategory.NotSpecified, Reason="NativeError"
                        ),
                        fully_qualified_error_id="NativeCommandError",
                    )
                else:
                    self.pipeline.write_output(text)
        self.flush()


def _error_record(message: str, reason: str) -> ErrorRecord:
    return ErrorRecord(
        Exception=NETException(Message=message),
        CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.OperationStopped, Reason=reason),
        FullyQualifiedErrorId=reason,
    )


def handle_pool_events(
    pool: psrpcore.ServerRunspacePool,
    pipelines: dict[Any, ShellPipeline],
) -> None:
    """Process every pending event of ``pool`` (call with its lock held).

    A ``CreatePipelineEvent`` starts the matching ``ShellPipeline``; the pool's
    own messages (capability, init, state) are queued by psrpcore itself.
    """
    while True:
        event = pool.next_event()
        if event is None:
            return
        if isinstance(event, psrpcore.CreatePipelineEvent):
            runner = pipelines.get(event.pipeline_id)
            if runner is not None:
                runner.start(event.pipeline)
