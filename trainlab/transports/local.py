"""The local machine: a process per command (``mode=exec``) or one kept shell (``mode=shell``).

``mode=shell`` speaks the framing protocol (``trainlab.framing``) to a persistent
bash over pipes, or with ``shell=sh`` to the POSIX host on ``/bin/sh``;
``mode=exec`` spawns the shell (``bash -c``) per command and sends batches to one
host with the same framing. Both return when the command's own process is done, even if it
left a background process holding its output open.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import select
import shutil
import signal
import stat as stat_module
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any, ClassVar

from trainlab import framing
from trainlab.capture import CallOutput, CommandCapture
from trainlab.errors import (
    CommandTimeout,
    FileError,
    FileMissing,
    TargetError,
    TransportError,
)
from trainlab.framed_reader import FrameReader
from trainlab.options import Option
from trainlab.result import CommandResult, FileStat, file_type
from trainlab.transports._deadline import DeadlinePassed
from trainlab.transports.base import StreamingTransport
from trainlab.transports.command_fifos import CommandFifos

__all__ = ["LocalTransport"]

_READ_SIZE = 256 * 1024
# Longest command passed as an argument; longer ones travel on stdin (Linux caps one
# argument at 128 KiB).
_MAX_ARGUMENT = 100_000
# What a CommandTimeout of the kept-alive shell says happened next.
_AFTER_SHELL_TIMEOUT = (
    "the shell and what it started were killed and the next call starts a new shell"
)
_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


class LocalTransport(StreamingTransport):
    """Commands on this machine, as the current user.

    >>> import trainlab
    >>> with trainlab.connect("local://?mode=shell", reuse=False) as sh:
    ...     print(sh.run("echo hello").stdout, end="")
    hello
    """

    scheme: ClassVar[str] = "local"
    options: ClassVar[Mapping[str, Option]] = {
        "mode": Option(
            str,
            "exec",
            "exec: a process per command; shell: one persistent shell",
            choices=("exec", "shell"),
        ),
        "shell": Option(
            str,
            "auto",
            "auto: bash if on PATH, else /bin/sh; bash; sh: the POSIX host on /bin/sh; "
            "or a shell's path (a name starting with bash gets the bash host, others "
            "the POSIX host)",
            affects_result=True,
        ),
        "cwd": Option(str, None, "working directory for commands", affects_result=True),
        "env": Option(dict, None, "extra environment variables", affects_result=True),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        if target.host not in ("", "localhost"):
            raise TargetError(
                f"local:// takes no host (got {target.host!r}); use ssh://{target.host} "
                "for another machine"
            )
        self._shell, self._dialect = _pick_shell(self.settings["shell"], self._env())
        self._host: _KeptShell | None = None
        self._lock = threading.Lock()

    @property
    def supports_batch(self) -> bool:
        return True

    @property
    def concurrent(self) -> bool:
        return self.mode == "exec"

    def identity(self) -> tuple[Any, ...]:
        return ("local", getpass.getuser(), os.uname().nodename)

    # -- lifecycle ------------------------------------------------------------
    def _env(self) -> dict[str, str] | None:
        extra = self.settings.get("env")
        if not extra:
            return None
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in extra.items()})
        return env

    def open(self) -> None:
        if self.mode != "shell":
            return
        with self._lock:
            if self._host is not None and self._host.alive():
                return
            if self._host is not None:
                self._host.close()
            self._host = self._start_host()

    def alive(self) -> bool:
        if self.mode != "shell":
            return True
        return self._host is not None and self._host.alive()

    def close(self) -> None:
        with self._lock:
            if self._host is not None:
                self._host.close()
                self._host = None

    # -- commands -------------------------------------------------------------
    def run_captured(
        self, command: str, timeout: float | None, output: CommandCapture
    ) -> CommandResult:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        if self.mode == "shell" or (
            len(command) > _MAX_ARGUMENT // 4 and len(command.encode()) > _MAX_ARGUMENT
        ):  # the kept shell, or a one-off bash reading a command too long for argv
            exchange = self._shell_exchange if self.mode == "shell" else self._exec_batch
            status = exchange([command], timeout, False, lambda _index: output)[0].exit_status
        else:
            argv = [*self._shell, "-c", "--", command]
            status = self._exec(argv, timeout, command, output)
        return output.apply(self.result(command, b"", b"", status, started=started, since=t0))

    def run_many_captured(
        self,
        commands: Sequence[str],
        timeout: float | None,
        stop_on_error: bool,
        output: CallOutput,
    ) -> list[CommandResult]:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        exchange = self._shell_exchange if self.mode == "shell" else self._exec_batch
        outputs = exchange(commands, timeout, stop_on_error, output.for_command)
        wall = time.perf_counter() - t0
        return framing.framed_results(commands, outputs, self.target.address, started, wall)

    def _shell_exchange(
        self,
        commands: Sequence[str],
        timeout: float | None,
        stop_on_error: bool,
        capture_for: Callable[[int], CommandCapture],
    ) -> list[framing.FramedOutput]:
        host = self._host
        if host is None or host.broken:
            raise TransportError("the local shell is not running; the session reopens it")
        return host.exchange(
            commands,
            stop_on_error,
            timeout,
            capture_for,
            target=self.target.address,
            stray=self.stray.add,
        )

    def _exec_batch(
        self,
        commands: Sequence[str],
        timeout: float | None,
        stop_on_error: bool,
        capture_for: Callable[[int], CommandCapture],
    ) -> list[framing.FramedOutput]:
        host = self._start_host()
        try:
            return host.exchange(
                commands, stop_on_error, timeout, capture_for, target=self.target.address
            )
        finally:
            host.close()

    def _start_host(self) -> _KeptShell:
        return _KeptShell(self._shell, self._dialect, env=self._env(), cwd=self.settings.get("cwd"))

    def _exec(
        self, argv: list[str], timeout: float | None, command: str, output: CommandCapture
    ) -> int:
        """Run ``argv`` with its output going into ``output``; its exit status."""
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=self._env(),
                cwd=self.settings.get("cwd"),
            )
        except OSError as exc:
            raise TransportError(f"could not start {argv[0]!r}: {exc.strerror}") from exc
        stdout, stderr = _pipes(proc)
        out_fd, err_fd = stdout.fileno(), stderr.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            _collect_until_exit(proc, out_fd, err_fd, deadline, output)
        except DeadlinePassed:
            _kill_group(proc.pid)
            proc.wait()
            output.close()
            stdout_kept, stderr_kept = output.partial(framing.PARTIAL_LIMIT)
            raise CommandTimeout(
                f"command {command[:80]!r} ran past its {timeout:g} s deadline on "
                f"{self.target.address}; it and what it started were killed",
                command=command,
                timeout=timeout,
                stdout=stdout_kept,
                stderr=stderr_kept,
            ) from None
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            stdout.close()
            stderr.close()
        return proc.wait()

    # -- files ----------------------------------------------------------------
    def read_file(self, path: str) -> bytes:
        full = self._path(path)
        try:
            with open(full, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise _file_error(exc, path) from exc

    def stat(self, path: str) -> FileStat:
        full = self._path(path)
        try:
            info = os.stat(full)
        except OSError as exc:
            raise _file_error(exc, path) from exc
        return FileStat(
            path=path,
            type=file_type(info.st_mode),
            size=info.st_size,
            mode=stat_module.S_IMODE(info.st_mode),
            uid=info.st_uid,
            gid=info.st_gid,
            mtime=info.st_mtime,
        )

    def upload(self, local: str, remote: str) -> int:
        return self._copy(local, self._path(remote), missing=local)

    def download(self, remote: str, local: str) -> int:
        return self._copy(self._path(remote), local, missing=remote)

    def _copy(self, source: str, destination: str, *, missing: str) -> int:
        try:
            shutil.copyfile(source, destination)
            return os.path.getsize(destination)
        except OSError as exc:
            raise _file_error(exc, missing if exc.errno == errno.ENOENT else destination) from exc

    def _path(self, path: str) -> str:
        cwd = self.settings.get("cwd")
        return os.path.join(cwd, path) if cwd else path


def _pick_shell(value: str, env: Mapping[str, str] | None) -> tuple[list[str], framing.Dialect]:
    """The shell's argv and the host it runs, from the ``shell`` option."""
    if value == "auto":
        path = (env or os.environ).get("PATH", os.defpath)
        value = "bash" if shutil.which("bash", path=path) else "sh"
    if value == "sh":
        return ["/bin/sh"], framing.POSIX
    if not value.strip():
        raise TargetError("option 'shell' needs a shell: auto, bash, sh or a path")
    bash = os.path.basename(value).startswith("bash")
    return [value], framing.BASH if bash else framing.POSIX


# ------------------------------------------------------------------ kept shell


class _KeptShell:
    """A shell process on pipes that answers framed requests (bash or the POSIX host).

    Each command's stdout and stderr go to FIFOs of its own (``CommandFifos``); the
    host's pipes carry the markers.
    """

    def __init__(
        self,
        shell: list[str],
        dialect: framing.Dialect,
        *,
        env: dict[str, str] | None,
        cwd: str | None,
    ) -> None:
        self.dialect = dialect.with_split_outputs()
        argv = self.dialect.start_argv(shell)
        self.poller = select.poll()
        try:
            self.fifos = CommandFifos(self.poller)
        except OSError as exc:
            raise _no_fifos(exc) from exc
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C must not reach the host
                env=env,
                cwd=cwd,
                bufsize=0,
            )
        except OSError as exc:
            self.fifos.close()
            raise TransportError(f"could not start {argv[0]!r}: {exc.strerror}") from exc
        if self.proc.stdin is None:
            raise TransportError("the shell started without a stdin pipe")
        stdout, stderr = _pipes(self.proc)
        self.in_fd = self.proc.stdin.fileno()
        preamble = self.dialect.preamble
        if preamble:  # a fresh pipe holds it whole (64 KiB): this write cannot block
            with contextlib.suppress(BrokenPipeError):  # the next exchange sees the EOF
                os.write(self.in_fd, preamble)
        self.out_fd = stdout.fileno()
        self.err_fd = stderr.fileno()
        for fd in (self.in_fd, self.out_fd, self.err_fd):
            os.set_blocking(fd, False)
        self.poller.register(self.out_fd, _IN)
        self.poller.register(self.err_fd, _IN)
        self.broken = False
        try:
            self._pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self._pidfd = -1

    def alive(self) -> bool:
        if self.broken or self.proc.returncode is not None:
            return False
        if self._pidfd >= 0:  # one cheap syscall, no subprocess locking, thread-safe
            if select.select([self._pidfd], [], [], 0)[0]:
                self.broken = True
                return False
            return True
        return self.proc.poll() is None

    def exchange(
        self,
        commands: Sequence[str],
        stop_on_error: bool,
        timeout: float | None,
        capture_for: Callable[[int], CommandCapture],
        *,
        target: str,
        stray: Callable[[str, bytes], None] | None = None,
    ) -> list[framing.FramedOutput]:
        """Run ``commands`` in one request, each one's output into its capture.

        What a background job writes after its command was answered goes to
        ``stray(stream, data)`` (dropped without it), never into a later answer.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        since = _Mark()
        self.fifos.pass_on(stray)
        self._pass_on(stray)
        try:
            prefix = self.fifos.prepare(len(commands))
        except OSError as exc:
            self.fifos.finish(clean=False)
            raise _no_fifos(exc) from exc
        request = self.dialect.build_request(commands, stop_on_error=stop_on_error, outputs=prefix)
        # A host without a clock: the client times each command of a batch.
        clock = request.dialect != "bash" and len(request.commands) > 1
        reader = FrameReader(request, capture_for, clock=clock)
        try:
            state = self._pump(request, reader, deadline, stray)
        except DeadlinePassed:
            self.broken = True
            self.fifos.drain(reader.write, stray)  # what the running command wrote so far
            self.kill(since)
            raise reader.timeout_error(target, timeout, aftermath=_AFTER_SHELL_TIMEOUT) from None
        except BaseException:
            # Interrupted mid-exchange (KeyboardInterrupt, a failing on_output): the
            # stream is out of step.
            self.broken = True
            self.kill(since)
            reader.close()
            raise
        finally:
            self.fifos.finish(clean=not self.broken)
        if state != "done":
            self.broken = True
            reader.close()
            code = self.proc.poll()
            self.kill(since)
            if code is None:
                code = self.proc.poll()
            how = (
                f"exit status {code}"
                if code is not None and code >= 0
                else (f"signal {-code}" if code is not None else "closed its output")
            )
            raise TransportError(
                f"the shell on {target} ended during the command ({how}); the command is not "
                "re-run, and the next call starts a new shell"
            )
        reader.close()
        return reader.outputs()

    def _pass_on(self, stray: Callable[[str, bytes], None] | None) -> None:
        """Hand bytes on the host's own streams since the last answer to ``stray``
        (the host writes there only its markers; anything else is no command's)."""
        for fd, _event in self.poller.poll(0):
            if fd not in (self.out_fd, self.err_fd):
                continue
            name = "stdout" if fd == self.out_fd else "stderr"
            with contextlib.suppress(BlockingIOError):
                for _ in range(1024):  # bounded: a job that floods is read next time
                    data = os.read(fd, _READ_SIZE)
                    if not data:
                        break
                    if stray is not None:
                        stray(name, data)

    def _pump(
        self,
        request: framing.Request,
        reader: FrameReader,
        deadline: float | None,
        stray: Callable[[str, bytes], None] | None,
    ) -> str:
        """Write the request and read until both of the host's streams carry the Z line.

        The commands' output arrives on their FIFOs; the markers on the host's
        stdout and stderr. Returns ``"done"``, or ``"eof"`` when a host stream closed
        first; raises ``DeadlinePassed`` when the deadline passes. Writing and reading
        interleave, so a large request cannot deadlock against a command that writes
        a lot.
        """
        poller, fifos = self.poller, self.fifos
        out_fd, err_fd, in_fd = self.out_fd, self.err_fd, self.in_fd
        view = memoryview(request.wire)
        try:
            view = view[os.write(in_fd, view) :]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            return "eof"
        if view:
            poller.register(in_fd, select.POLLOUT | select.POLLERR)
        route = reader.write

        def take(stream: str, chunk: bytes) -> None:
            # A command whose marker ``chunk`` holds wrote its last byte before it:
            # read its FIFOs first, then let the marker finish it.
            fifos.drain(route, stray)
            reader.feed(stream, chunk)
            finished = reader.finished
            fifos.settle(finished)
            fifos.open_window(finished)

        try:
            while not reader.done:
                wait_ms = -1
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise DeadlinePassed()
                    wait_ms = int(remaining * 1000) + 1
                polled = fifos.opened
                for fd, _event in poller.poll(wait_ms):
                    if fd == in_fd:
                        try:
                            view = view[os.write(in_fd, view[:_READ_SIZE]) :]
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            return "eof"
                        if not view:
                            poller.unregister(in_fd)
                        continue
                    if fd not in (out_fd, err_fd):
                        if fifos.owns(fd, polled):
                            fifos.read(fd, route, stray)
                        continue
                    if (fd == out_fd and reader.stdout_done) or (
                        fd == err_fd and reader.stderr_done
                    ):
                        continue
                    try:
                        chunk = os.read(fd, _READ_SIZE)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        return "eof"
                    if fd == out_fd:
                        take("stdout", chunk)
                        # stderr's Z line was written before stdout's: take it now
                        # rather than after another wake-up.
                        while reader.stdout_done and not reader.stderr_done:
                            try:
                                chunk = os.read(err_fd, _READ_SIZE)
                            except BlockingIOError:
                                break
                            if not chunk:
                                return "eof"
                            take("stderr", chunk)
                    else:
                        take("stderr", chunk)
                    if deadline is not None and time.monotonic() >= deadline:
                        raise DeadlinePassed()
        finally:
            if view:
                poller.unregister(in_fd)
        return "done"

    def kill(self, since: _Mark | None = None) -> None:
        """Kill the host, its descendants, and what the current command started.

        ``since`` (when the command began) also catches processes of the host's
        session that the command started and orphaned (``(sleep 300 &)``), while
        daemons that earlier commands left behind survive.
        """
        victims = _descendants(self.proc.pid)
        if since is not None:
            victims += _session_members(self.proc.pid, since)
        if self.proc.poll() is None:
            victims.append(self.proc.pid)
        for pid in dict.fromkeys(victims):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()  # EOF: bash exits by itself
            try:
                self.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.fifos.close()
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1


def _collect_until_exit(
    proc: subprocess.Popen[bytes],
    out_fd: int,
    err_fd: int,
    deadline: float | None,
    output: CommandCapture,
) -> None:
    """Read both streams until they close or the process exits (then drain and stop).

    A command that leaves a background process holding stdout (``sleep 300 &``)
    returns when its own process exits.
    """
    os.set_blocking(out_fd, False)
    os.set_blocking(err_fd, False)
    sinks = {out_fd: "stdout", err_fd: "stderr"}
    poller = select.poll()
    poller.register(out_fd, _IN)
    poller.register(err_fd, _IN)
    open_fds = {out_fd, err_fd}
    pidfd = -1
    try:
        pidfd = os.pidfd_open(proc.pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = -1
    try:
        while open_fds:
            wait_ms = -1 if pidfd >= 0 else 20
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlinePassed()
                wait_ms = max(
                    1, min(int(remaining * 1000) + 1, wait_ms if wait_ms > 0 else 1 << 30)
                )
            events = poller.poll(wait_ms)
            exited = pidfd >= 0 and any(fd == pidfd for fd, _ in events)
            for fd, _ in events:
                if fd in open_fds:
                    _read_into(fd, output, sinks[fd], open_fds, poller)
            if exited or (pidfd < 0 and proc.poll() is not None):
                for fd in list(open_fds):  # drain what is already in the pipes, then stop
                    while fd in open_fds and _read_into(fd, output, sinks[fd], open_fds, poller):
                        if deadline is not None and time.monotonic() >= deadline:
                            raise DeadlinePassed()
                break
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _read_into(
    fd: int, output: CommandCapture, stream: str, open_fds: set[int], poller: select.poll
) -> bool:
    """Read once; False when nothing more is available now (or ever)."""
    try:
        chunk = os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return False
    if not chunk:
        open_fds.discard(fd)
        poller.unregister(fd)
        return False
    output.write(stream, chunk)
    return True


class _Mark:
    """When a command began: the last pid handed out, and the clock tick.

    A process of the host's session with a higher pid (or, after the pid
    counter wraps, a later start tick) was started by the command.
    """

    __slots__ = ("pid", "tick")

    def __init__(self) -> None:
        self.pid = _last_pid()
        try:
            self.tick = int(time.clock_gettime(time.CLOCK_BOOTTIME) * _TICKS)
        except (AttributeError, OSError):
            self.tick = 0

    def started_after(self, pid: int, start_tick: int) -> bool:
        if self.pid is not None and pid > self.pid:
            return True
        return start_tick > self.tick  # the pid counter wrapped, or no pid to compare


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LAST_PID_FD: int | None = None


def _last_pid() -> int | None:
    """/proc/sys/kernel/ns_last_pid through one kept descriptor (about 1 us)."""
    global _LAST_PID_FD  # noqa: PLW0603 - one descriptor per process
    try:
        if _LAST_PID_FD is None:
            _LAST_PID_FD = os.open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY | os.O_CLOEXEC)
        return int(os.pread(_LAST_PID_FD, 32, 0))
    except (OSError, ValueError):
        return None


def _forget_last_pid_fd() -> None:
    global _LAST_PID_FD  # noqa: PLW0603
    _LAST_PID_FD = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_last_pid_fd)


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    if proc.stdout is None or proc.stderr is None:
        raise TransportError("a process started without its output pipes")
    return proc.stdout, proc.stderr


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _proc_table() -> list[tuple[int, int, int, int]]:
    """(pid, ppid, session id, start ticks) of every process, from /proc."""
    table = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        # After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt
        # majflt cmajflt utime stime cutime cstime priority nice threads itreal starttime
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 19:
            table.append((int(entry), int(fields[1]), int(fields[3]), int(fields[19])))
    return table


def _session_members(session: int, since: _Mark) -> list[int]:
    """Processes of ``session`` started after ``since``."""
    return [
        pid
        for pid, _, sid, start in _proc_table()
        if sid == session and since.started_after(pid, start)
    ]


def _descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (from /proc), deepest first."""
    parents: dict[int, list[int]] = {}
    for pid, ppid, _, _ in _proc_table():
        parents.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = [root]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found[::-1]


def _file_error(exc: OSError, path: str) -> FileError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOENT:
        return FileMissing(errno.ENOENT, f"{path}: no such file on the local machine")
    return FileError(exc.errno or 0, f"{path}: {reason}")


def _no_fifos(exc: OSError) -> TransportError:
    where = exc.filename or "the temporary directory"
    return TransportError(
        f"cannot make the FIFOs that keep each command's output apart ({where}: "
        f"{exc.strerror or exc}); set TMPDIR to a writable directory that can hold FIFOs"
    )
