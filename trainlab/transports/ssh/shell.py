"""The kept remote shell: bash on one SSH channel answering framed requests.

Imports paramiko, trainlab.framing, trainlab.errors, the deadline signal and the ssh
package's channel, errors and sudo modules.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import shlex
import time
from collections.abc import Callable, Mapping, Sequence

import paramiko

from trainlab import framing
from trainlab.capture import CommandCapture
from trainlab.errors import TargetError, TransportError
from trainlab.framed_reader import FrameReader
from trainlab.transports._deadline import DeadlinePassed
from trainlab.transports.ssh.channel import (
    KILL_GRACE,
    MAX_EXEC_COMMAND,
    PID_LINE,
    READY,
    drain,
    kill_remote_group,
    not_posix,
    read_some,
    send_exec,
    signal,
    wait,
)
from trainlab.transports.ssh.errors import map_errors
from trainlab.transports.ssh.login import NO_BASH, direct, login_shell_in, portable
from trainlab.transports.ssh.mux import MUX, StrayRecords
from trainlab.transports.ssh.sudo import Sudo

__all__ = ["RemoteShell"]

# Rounds of reads (each at most CHUNKS_PER_CHECK chunks a stream) that hand a background
# job's late output to the stray sink before a request: a job that never stops writing
# must not hold the next command back for ever.
_STRAY_ROUNDS = 64

# What a clean `bash --noprofile --norc -c` has and an rc file may have changed.
_CLEAN_BASH = (
    "set +o errexit +o nounset +o pipefail +o xtrace +o errtrace +o functrace "
    "+o noclobber +o noglob +o posix 2>/dev/null; trap - EXIT ERR DEBUG RETURN; "
    "shopt -u expand_aliases nullglob failglob nocaseglob extglob globstar 2>/dev/null; "
    "unalias -a 2>/dev/null;"
)


class RemoteShell:
    """bash on one SSH channel, answering framed requests (see ``trainlab.framing``).

    Under sudo with ``requiretty`` the shell runs on a pty channel (raw mode, no
    echo) and its stderr goes to a FIFO that a second channel reads, so stdout and
    stderr stay apart. Elsewhere, where the host has perl, the shell runs under the
    output multiplexer (``trainlab.transports.ssh.mux``): each command writes to FIFOs
    of its own, so a job it leaves behind never writes into a later command's result.
    """

    def __init__(
        self,
        client: paramiko.Transport,
        shell: str,
        where: str,
        sudo: Sudo | None = None,
        timeout: float = 30.0,
        *,
        login: str | None = None,
        learned: Callable[[str], None] | None = None,
        until: float | None = None,
        isolate: bool = True,
    ) -> None:
        """``until`` (a ``time.monotonic()`` value): the deadline of the command this
        start serves, if any; a start that needs a handshake (under sudo) raises
        ``DeadlinePassed`` past it, with the shell killed. ``isolate``: run under the
        output multiplexer where the host has perl."""
        self.where = where
        self.login = login
        self._learned = learned
        self.client = client
        self.sudo = sudo
        self.timeout = timeout
        self.broken = False
        self.pid: int | None = None
        self.err_chan: paramiko.Channel | None = None
        self.shell = shell
        # The hosts this start may bring up: bash (the fast path) and the POSIX host,
        # as shell= allows; which one runs is known once it says ready.
        self._dialects = {"auto": ("bash", "posix"), "bash": ("bash",)}.get(shell, ("posix",))
        self.dialect: framing.Dialect | None = None
        self._preamble_due = False
        self.tty = sudo is not None and sudo.tty
        self.fifo = ""
        # The multiplexer, where perl is: not under sudo (a sudoers rule may allow the
        # shell alone).
        self._may_mux = isolate and sudo is None
        self.mux = False  # the host said it runs under the multiplexer
        self._records = StrayRecords(b"__tl_" + secrets.token_hex(12).encode(), None)
        # Without sudo there is nothing to answer while the shell starts, so the
        # start waits for the first request and carries it: one exec runs bash
        # and the request (see exchange), and the ready lines arrive with the
        # answer. OpenSSH opens a session's window only once its exec has run,
        # so a request sent behind the exec would wait a round trip for it.
        self._starting = sudo is None
        with map_errors(f"cannot start a shell on {where}", cleanup=self.close):
            if self.tty:
                self.fifo = self._open_stderr_fifo()
            wait = timeout if until is None else max(0.05, min(timeout, until - time.monotonic()))
            self.chan = client.open_session(timeout=wait)
            if self.tty:
                self.chan.get_pty(term="dumb", width=4096, height=100)
            if not self._starting:
                self.chan.exec_command(self._start_command())
        if not self._starting:
            try:
                self.pid, _, _ = self._handshake([], [], until)
            except DeadlinePassed:
                self.kill()
                raise

    def _start_command(self, first: Mapping[str, framing.Request] | None = None) -> str:
        """The exec line: report the login shell's pid, then become the host.

        ``first`` holds the first request in each dialect the host may turn out to
        speak (see ``_dialects``); the host that starts answers its own.
        """
        first = first or {}
        start = self._dispatch(first, mux=False)
        if self.sudo is None and "bash" in self._dialects:
            # A login shell that is bash already runs the host itself: one bash
            # start less per session, which a cold fan-out over many hosts pays
            # for each. Bash run by sshd may have read ~/.bashrc (Debian builds
            # it so), so first undo what an rc file may set that a clean
            # `bash --norc` lacks: errexit, nounset, pipefail, POSIX mode, traps
            # and alias expansion would otherwise change every command.
            inner = self._bash_inner(first.get("bash"))
            start = (
                f'if [ -n "$BASH_VERSION" ]; then {_CLEAN_BASH} eval {shlex.quote(inner)}; '
                f"else {start}; fi"
            )
        if self._may_mux:  # the multiplexer where there is perl, else as above
            muxed = self._dispatch(first, mux=True)
            start = (
                f"__tl_mux={shlex.quote(MUX)}; "
                f"if command -v perl >/dev/null 2>&1; then {muxed}; fi; {start}"
            )
        script = f'echo "__tl_pid $$"; {start}'
        if direct(self.login, "auto"):
            return script  # the login shell (bash, or /bin/sh) is known to run it itself
        # Any other login shell (fish and csh parse no POSIX sh) reaches the script through
        # /bin/sh; a login bash is exec'd straight back into (shell=auto's dispatch).
        return portable(script, "auto")

    def _dispatch(self, first: Mapping[str, framing.Request], *, mux: bool) -> str:
        """The line that starts bash or the POSIX host, as ``shell=`` asks."""
        parts: list[str] = []
        if "bash" in self._dialects:
            parts.append(self._bash_start(first.get("bash"), mux=mux))
        if "posix" in self._dialects:
            parts.append(self._posix_start(first.get("posix"), mux=mux))
        if len(parts) == 2:  # shell=auto: bash where there is one, else any POSIX sh
            return f"if command -v bash >/dev/null 2>&1; then {parts[0]}; else {parts[1]}; fi"
        if self.shell == "bash":
            missing = "{ echo __tl_nobash >&2; exit 127; }"
            return f"command -v bash >/dev/null 2>&1 || {missing}; {parts[0]}"
        return parts[0]

    def _exec(self, host: str, *, mux: bool) -> str:
        """How the host's command line runs: under the multiplexer, or sudo, or as is."""
        if mux:  # 125: the multiplexer could not start; the lines after run the shell bare
            token = self._records.token.decode().strip()
            return (
                f'perl -e "$__tl_mux" -- {token} {host}; __tl_rc=$?; '
                '[ "$__tl_rc" = 125 ] || exit "$__tl_rc"'
            )
        return f"exec {self.sudo.command(host) if self.sudo is not None else host}"

    def _ready(self, dialect: str, mux: bool = False) -> str:
        # Both streams say ready when the start carries a request, so startup chatter
        # (a chatty rc file) can be cut off both; the words say which host answers.
        line = "__tl_ready" + ("" if dialect == "bash" else " posix") + (" split" if mux else "")
        return f"echo {line}; echo {line} >&2; " if self._starting else f"echo {line}; "

    def _with_tty(self, inner: str) -> tuple[str, str]:
        if not self.tty:
            return inner, ""
        return 'stty raw -echo 2>/dev/null; exec 2>"$0"; ' + inner, " " + shlex.quote(self.fifo)

    def _bash_inner(self, first: framing.Request | None, mux: bool = False) -> str:
        dialect = framing.BASH.with_split_outputs("mux") if mux else framing.BASH
        script = framing.host_script(first if self._starting else None, dialect=dialect)
        return self._ready("bash", mux) + script

    def _bash_start(self, first: framing.Request | None, *, mux: bool = False) -> str:
        inner, suffix = self._with_tty(self._bash_inner(first, mux))
        host = f"bash --noprofile --norc -c {shlex.quote(inner)}{suffix}"
        return self._exec(host, mux=mux)

    def _posix_start(self, first: framing.Request | None, *, mux: bool = False) -> str:
        # The POSIX host answers ``first`` from its -c script, then becomes `sh -s`
        # reading its functions (the preamble) and the next requests from stdin.
        dialect = framing.POSIX.with_split_outputs("mux") if mux else framing.POSIX
        script = dialect.host_script(first, shell=("/bin/sh",))  # noqa: S604 - argv
        if self.tty:
            # On a pty, `sh -s` would read its stdin and stdout as a terminal and turn
            # interactive (prompts, job control): a pipe from cat keeps it a script reader.
            script = f"cat | /bin/sh -c {shlex.quote(script)}"
        inner, suffix = self._with_tty(self._ready("posix", mux) + script)
        host = f"/bin/sh -c {shlex.quote(inner)}{suffix}"
        return self._exec(host, mux=mux)

    def _start(self, requests: Mapping[str, framing.Request]) -> bool:
        """Start the host carrying ``requests`` in its exec line; False when that line
        would be too long, and the host was started without them."""
        command = self._start_command(requests)
        if len(command.encode("utf-8", "surrogateescape")) <= MAX_EXEC_COMMAND:
            send_exec(self.chan, command)  # the answer follows the reply: no wait
            return True
        self._starting = False
        send_exec(self.chan, self._start_command())
        self.pid, _, _ = self._handshake([], [])
        return False

    def _open_stderr_fifo(self) -> str:
        """A FIFO in a fresh /tmp directory, read by a second channel; returns its path."""
        self.err_chan = self.client.open_session(timeout=self.timeout)
        self.err_chan.exec_command(
            portable(
                'd=$(mktemp -d /tmp/trainlab-XXXXXX) && chmod 711 "$d" && '
                'mkfifo -m 622 "$d/err" && echo "$d/err" && cat "$d/err"; rm -rf "$d"',
                "sh",
            )
        )
        line = b""
        deadline = time.monotonic() + max(self.timeout, 30.0)
        while not line.endswith(b"\n"):
            if self.err_chan.recv_ready():
                line += self.err_chan.recv(1)
                continue
            if self.err_chan.exit_status_ready() or time.monotonic() > deadline:
                raise TransportError(f"cannot make a FIFO for stderr on {self.where}")
            wait(self.err_chan, 0.5)
        return line.decode().strip()

    def _handshake(
        self, out: list[bytes], err: list[bytes], until: float | None = None
    ) -> tuple[int, list[bytes], list[bytes]]:
        """Read the login shell's pid and bash's ready line, answering sudo on the way.

        Returns the pid and what followed the ready lines on stdout and stderr:
        nothing for a plain start, the first answer's beginning for a pipelined
        one. What a chatty login shell printed before them is dropped. ``until`` is the
        deadline of the request the start carries: past it, ``DeadlinePassed``.
        """
        answered = 0
        deadline = time.monotonic() + max(self.timeout, 30.0)  # a login shell may be slow
        if until is not None:
            deadline = min(deadline, until)
        tty = self.err_chan is not None
        while True:
            drain(self.chan, out, err)
            stdout = b"".join(out).replace(b"\r", b"")
            if READY.search(stdout) and (not self._starting or READY.search(b"".join(err))):
                break
            # On a pty sudo prompts on the merged output; otherwise on stderr.
            said = stdout if tty else b"".join(err)
            if self.sudo is not None and said and answered < 2:
                answered = self.sudo.answer(self.chan, said, answered)
            if until is not None and time.monotonic() > until:
                started = PID_LINE.search(stdout)  # then the kill knows its process group
                if started is not None:
                    self.pid = int(started.group(1))
                raise DeadlinePassed
            ended = self.chan.closed or self.chan.exit_status_ready() or self.chan.eof_received
            if ended or time.monotonic() > deadline:
                drain(self.chan, out, err)
                self.close()
                _, stderr = login_shell_in(b"".join(err) + (stdout if tty else b""))
                if not PID_LINE.search(stdout):
                    raise not_posix(self.where, stdout, stderr, self.chan.exit_status)
                if NO_BASH in stderr:
                    raise TargetError(
                        f"shell=bash, but {self.where} has no bash; shell=auto or sh keeps "
                        "a POSIX sh host there"
                    )
                if self.sudo is not None:
                    raise self.sudo.refusal(stderr, self.where)
                text = stderr.decode(errors="replace").strip()
                raise TransportError(
                    f"cannot start the kept shell on {self.where}{': ' + text if text else ''}"
                )
            pause = 0.5 if until is None else min(0.5, max(0.0, until - time.monotonic()))
            wait(self.chan, pause)
        # Anything else the login shell printed (a chatty .bashrc) is left behind.
        if self._starting:  # no pty: the bytes are the answer's, \r and all
            stdout = b"".join(out)
        pid = PID_LINE.search(stdout)
        ready = READY.search(stdout)
        rest = stdout[ready.end() :] if ready is not None else b""
        if pid is None or ready is None or (rest and not self._starting):
            self.close()
            raise TransportError(f"unexpected output from the shell on {self.where}: {stdout!r}")
        self.dialect = framing.POSIX if ready.group(1) else framing.BASH
        self.mux = bool(ready.group(2))
        if self.mux:
            self.dialect = self.dialect.with_split_outputs("mux")
        self._preamble_due = bool(self.dialect.preamble)
        login, stderr = login_shell_in(b"".join(err))
        if login is not None and self._learned is not None:
            self._learned(login)
        if not self._starting:
            return int(pid.group(1)), [], []
        err_ready = READY.search(stderr)
        assert err_ready is not None  # the loop waited for it
        rest_err = stderr[err_ready.end() :]
        return int(pid.group(1)), [rest] if rest else [], [rest_err] if rest_err else []

    def _break(self) -> None:
        self.broken = True

    def alive(self) -> bool:
        """True while the shell can take a request."""
        chan = self.chan
        return not (self.broken or chan.closed or chan.eof_received or chan.exit_status_ready())

    def exchange(
        self,
        commands: Sequence[str],
        timeout: float | None,
        *,
        stop_on_error: bool = False,
        capture_for: Callable[[int], CommandCapture] | None = None,
        stray: Callable[[str, bytes], None] | None = None,
    ) -> list[framing.FramedOutput]:
        """Run ``commands`` as one framed request and read the answer as it arrives.

        Command ``i``'s output goes into ``capture_for(i)`` chunk by chunk (an unbounded
        capture by default), so a bounded capture keeps memory flat however much a
        command writes. What arrives before the request is sent (a background job's
        late output) goes to ``stray(stream, data)``, never into an answer. On a timeout
        the shell is killed, within the deadline and ``KILL_GRACE``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        sent = time.perf_counter()
        self._records.stray = stray
        nonce = framing.new_nonce()  # one for every dialect: the answer parses alike
        built: dict[str, framing.Request] = {}

        def build(dialect: framing.Dialect) -> framing.Request:
            """The request in ``dialect``, framed once however often it is asked for."""
            if dialect.name not in built:
                built[dialect.name] = dialect.build_request(
                    commands, stop_on_error=stop_on_error, nonce=nonce
                )
            return built[dialect.name]

        reader: FrameReader | None = None

        def answer(dialect: framing.Dialect) -> FrameReader:
            timed = dialect.timed or len(commands) == 1
            return FrameReader(
                build(dialect),
                capture_for or (lambda _index: CommandCapture()),
                clock=not timed,
                sent=sent,
            )

        try:
            with map_errors(f"the shell on {self.where} is gone", cleanup=self._break):
                carried = False
                if self._starting:
                    known = {"bash": framing.BASH, "posix": framing.POSIX}
                    carried = self._start({name: build(known[name]) for name in self._dialects})
                sent = time.perf_counter()
                if carried:  # the request went out in the start: its answer follows the pids
                    out: list[bytes] = []
                    err: list[bytes] = []
                    self.pid, out, err = self._handshake(out, err, deadline)
                    self._starting = False
                    assert self.dialect is not None
                    reader = answer(self.dialect)
                    for chunk in out:
                        reader.feed("stdout", chunk)
                    for chunk in err:
                        reader.feed("stderr", self._filter(chunk))
                    if self._preamble_due:  # its functions, for the requests after this one
                        self._send(self.dialect.preamble, deadline)
                        self._preamble_due = False
                else:
                    assert self.dialect is not None  # the handshake named it
                    self._pass_on(stray)  # late output of earlier background jobs
                    preamble = self.dialect.preamble if self._preamble_due else b""
                    reader = answer(self.dialect)
                    self._send(preamble + build(self.dialect).wire, deadline)
                    self._preamble_due = False
                self._read(reader, deadline)
        except DeadlinePassed:
            self.broken = True
            killed = self.kill()
            aftermath = (
                "the shell and what it started were killed"
                if killed
                else f"the kill was sent but not confirmed within {KILL_GRACE:g} s (the server "
                "did not answer), so the command may still be running; the next call starts "
                "a new shell"
            )
            if reader is None:
                reader = answer(self.dialect or framing.BASH)
            raise reader.timeout_error(self.where, timeout, aftermath=aftermath) from None
        except BaseException:
            self.broken = True
            self.kill()
            if reader is not None:
                reader.close()
            raise
        reader.close()
        return reader.outputs()

    def _stderr(self) -> tuple[Callable[[], bool], Callable[[int], bytes]]:
        """Where stderr is read: the channel's, or (sudo on a pty) the FIFO's channel."""
        if self.err_chan is None:
            return self.chan.recv_stderr_ready, self.chan.recv_stderr
        return self.err_chan.recv_ready, self.err_chan.recv

    def _read(self, reader: FrameReader, deadline: float | None) -> None:
        """Feed the answer to ``reader`` until both streams carried the request's last
        marker; ``DeadlinePassed`` past ``deadline``, flood or not."""
        chan = self.chan
        err_ready, err_read = self._stderr()

        def out(data: bytes) -> None:
            reader.feed("stdout", data)

        def err(data: bytes) -> None:
            reader.feed("stderr", self._filter(data))

        while True:
            got = read_some(chan.recv_ready, chan.recv, out)
            got = read_some(err_ready, err_read, err) or got
            if reader.done:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlinePassed
            if got:
                continue
            if chan.closed or chan.eof_received or chan.exit_status_ready():
                if chan.recv_ready() or err_ready():
                    continue  # the end of the answer is still buffered
                self.broken = True
                raise TransportError(
                    f"the shell on {self.where} ended during the command; it is not "
                    "re-run, and the next call starts a new shell"
                )
            pause = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            self._wait(pause)

    def _send(self, data: bytes, deadline: float | None) -> None:
        """Send ``data``, waiting for the server's window no longer than ``deadline``
        (a stalled server stops opening it)."""
        if not data:
            return
        chan = self.chan
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise DeadlinePassed
        chan.settimeout(remaining)
        try:
            chan.sendall(data)
        except TimeoutError:
            raise DeadlinePassed from None
        finally:
            chan.settimeout(None)

    def _pass_on(self, stray: Callable[[str, bytes], None] | None) -> None:
        """Hand what arrived since the last answer (a background job's output) to ``stray``,
        all of it unless a job floods past ``_STRAY_ROUNDS`` rounds of reads."""
        keep = stray or (lambda _stream, _data: None)
        for _ in range(_STRAY_ROUNDS):
            got = read_some(self.chan.recv_ready, self.chan.recv, lambda d: keep("stdout", d))
            if not (read_some(*self._stderr(), lambda d: keep("stderr", self._filter(d))) or got):
                return

    def _filter(self, data: bytes) -> bytes:
        """A chunk of stderr without the multiplexer's stray records (handed to stray)."""
        return self._records.filter(data) if self.mux else data

    def _wait(self, seconds: float) -> None:
        if self.err_chan is None:
            wait(self.chan, seconds)
            return
        if self.chan.recv_ready() or self.err_chan.recv_ready():
            return
        with contextlib.suppress(OSError, ValueError):
            select.select([self.chan, self.err_chan], [], [], max(0.0, seconds))

    def kill(self) -> bool:
        """Stop the shell and everything in its process group (it leads its session).

        The ``signal`` request is tried first; OpenSSH refuses it for root logins
        (no privilege separation there), so a second channel runs ``kill`` too, within
        ``KILL_GRACE``. Returns True when the kill is confirmed: the kill command ran,
        or the shell's channel reported its end.
        """
        signal(self.chan, "KILL")
        confirmed = False
        if self.pid is not None and self.client.is_active():
            confirmed = kill_remote_group(self.client, self.pid, self.sudo, within=KILL_GRACE)
        confirmed = confirmed or self.chan.exit_status_ready()
        self.close()
        return confirmed

    def close(self) -> None:
        """Close the shell's channels (idempotent)."""
        for chan in (getattr(self, "chan", None), self.err_chan):
            if chan is not None:
                with contextlib.suppress(Exception):
                    chan.close()
