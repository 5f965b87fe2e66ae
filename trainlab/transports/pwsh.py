"""``pwsh://``: one local PowerShell host process, kept and reused (ruby-pwsh's Manager).

The process is ``pwsh -NoProfile -NoLogo -s``: PowerShell's out-of-process remoting
server, which speaks PSRP as one XML packet a line on stdin and stdout. The client
(``trainlab.transports.out_of_process``, shared with ``pwsh+ssh://``) keeps one
runspace pool on psrpcore's client classes with a client-side deadline on every wait
(ruby-pwsh has none): past it the pipeline is stopped with a ``<Signal>``, and a host
that does not answer is killed and started again on the next call. This module
starts the process and moves its bytes. ``connect()`` returns the live session for
the same executable, arguments and options, so one process serves every notebook cell.
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
import time
from collections.abc import Mapping
from typing import IO, Any, ClassVar

from trainlab.errors import ConnectError, TargetError
from trainlab.options import Option
from trainlab.transports.out_of_process import OutOfProcessClient, OutOfProcessTransport

__all__ = ["PwshTransport"]

_READ_SIZE = 256 * 1024
# How long the host may leave its input full before it counts as hung.
_WRITE_LIMIT = 30.0


class PwshTransport(OutOfProcessTransport):
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
    def _start_host(self) -> OutOfProcessClient:
        argv = self._argv()
        stream = _ProcessStream(argv, cwd=self.settings.get("cwd"))
        return OutOfProcessClient(
            stream,
            name=f"the PowerShell host {argv[0]!r}",
            check=f"check that {shlex.join(argv)!r} starts PowerShell's server mode (-s)",
            timeout=self.settings["open_timeout"],
        )

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


class _ProcessStream:
    """A PowerShell process in server mode: its stdin and stdout, stderr kept in a file."""

    def __init__(self, argv: list[str], *, cwd: str | None) -> None:
        self.argv = argv
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

    def write(self, data: bytes) -> None:
        """Write all of ``data``; a host that stops reading for _WRITE_LIMIT is hung."""
        view = memoryview(data)
        limit = time.monotonic() + _WRITE_LIMIT
        while view:
            try:
                view = view[os.write(self.in_fd, view) :]
            except BlockingIOError:
                remaining = limit - time.monotonic()
                if remaining <= 0 or not self._writable.poll(int(remaining * 1000) + 1):
                    raise TimeoutError(f"no room in its input for {_WRITE_LIMIT:g} s") from None

    def read(self, wait: float | None) -> bytes | None:
        if not self._readable.poll(-1 if wait is None else int(wait * 1000) + 1):
            return None
        try:
            return os.read(self.out_fd, _READ_SIZE)
        except BlockingIOError:
            return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ended(self) -> str:
        return f"exited (status {self.proc.poll()})"

    def errors(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._errors.seek(0)
            return self._errors.read()[-500:].decode("utf-8", "replace").strip()
        return ""

    def kill(self) -> None:
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

    def end(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # EOF ends the server loop
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self._reap()
