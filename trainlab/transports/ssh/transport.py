"""SSH: one kept paramiko connection per session; a channel per command or one kept shell.

``mode=exec`` opens a channel per command on the kept connection; ``mode=shell``
keeps one channel running bash with ``trainlab.framing``; ``mode=cli`` talks to a
network device's CLI. Batches are one round trip in both shell-capable modes. Files
travel over one SFTP channel per session. Composes the ssh package's modules; imports
them, paramiko, and the layers below transports (never the session layer).
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import paramiko

from trainlab import framing
from trainlab.capture import CallOutput, CommandCapture
from trainlab.errors import (
    CommandTimeout,
    ConnectError,
    TargetError,
    TrainlabError,
    TransportError,
)
from trainlab.options import Option
from trainlab.result import STAT_FORMAT, CommandResult, FileStat
from trainlab.transports._deadline import DeadlinePassed
from trainlab.transports.base import StreamingTransport
from trainlab.transports.ssh._paramiko import PipelinedTransport
from trainlab.transports.ssh.channel import KILL_GRACE, MAX_EXEC_COMMAND, run_exec
from trainlab.transports.ssh.connection import LOGIN_OPTIONS, SSHLogin
from trainlab.transports.ssh.device import DEVICES, DeviceCLI, cli_settings
from trainlab.transports.ssh.errors import map_errors
from trainlab.transports.ssh.files import SFTPFiles, command_file_error
from trainlab.transports.ssh.login import SHELLS
from trainlab.transports.ssh.shell import RemoteShell
from trainlab.transports.ssh.sudo import NeedsTTY, Sudo

__all__ = ["SSHTransport"]


class SSHTransport(StreamingTransport):
    """Commands and files on a host over SSH.

    >>> import trainlab
    >>> s = trainlab.connect("ssh://deploy@web1", key_file="~/.ssh/id_ed25519")  # doctest: +SKIP
    >>> s.run("uname -r").stdout  # doctest: +SKIP
    '6.1.0-18-amd64\\n'
    """

    scheme: ClassVar[str] = "ssh"
    options: ClassVar[Mapping[str, Option]] = {
        "mode": Option(
            str,
            "exec",
            "exec: a channel per command; shell: one kept bash channel; "
            "cli: one interactive channel to a network device's CLI",
            choices=("exec", "shell", "cli"),
        ),
        "device": Option(
            str,
            "generic",
            "CLI family for mode=cli: its paging command, error and prompt patterns",
            choices=tuple(DEVICES),
        ),
        "cli_prompt": Option(str, None, "regex for the CLI prompt (the last line)"),
        "cli_error": Option(str, None, "regex for lines that mean the command failed"),
        "cli_paging": Option(str, None, "commands that turn paging off, ';'-separated"),
        **LOGIN_OPTIONS,
        "shell": Option(
            str,
            "auto",
            "who runs commands: auto (bash where it is the login shell, else /bin/sh), sh, "
            "bash, or login (the login shell, commands untouched; no batches, no sudo)",
            choices=SHELLS,
            affects_result=True,
        ),
        "isolate": Option(
            str,
            "auto",
            "a kept shell's commands write to FIFOs of their own, so a background job never "
            "writes into a later command's result: auto (where the host has perl), or off "
            "(one shared channel, about 0.2 ms less a command)",
            choices=("auto", "off"),
        ),
        "sudo": Option(bool, False, "run every command through sudo", affects_result=True),
        "sudo_user": Option(str, "root", "the user sudo runs commands as", affects_result=True),
        "sudo_password": Option(
            str, None, "sudo's password, sent over the channel when sudo asks", secret=True
        ),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        self._login = SSHLogin("ssh", target, self.settings)
        self._lock = threading.RLock()
        self._client: PipelinedTransport | None = None
        self._shell: RemoteShell | None = None
        self._batch_shell: RemoteShell | None = None
        self._cli: DeviceCLI | None = None
        self._batch_lock = threading.RLock()
        self.host, self.port, self.user = self._login.host, self._login.port, self._login.user
        self.proxy_jump = self._login.proxy_jump
        self._sudo: Sudo | None = (
            Sudo(self.settings["sudo_user"], self.settings.get("sudo_password"))
            if self.settings.get("sudo")
            else None
        )
        self._files = SFTPFiles(
            self.where, self._require_client, self._client_gone, self.settings["timeout"]
        )
        # The login shell ($SHELL), once a command has reported it: commands then go to it
        # as they are when it runs the kit's POSIX wrapper (see login.direct).
        self.login_shell: str | None = None
        shell = self.settings["shell"]
        if shell == "login" and (self._sudo is not None or self.mode == "shell"):
            raise TargetError(
                "shell=login hands commands to the login shell untouched, so it works only in "
                "mode=exec without sudo; use shell=auto, sh or bash"
            )

    # ------------------------------------------------------------ identity
    def identity(self) -> tuple[Any, ...]:
        # Behind different jump hosts, one address can name different machines.
        return ("ssh", self.user, self.host, self.port, self.proxy_jump)

    @property
    def where(self) -> str:
        """``user@host:port``, for messages."""
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def concurrent(self) -> bool:
        return self.mode == "exec"

    @property
    def supports_batch(self) -> bool:
        # A device CLI takes one command at a time; so does a login shell the kit
        # does not wrap (shell=login): batches need the kit's own host.
        return self.mode != "cli" and self.settings["shell"] != "login"

    # ----------------------------------------------------------- lifecycle
    def alive(self) -> bool:
        client = self._client
        if client is None or not client.is_active():
            return False
        if self.mode == "shell":
            return self._shell is not None and self._shell.alive()
        if self.mode == "cli":
            return self._cli is not None and self._cli.alive()
        return True

    def open(self) -> None:
        with self._lock:
            if self._client is None or not self._client.is_active():
                self._drop()
                self._client = self._connect()
            if self.mode == "shell" and (self._shell is None or not self._shell.alive()):
                if self._shell is not None:
                    self._shell.close()
                self._shell = self._new_shell()
            if self.mode == "cli" and (self._cli is None or not self._cli.alive()):
                if self._cli is not None:
                    self._cli.close()
                self._cli = DeviceCLI(self._client, self.where, **cli_settings(self.settings))

    def close(self) -> None:
        with self._lock:
            self._drop()

    def forget_secrets(self) -> None:
        super().forget_secrets()
        if self._sudo is not None:
            self._sudo.forget()

    def _drop(self) -> None:
        for kept in (self._shell, self._batch_shell, self._cli):
            if kept is not None:
                kept.close()
        self._shell = self._batch_shell = self._cli = None
        self._files.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def platform_facts(self) -> dict[str, str] | None:
        if self.mode != "cli":
            return None
        device = self.settings["device"]
        return {"kernel": device, "id": device, "release": "", "arch": ""}

    # ------------------------------------------------------------ connecting
    def _connect(self) -> PipelinedTransport:
        # The first command's channel, sent behind an early login.
        return self._login.connect(self.peer_opener, early_channel=self.mode in ("exec", "shell"))

    def open_tunnel(self, host: str, port: int, timeout: float) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from this host to ``host:port``.

        It is the socket of a connection that goes through this host (this
        host is its jump host). Needs the connection open.
        """
        client = self._require_client()
        with map_errors(f"jump host {self.target.address} failed", error=ConnectError):
            try:
                channel: paramiko.Channel = client.open_channel(
                    "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
                )
            except paramiko.ChannelException as exc:
                raise ConnectError(
                    f"jump host {self.target.address} could not reach {host}:{port}: "
                    f"{exc.text} (is TCP forwarding allowed there, and the address right "
                    "from there?)"
                ) from exc
        return channel

    def _require_client(self) -> PipelinedTransport:
        if self._client is None or not self._client.is_active():
            raise TransportError(f"the connection to {self.where} is closed")
        return self._client

    def _client_gone(self) -> bool:
        client = self._client
        return client is None or not client.is_active()

    # -------------------------------------------------------------- commands
    def run_captured(
        self, command: str, timeout: float | None, output: CommandCapture
    ) -> CommandResult:
        if self.mode == "cli":  # a device's CLI answers whole: captured when it ends
            return output.take(self._cli_run(command, timeout))
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        if self.mode == "shell":
            [out] = self._running_shell().exchange(
                [command], timeout, capture_for=lambda _index: output, stray=self.stray.add
            )
            status = out.exit_status
        else:
            status = self._exec_mode(command, timeout, output)
        return output.apply(self.result(command, b"", b"", status, started=started, since=t0))

    def _cli_run(self, command: str, timeout: float | None) -> CommandResult:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        cli = self._cli
        if cli is None or not cli.alive():
            raise TransportError(f"the CLI session on {self.where} is not running")
        stdout, stderr, status = cli.send(command, timeout)
        return self.result(command, stdout, stderr, status, started=started, since=t0)

    def run_many_captured(
        self,
        commands: Sequence[str],
        timeout: float | None,
        stop_on_error: bool,
        output: CallOutput,
    ) -> list[CommandResult]:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        if self.mode == "shell":
            outputs = self._running_shell().exchange(
                commands,
                timeout,
                stop_on_error=stop_on_error,
                capture_for=output.for_command,
                stray=self.stray.add,
            )
        else:
            # Exec mode keeps one shell channel for batches, opened on the first
            # batch, so every batch after it is one round trip too.
            with self._batch_lock:  # one request at a time on the kept channel
                outputs = self._kept_shell(timeout, commands[0]).exchange(
                    commands,
                    timeout,
                    stop_on_error=stop_on_error,
                    capture_for=output.for_command,
                    stray=self.stray.add,
                )
        wall = time.perf_counter() - t0
        return framing.framed_results(commands, outputs, self.target.address, started, wall)

    def _running_shell(self) -> RemoteShell:
        """Shell mode's kept shell; the session reopens a dead one before each call."""
        shell = self._shell
        if shell is None or not shell.alive():
            raise TransportError(f"the shell on {self.where} is not running")
        return shell

    def _exec_mode(self, command: str, timeout: float | None, output: CommandCapture) -> int:
        """Exec mode's way to run one command, its output into ``output``; its exit status."""
        if self._sudo is not None and self._sudo.tty:
            return self._through_kept_shell(command, timeout, output)
        try:
            return self._exec(command, timeout, output)
        except NeedsTTY:  # sudo refused before the command started: nothing ran
            if self._sudo is None:
                raise
            self._sudo.tty = True
            return self._through_kept_shell(command, timeout, output)

    def _exec(self, command: str, timeout: float | None, output: CommandCapture) -> int:
        """One command on its own channel (see ``channel.run_exec``)."""
        if len(command.encode("utf-8", "surrogateescape")) > MAX_EXEC_COMMAND:
            # past ARG_MAX: the shell reads it
            return self._through_kept_shell(command, timeout, output)
        client = self._require_client()
        started = time.monotonic()
        wait = self.settings["timeout"]
        if timeout is not None:  # the command's deadline (and the grace) bound the open too
            wait = min(wait, timeout + KILL_GRACE)
        with map_errors(f"cannot open a channel to {self.where}"):
            try:
                chan = client.open_session(timeout=wait)
            except paramiko.SSHException as exc:
                if timeout is None or time.monotonic() - started < timeout:
                    raise
                raise CommandTimeout(
                    f"command {command[:80]!r} ran past its {timeout:g} s deadline on "
                    f"{self.where}: the server opened no channel for it in {wait:g} s, so it "
                    "never started",
                    command=command,
                    timeout=timeout,
                ) from exc
        return run_exec(
            chan,
            command,
            timeout,
            output,
            shell=self.settings["shell"],
            login=self.login_shell,
            sudo=self._sudo,
            where=self.where,
            connection=lambda: self._client,
            learned=self._learn_login_shell,
            since=started,
        )

    def _learn_login_shell(self, login: str) -> None:
        self.login_shell = login

    def _new_shell(self, until: float | None = None) -> RemoteShell:
        client = self._require_client()
        try:
            return self._remote_shell(client, until)
        except NeedsTTY:
            if self._sudo is None:
                raise
            self._sudo.tty = True  # requiretty: sudo on a pty, stderr through a FIFO
            return self._remote_shell(client, until)

    def _remote_shell(self, client: PipelinedTransport, until: float | None) -> RemoteShell:
        return RemoteShell(
            client,
            self.settings["shell"],
            self.where,
            self._sudo,
            self.settings["timeout"],
            login=self.login_shell,
            learned=self._learn_login_shell,
            until=until,
            isolate=self.settings["isolate"] != "off",
        )

    def _kept_shell(self, timeout: float | None, command: str) -> RemoteShell:
        """Exec mode's kept shell channel, for batches (and sudo on requiretty hosts);
        started within ``timeout``, the deadline of ``command``, which it serves first."""
        with self._batch_lock:
            if self._batch_shell is None or not self._batch_shell.alive():
                if self._batch_shell is not None:
                    self._batch_shell.close()
                self._batch_shell = None
                until = None if timeout is None else time.monotonic() + timeout
                try:
                    self._batch_shell = self._new_shell(until)
                except (DeadlinePassed, TrainlabError) as exc:
                    if until is None or time.monotonic() < until or timeout is None:
                        raise
                    raise CommandTimeout(
                        f"command {command[:80]!r} ran past its {timeout:g} s deadline on "
                        f"{self.where}: the shell that runs it had not started, so it never "
                        f"ran ({exc or 'no answer'})",
                        command=command,
                        timeout=timeout,
                    ) from exc
            return self._batch_shell

    def _through_kept_shell(
        self, command: str, timeout: float | None, output: CommandCapture
    ) -> int:
        # With requiretty every sudo needs a pty; one kept sudo shell (stderr kept
        # apart through a FIFO) serves exec mode's commands instead of a pty each.
        with self._batch_lock:
            [out] = self._kept_shell(timeout, command).exchange(
                [command], timeout, capture_for=lambda _index: output, stray=self.stray.add
            )
        return out.exit_status

    def _as_sudo_user(self, command: str) -> tuple[bytes, bytes, int]:
        """A file command run as ``sudo_user``: its whole stdout and stderr, and status."""
        output = CommandCapture()
        status = self._exec_mode(command, None, output)
        return output.stdout.value(), output.stderr.value(), status

    # ------------------------------------------------------------------ files
    def read_file(self, path: str) -> bytes:
        if self._sudo is not None:  # as sudo_user, which SFTP (the login user) is not
            out, err, status = self._as_sudo_user(f"cat -- {shlex.quote(path)}")
            if status != 0:
                raise command_file_error(err, path, self.where)
            return out
        return self._files.read(path)

    def stat(self, path: str) -> FileStat:
        if self._sudo is not None:
            out, err, status = self._as_sudo_user(
                f"stat -L -c '{STAT_FORMAT}' -- {shlex.quote(path)}"
            )
            if status != 0:
                raise command_file_error(err, path, self.where)
            return FileStat.from_stat_line(path, out.decode())
        return self._files.stat(path)

    def upload(self, local: str, remote: str) -> int:
        return self._files.upload(local, remote)

    def download(self, remote: str, local: str) -> int:
        return self._files.download(remote, local)
