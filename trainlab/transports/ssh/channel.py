"""One command on its own exec channel, and the channel helpers the kept shell shares.

Imports paramiko, trainlab.framing, trainlab.errors and the ssh package's _paramiko,
errors and sudo modules.
"""

from __future__ import annotations

import contextlib
import re
import select
import shlex
import time
from collections.abc import Callable

import paramiko

from trainlab import framing
from trainlab.capture import CommandCapture
from trainlab.errors import CommandTimeout, TargetError, TransportError
from trainlab.framed_reader import FrameReader
from trainlab.transports.ssh._paramiko import send_channel_request, send_pty_request
from trainlab.transports.ssh.errors import map_errors
from trainlab.transports.ssh.login import (
    NO_BASH,
    direct,
    login_shell_in,
    portable,
    sudo_runner,
)
from trainlab.transports.ssh.sudo import SUDO_OK, Sudo

__all__ = [
    "CHUNKS_PER_CHECK",
    "KILL_GRACE",
    "MAX_EXEC_COMMAND",
    "PID_LINE",
    "READ",
    "READY",
    "drain",
    "exec_wrapper",
    "kill_remote_group",
    "not_posix",
    "read_some",
    "run_exec",
    "send_exec",
    "signal",
    "wait",
]

READ = 256 * 1024
# After a command's exit status arrives, how long to wait for the end of its
# output before deciding a background process holds the stream open. OpenSSH
# sends the exit status before the last output when the command exits quickly,
# so this also covers a busy client whose reader thread is slow to catch up.
_DRAIN_GRACE = 0.5
#: After a command's deadline, how long killing it may take at most: waiting for a
#: late pid line, opening the second channel and running ``kill`` there. A command's
#: timeout is raised within its deadline plus this grace, even when the server has
#: stopped answering; past it the error says the kill was not confirmed.
KILL_GRACE = 1.5
# Prepended to every exec-mode command: a stderr line with the login shell's pid
# (the session leader, so the process group of everything the command starts).
_PREAMBLE = 'echo "__tl_pid $$" >&2; '
# Longer exec-mode commands go through the kept shell: one argument of a command
# line may not pass 128 KiB on Linux (sshd hands it to `shell -c`).
MAX_EXEC_COMMAND = 100_000
PID_LINE = re.compile(rb"__tl_pid (\d+)\n")
# Chunks read from a stream before the deadline is looked at again: a flood keeps
# the channel readable, and must not keep the call past its deadline.
CHUNKS_PER_CHECK = 16
# The most of exec mode's stderr prelude (chatter, pid line, sudo's prompts) kept.
_PRELUDE_LIMIT = 1024 * 1024
# The kept shell's ready line; " posix" when the POSIX host answers (no bash there).
READY = re.compile(rb"(?:^|\n)__tl_ready( posix)?( split)?\n")


def exec_wrapper(command: str, nonce: bytes, *, shell: str, sudo: Sudo | None) -> str:
    r"""The POSIX sh script exec mode runs for ``command`` (see ``run_exec``).

    The command travels as data, single-quoted into a variable, and runs through
    ``eval`` in a child (a subshell, or sudo's shell): whatever it is (a syntax error,
    an unterminated here-document, ``exit``, an EXIT trap, a closed stdout) it cannot
    reach the wrapper's own text, and its EXIT trap has run when the parent writes the
    end markers. A syntax error is the eval's: the shell's message on stderr and
    status 2, as ``sh -c`` gives. The end markers are the framing protocol's for a
    one-command request, so ``FrameReader`` reads the answer as it arrives.

    >>> script = exec_wrapper("echo 'hi'", b"__tl_N", shell="auto", sudo=None)
    >>> print(script.replace("; ", ";\n"))
    echo "__tl_pid $$" >&2;
    exec </dev/null;
    __tl_c='echo '"'"'hi'"'"'';
    (eval "$__tl_c");
    __tl_rc=$?;
    printf '%s E 0 Z 1\n' __tl_N >&2;
    printf '%s E 0 %d Z 1\n' __tl_N "$__tl_rc";
    exit "$__tl_rc"
    """
    data = f"__tl_c={shlex.quote(command)}; "
    if sudo is not None:
        # sudo reads its password from stdin, so only sudo's shell takes /dev/null.
        inner = f'echo {SUDO_OK.decode().strip()} >&2; exec </dev/null; eval "$1"'
        runner = sudo_runner(shell)
        body = data + sudo.command(f'{runner} -c {shlex.quote(inner)} {runner} "$__tl_c"')
    else:
        body = "exec </dev/null; " + data + '(eval "$__tl_c")'
    marker = nonce.decode()
    return (
        f"{_PREAMBLE}{body};\n__tl_rc=$?; printf '%s E 0 Z 1\\n' {marker} >&2; "
        f'printf \'%s E 0 %d Z 1\\n\' {marker} "$__tl_rc"; exit "$__tl_rc"'
    )


class _Prelude:
    """Exec mode's stderr before the command's own: a login shell's chatter, the line
    reporting the login shell, the wrapper's pid line and, under sudo, sudo's prompts
    up to the wrapper's OK line. Held (at most ``_PRELUDE_LIMIT`` bytes) until it is
    complete; then what follows is the command's."""

    def __init__(self, sudo: Sudo | None, learned: Callable[[str], None] | None) -> None:
        self.sudo = sudo
        self.learned = learned
        self.held = b""
        self.pid: int | None = None
        self.done = False
        self.answered = 0

    def take(self, chan: paramiko.Channel, data: bytes) -> bytes:
        """Take a chunk of stderr; returns what of it (and of what was held) is the
        command's, once the prelude is complete. Only an incomplete prelude is cut to
        ``_PRELUDE_LIMIT``: a chunk that completes it passes on whole."""
        held = self.held + data
        sudo = self.sudo
        if sudo is not None and self.answered < 2:
            self.answered = sudo.answer(chan, held, self.answered)
        if self.pid is None:
            login, rest = login_shell_in(held)
            match = PID_LINE.search(rest)
            if match is None:
                self.held = held[:_PRELUDE_LIMIT]  # as it came: the login line read again
                return b""
            if login is not None and self.learned is not None:
                self.learned(login)
            self.pid = int(match.group(1))
            held = rest[: match.start()] + rest[match.end() :]
        if sudo is None:
            self.done, self.held = True, b""
            return held
        before, found, after = held.partition(SUDO_OK)
        self.held = before[:_PRELUDE_LIMIT]  # sudo's own words, dropped from the output
        if not found:
            return b""
        self.done = True
        return after


def run_exec(
    chan: paramiko.Channel,
    command: str,
    timeout: float | None,
    output: CommandCapture,
    *,
    shell: str,
    login: str | None,
    sudo: Sudo | None,
    where: str,
    connection: Callable[[], paramiko.Transport | None],
    learned: Callable[[str], None] | None = None,
    since: float | None = None,
) -> int:
    """One command on its own channel, its output into ``output`` as it arrives; its
    exit status.

    ``shell`` (see ``login.SHELLS``) says who runs it. Unless the login shell (``login``,
    once known) runs the wrapper as it is, the wrapper reaches /bin/sh through a line every
    login shell parses (``login.portable``), which also reports the login shell to
    ``learned``. With ``shell="login"`` the command goes to the login shell untouched: no
    wrapper, so no markers and no pid; the channel's exit status and EOF end it.

    The command is wrapped (``exec_wrapper``): before it, the shell reports its pid (the
    process group a timeout kills) and takes stdin from /dev/null; after it, the shell
    writes end markers with the exit status on both streams. The markers end the
    exchange even when a background process keeps the output open (what it writes
    later is dropped with the channel), and they arrive after all of the command's
    output, which the exit-status message need not (OpenSSH may send it first).
    ``connection`` gives the session's connection now (``None`` once closed). The
    deadline counts from ``since`` (``time.monotonic()``; by default now), so the time
    the channel took to open is part of it; a timeout is raised within the deadline and
    ``KILL_GRACE``, however much the command writes.
    """

    def client_gone() -> bool:
        client = connection()
        return client is None or not client.is_active()

    start = time.monotonic() if since is None else since
    deadline = None if timeout is None else start + timeout
    nonce = framing.new_nonce()
    wrapped = shell != "login"
    if not wrapped:
        line = command
    else:
        script = exec_wrapper(command, nonce, shell=shell, sudo=sudo)
        line = script if direct(login, shell) else portable(script, shell)
    reader = FrameReader(framing.Request(nonce, b"", (command,)), lambda _index: output)
    prelude = _Prelude(sudo, learned)
    received = 0  # bytes of either stream, to tell a refused exec from a silent one

    def to_stdout(data: bytes) -> None:
        nonlocal received
        received += len(data)
        if wrapped:
            reader.feed("stdout", data)
        else:
            output.write("stdout", data)

    def to_stderr(data: bytes) -> None:
        nonlocal received
        received += len(data)
        if not wrapped:
            output.write("stderr", data)
            return
        if not prelude.done:
            data = prelude.take(chan, data)
        if data:
            reader.feed("stderr", data)

    def pump() -> bool:
        """Read what the channel holds (a bounded number of chunks); True if any."""
        got = read_some(chan.recv_ready, chan.recv, to_stdout)
        return read_some(chan.recv_stderr_ready, chan.recv_stderr, to_stderr) or got

    broke = f"the connection to {where} broke during {command[:80]!r}; the command is not re-run"
    try:
        with map_errors(f"cannot start a command on {where}"):
            # Not waiting for the reply: a server that stops answering must not hold
            # the call past its deadline, and a refusal closes the channel (below).
            send_exec(chan, line)
        quiet_since: float | None = None
        while True:
            got = pump()
            if reader.done:
                break  # the command's own output is complete
            if deadline is not None and time.monotonic() >= deadline:
                reader.finish()
                raise _timeout_error(
                    chan,
                    command,
                    timeout,
                    output=output,
                    prelude=prelude,
                    pump=pump,
                    where=where,
                    sudo=sudo,
                    connection=connection,
                    reports_pid=wrapped,
                )
            if got:
                quiet_since = None
                continue
            if client_gone() and not chan.status_event.is_set():
                raise TransportError(broke)
            if chan.exit_status_ready():
                if chan.closed and chan.exit_status == -1 and client_gone():
                    raise TransportError(broke)
                if chan.closed or (
                    chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready()
                ):
                    break
                # The shell exited without its markers and something still holds the
                # output open: wait while data flows, then stop.
                if quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > _DRAIN_GRACE:
                    break
            pause = 1.0 if quiet_since is None else _DRAIN_GRACE / 2
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            wait(chan, pause)
        if not reader.done:
            while pump():
                pass
        reader.finish()
        status = chan.exit_status
        if not wrapped:
            return status
        if prelude.pid is None:  # the wrapper never ran: no POSIX sh answered
            stdout = output.stdout.value()
            if status == -1 and not received:
                raise TransportError(
                    f"{where} closed the channel without running {command[:80]!r} (it refused "
                    "the exec request); the command is not re-run"
                )
            if prelude.held.startswith(NO_BASH):
                raise TargetError(f"shell=bash, but {where} has no bash; shell=sh runs /bin/sh")
            raise not_posix(where, stdout, login_shell_in(prelude.held)[1], status)
        if sudo is not None and not prelude.done:
            raise sudo.refusal(prelude.held, where)
        outputs = reader.outputs()
        return outputs[0].exit_status if outputs else status
    finally:
        reader.close()
        with contextlib.suppress(Exception):
            chan.close()


def _timeout_error(
    chan: paramiko.Channel,
    command: str,
    timeout: float | None,
    *,
    output: CommandCapture,
    prelude: _Prelude,
    pump: Callable[[], bool],
    where: str,
    sudo: Sudo | None,
    connection: Callable[[], paramiko.Transport | None],
    reports_pid: bool = True,
) -> CommandTimeout:
    """Kill the command's process group, within ``KILL_GRACE``; say whether it is dead.

    The pid line may be late on a slow link, so it is awaited for part of the grace.
    """
    signal(chan, "KILL")
    until = time.monotonic() + KILL_GRACE
    patience = until - KILL_GRACE / 2 if reports_pid else 0.0
    while prelude.pid is None and not chan.exit_status_ready() and time.monotonic() < patience:
        wait(chan, 0.1)
        pump()
    pid = prelude.pid
    client = connection()
    # Over a fresh channel: the ``signal`` request needs privilege separation.
    confirmed = False
    if pid is not None and client is not None and client.is_active():
        confirmed = kill_remote_group(client, pid, sudo, within=until - time.monotonic())
    # The signal alone is confirmed when the channel reports the command's end.
    confirmed = confirmed or chan.exit_status_ready()
    if confirmed:
        aftermath = "it and what it started were killed"
    elif pid is None:
        aftermath = "the remote shell never reported its pid, so it may still be running"
    else:
        aftermath = (
            f"the kill was sent but not confirmed within {KILL_GRACE:g} s (the server did "
            "not answer), so it may still be running"
        )
    output.close()
    stdout, stderr = output.partial(framing.PARTIAL_LIMIT)
    if prelude.pid is None or not prelude.done:
        stderr = login_shell_in(prelude.held)[1][-framing.PARTIAL_LIMIT :]
    return CommandTimeout(
        f"command {command[:80]!r} ran past its {timeout:g} s deadline on {where}; {aftermath}",
        command=command,
        timeout=timeout,
        stdout=stdout,
        stderr=stderr,
    )


def read_some(
    ready: Callable[[], bool], read: Callable[[int], bytes], take: Callable[[bytes], None]
) -> bool:
    """Hand ``take`` what one stream holds, at most ``CHUNKS_PER_CHECK`` chunks (so a
    flood still lets the caller look at its deadline); True if there was any."""
    got = False
    for _ in range(CHUNKS_PER_CHECK):
        if not ready():
            break
        take(read(READ))
        got = True
    return got


def drain(chan: paramiko.Channel, out: list[bytes], err: list[bytes]) -> tuple[int, int]:
    """Move what the channel holds into the lists; return how many chunks each got."""
    got_out = _move(chan.recv_ready, chan.recv, out)
    return got_out, _move(chan.recv_stderr_ready, chan.recv_stderr, err)


def _move(ready: Callable[[], bool], read: Callable[[int], bytes], into: list[bytes]) -> int:
    """Read one stream while it has data; returns how many chunks it gave."""
    got = 0
    while ready():
        data = read(READ)
        if not data:
            break
        into.append(data)
        got += 1
    return got


def send_exec(chan: paramiko.Channel, command: str | bytes) -> None:
    """``exec_command`` without waiting for the server's reply.

    A refusal still shows: paramiko closes the channel on CHANNEL_FAILURE, and
    whoever reads the channel sees it closed.
    """
    if chan.closed:
        raise paramiko.SSHException("the channel is closed")
    send_channel_request(chan, "exec", command, want_reply=True)


def wait(chan: paramiko.Channel, seconds: float) -> None:
    """Sleep until the channel has data, status or EOF, or ``seconds`` pass."""
    if chan.recv_ready() or chan.recv_stderr_ready() or chan.exit_status_ready():
        return
    with contextlib.suppress(OSError, ValueError):
        select.select([chan], [], [], max(0.0, seconds))


def signal(chan: paramiko.Channel, name: str) -> None:
    """Send an RFC 4254 "signal" request; OpenSSH delivers it to the session's
    process group (killpg), which takes the command's children with it."""
    if chan.closed:
        return
    with contextlib.suppress(Exception):
        send_channel_request(chan, "signal", name, want_reply=False)


def kill_remote_group(
    client: paramiko.Transport, pid: int, sudo: Sudo | None, *, within: float = KILL_GRACE
) -> bool:
    """``kill -KILL`` a process group, through sudo when the session uses it.

    Every step (the channel's open, the request, the answer) fits in ``within``
    seconds. Returns True when the kill command ran to its end, so the group is gone;
    False when the server did not answer in time.
    """
    # /bin/kill (procps), not a shell's builtin: dash's kill takes no "--" and reads a
    # negative pid as an option. pkill -g is the second try.
    command = f"env kill -KILL -- -{pid} {pid} 2>/dev/null; pkill -KILL -g {pid} 2>/dev/null; true"
    if sudo is not None:
        command = f"{command}; " + sudo.command(f"sh -c {shlex.quote(command)}")
    command = portable(command, "sh")  # whatever the login shell: csh takes no 2>
    deadline = time.monotonic() + within
    chan: paramiko.Channel | None = None
    try:
        chan = client.open_session(timeout=max(0.05, within))
        if sudo is not None and sudo.tty:
            send_pty_request(chan, "dumb")
        send_exec(chan, command)
        said: list[bytes] = []
        answered = 0
        while not chan.exit_status_ready() and time.monotonic() < deadline:
            drain(chan, said, said)
            if sudo is not None and answered < 2:
                answered = sudo.answer(chan, b"".join(said), answered)
            wait(chan, min(0.2, max(0.0, deadline - time.monotonic())))
        return chan.exit_status_ready() and chan.exit_status == 0
    except Exception:  # a kill that fails is reported as unconfirmed
        return False
    finally:
        if chan is not None:
            with contextlib.suppress(Exception):
                chan.close()


def not_posix(where: str, stdout: bytes, stderr: bytes, status: int) -> TargetError:
    """The error for a host whose login shell never ran the kit's POSIX wrapper: what
    answered instead, and which transport or option fits such a host."""
    said = (stderr.strip() or stdout.strip()).decode(errors="replace")
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    shown = repr(lines[0][:200]) if lines else f"nothing (exit status {status})"
    lowered = said.lower()
    if "is not recognized as an internal or external command" in lowered:
        kind = "cmd.exe (a Windows OpenSSH server)"
    elif "is not recognized as the name of a cmdlet" in lowered or "commandnotfound" in lowered:
        kind = "PowerShell (a Windows OpenSSH server)"
    else:
        kind = "no POSIX shell"
    return TargetError(
        f"{where} did not run trainlab's POSIX sh wrapper: its login shell looks like {kind} "
        f"and answered {shown}. For Windows use winrm:// (PowerShell remoting); for a network "
        "device's CLI, mode=cli; shell=login hands commands to the login shell as they are"
    )
