"""``pwsh+ssh://``: PowerShell remoting over SSH, on sshd's ``powershell`` subsystem.

PowerShell 7 and Windows' OpenSSH serve ``Enter-PSSession -HostName``: sshd starts
``pwsh -sshs`` as its ``powershell`` subsystem and the client speaks PSRP's
out-of-process protocol over the channel, as ``pwsh://`` does over a process's pipes
(``trainlab.transports.out_of_process``, shared by both). One kept SSH connection,
logged in as ``ssh://`` logs in (``trainlab.transports.ssh.connection``: keys, agent,
password, host keys, jump hosts, keepalive), one subsystem channel and one runspace
pool on it. A host that died is started again on a new channel of the kept
connection; a dropped connection is connected again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

import paramiko

from trainlab.errors import ConnectError
from trainlab.options import Option
from trainlab.transports.out_of_process import OutOfProcessClient, OutOfProcessTransport
from trainlab.transports.ssh.connection import DAY, LOGIN_OPTIONS, SSHLogin, open_subsystem

__all__ = ["SUBSYSTEM_HINT", "PwshSSHTransport"]

#: How a server gets the subsystem, for the error when it has none.
SUBSYSTEM_HINT = (
    "add it to sshd_config and reload sshd: 'Subsystem powershell /usr/bin/pwsh -sshs -NoLogo' "
    "on Linux and macOS, 'Subsystem powershell c:/progra~1/powershell/7/pwsh.exe -sshs' on "
    "Windows (PowerShell 7 installed; the 8.3 path, as sshd_config takes no spaces)"
)

_READ_SIZE = 256 * 1024
# The longest single wait on the channel: stderr is drained between waits.
_SLICE = 1.0
# How long the host may leave the channel's window full before it counts as hung.
_WRITE_LIMIT = 30.0
# What is kept of the host's stderr, for messages.
_ERRORS_KEPT = 2000


class PwshSSHTransport(OutOfProcessTransport):
    """PowerShell on a host reached over SSH (its ``powershell`` subsystem).

    Options: the login options of ``ssh://`` (``key_file``, ``password``,
    ``known_hosts``, ``host_key_policy``, ``proxy_jump``, ``keepalive``, ...),
    ``subsystem`` (default ``powershell``) and ``open_timeout``.

    >>> import trainlab
    >>> win = trainlab.connect("pwsh+ssh://admin@win1", key_file="~/.ssh/id")  # doctest: +SKIP
    >>> win.run_ps("Get-Service", as_frame=True)  # doctest: +SKIP
    """

    scheme: ClassVar[str] = "pwsh+ssh"
    options: ClassVar[Mapping[str, Option]] = {
        **LOGIN_OPTIONS,
        "subsystem": Option(
            str,
            "powershell",
            "the sshd subsystem that runs pwsh -sshs",
            affects_result=True,
        ),
        "open_timeout": Option(
            float,
            30.0,
            "seconds to wait for the host to open its runspace",
            minimum=0.1,
            maximum=DAY,
        ),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        self._login = SSHLogin(self.scheme, target, self.settings)
        self._client: paramiko.Transport | None = None

    @property
    def where(self) -> str:
        """``user@host:port``, for messages."""
        return self._login.where

    def identity(self) -> tuple[Any, ...]:
        # Behind different jump hosts, one address can name different machines.
        login = self._login
        return ("pwsh+ssh", login.user, login.host, login.port, login.proxy_jump)

    # -- lifecycle ------------------------------------------------------------
    def _start_host(self) -> OutOfProcessClient:
        if self._client is None or not self._client.is_active():
            self._drop_connection()
            self._client = self._login.connect(self.peer_opener, early_channel=True)
        name = self.settings["subsystem"]
        channel = open_subsystem(self._client, name, self.where, self.settings["timeout"])
        if channel is None:
            raise ConnectError(
                f"{self.where} has no {name!r} SSH subsystem, so PowerShell remoting over SSH "
                f"is not set up there; {SUBSYSTEM_HINT}"
                + ("" if name == "powershell" else f" (with {name!r} for 'powershell')")
            )
        return OutOfProcessClient(
            _ChannelStream(channel, self.where),
            name=f"the PowerShell host on {self.where}",
            check=(
                f"check that sshd's 'Subsystem {name}' line starts 'pwsh -sshs', and that "
                "no login script (~/.bashrc, profile) prints to stdout"
            ),
            timeout=self.settings["open_timeout"],
        )

    def close(self) -> None:
        super().close()
        with self._lock:
            self._drop_connection()

    def _drop_connection(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


class _ChannelStream:
    """The subsystem's stdin and stdout on an SSH channel; its stderr, drained and kept."""

    def __init__(self, channel: paramiko.Channel, where: str) -> None:
        self.channel = channel
        self.where = where
        self._errors = b""

    def write(self, data: bytes) -> None:
        self.channel.settimeout(_WRITE_LIMIT)
        self.channel.sendall(data)  # TimeoutError past the limit, OSError once closed

    def read(self, wait: float | None) -> bytes | None:
        self.channel.settimeout(_SLICE if wait is None else min(max(wait, 0.0), _SLICE))
        try:
            data: bytes | None = self.channel.recv(_READ_SIZE)
        except TimeoutError:
            data = None
        self._drain_errors()
        return data

    def _drain_errors(self) -> None:
        # Read, so the channel's window never fills with stderr nobody reads.
        while self.channel.recv_stderr_ready():
            self._errors = (self._errors + self.channel.recv_stderr(_READ_SIZE))[-_ERRORS_KEPT:]

    def alive(self) -> bool:
        channel = self.channel
        transport = channel.get_transport()
        return (
            not channel.closed
            and not channel.eof_received
            and transport is not None
            and transport.is_active()
        )

    def ended(self) -> str:
        transport = self.channel.get_transport()
        if transport is None or not transport.is_active():
            return f"was cut off: the SSH connection to {self.where} closed"
        self.channel.status_event.wait(0.5)  # the exit status follows the end of output
        status = self.channel.exit_status
        if status < 0:  # sshd reports a signal as exit-signal, which paramiko ignores
            return "exited with no exit status (killed by a signal?)"
        return f"exited (status {status})"

    def errors(self) -> str:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self._drain_errors()
        return self._errors[-500:].decode("utf-8", "replace").strip()

    def end(self) -> None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self.channel.shutdown_write()  # EOF ends the server loop
            self.channel.status_event.wait(2.0)
        self.kill()

    def kill(self) -> None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self.channel.close()
