"""SSH: one kept paramiko connection per session; a channel per command or one kept shell.

``mode=exec`` opens a channel per command on the kept connection; ``mode=shell``
keeps one channel running bash with ``trainlab.framing``. Batches are one round
trip in both modes. Files travel over one SFTP channel per session.

Two socket details make the difference on every round trip: ``TCP_NODELAY``
(paramiko leaves Nagle on), and an answer to OpenSSH's unsolicited
``hostkeys-00@openssh.com`` announcement after login, without which the server
holds its next packet until a delayed ACK (about 40 ms) lets it go.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import logging
import os
import re
import select
import shlex
import socket
import stat as stat_module
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import paramiko
from paramiko.auth_handler import AuthHandler
from paramiko.common import (
    MSG_UNIMPLEMENTED,
    cMSG_CHANNEL_OPEN,
    cMSG_CHANNEL_REQUEST,
    cMSG_IGNORE,
)
from paramiko.message import Message

from trainlab import framing
from trainlab.errors import (
    CommandTimeout,
    ConnectError,
    FileError,
    FileMissing,
    HostKeyError,
    TargetError,
    TransportError,
)
from trainlab.options import Option
from trainlab.result import STAT_FORMAT, CommandResult, FileStat, file_type
from trainlab.transports._deadline import DeadlinePassed
from trainlab.transports.base import Transport
from trainlab.uri import parse_target

__all__ = ["InsecureHostKeyWarning", "SSHTransport"]

_READ = 256 * 1024
# After a command's exit status arrives, how long to wait for the end of its
# output before deciding a background process holds the stream open. OpenSSH
# sends the exit status before the last output when the command exits quickly,
# so this also covers a busy client whose reader thread is slow to catch up.
_DRAIN_GRACE = 0.5
_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
# Prepended to every exec-mode command: a stderr line with the login shell's pid
# (the session leader, so the process group of everything the command starts).
_PREAMBLE = 'echo "__tl_pid $$" >&2; '
# What a clean `bash --noprofile --norc -c` has and an rc file may have changed.
_CLEAN_BASH = (
    "set +o errexit +o nounset +o pipefail +o xtrace +o errtrace +o functrace "
    "+o noclobber +o noglob +o posix 2>/dev/null; trap - EXIT ERR DEBUG RETURN; "
    "shopt -u expand_aliases nullglob failglob nocaseglob extglob globstar 2>/dev/null; "
    "unalias -a 2>/dev/null;"
)
# Longer exec-mode commands go through the kept shell: one argument of a command
# line may not pass 128 KiB on Linux (sshd hands it to `shell -c`).
_MAX_EXEC_COMMAND = 100_000
# Login options a jump host takes from the session that goes through it.
_JUMP_INHERITS = (
    "key_file",
    "passphrase",
    "password",
    "agent",
    "look_for_keys",
    "host_key_policy",
    "known_hosts",
    "ssh_config",
    "timeout",
    "connect_retries",
    "retry_backoff",
    "keepalive",
    "ciphers",
    "kex",
)
# AEAD first: one pass per packet instead of a cipher and a MAC.
_FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


# Printed by the command's own shell once sudo has let it start: everything on
# stderr before it is sudo's (prompts, "Sorry, try again"), everything after the command's.
_SUDO_OK = b"__tl_sudo_ok\n"
_SUDO_REFUSALS = ("password", "sudoers", "not allowed", "tty", "incorrect", "sorry")


class _NeedsTTY(ConnectError):
    """Internal: sudo refused for want of a tty; the caller retries on a pty."""


class _Sudo:
    """How commands go through sudo: a unique prompt to watch for, and the password.

    The password is written to the channel only when sudo's own prompt appears,
    once; it is never part of a command line.
    """

    def __init__(self, user: str, password: str | None) -> None:
        self.user = user
        self._password = password
        self.prompt = f"[trainlab-sudo:{framing.new_nonce().decode()}]".encode()
        # Set once sudo says it must have a tty (sudoers requiretty): from then on
        # sudo runs on a pty channel and stderr comes back through a FIFO.
        self.tty = False

    def command(self, inner: str) -> str:
        return (
            f"sudo -S -p {shlex.quote(self.prompt.decode())} -H -u {shlex.quote(self.user)} "
            f"-- {inner}"
        )

    def answer(self, chan: paramiko.Channel, stderr: bytes, answered: int) -> int:
        """Answer each new prompt in ``stderr``; returns how many prompts were answered."""
        prompts = stderr.count(self.prompt)
        while answered < prompts:
            answered += 1
            if self._password is None or answered > 1:
                with contextlib.suppress(Exception):
                    chan.shutdown_write()  # no (or a refused) password: let sudo fail
            else:
                chan.sendall(self._password.encode() + b"\n")
        return answered

    def refusal(self, stderr: bytes, where: str) -> ConnectError:
        text = stderr.replace(self.prompt, b"").decode(errors="replace").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        said = lines[-1] if lines else "no reason given"
        if "must have a tty" in text:
            return _NeedsTTY(f"sudo on {where} needs a tty (requiretty)")
        elif "not found" in text:
            fix = "sudo is not installed there"
        elif self._password is not None and (
            "incorrect password" in text or "Sorry, try again" in text
        ):
            fix = "sudo_password is wrong"
        elif "password" in text:
            fix = "pass sudo_password="
        else:
            fix = f"check the sudoers rules for this user and sudo_user={self.user}"
        return ConnectError(f"sudo on {where} refused: {said} ({fix})")

    def forget(self) -> None:
        self._password = None


# Device CLI families: paging off, a failed command's lines, the prompt (last line).
_DEVICES: dict[str, dict[str, Any]] = {
    "generic": {
        "paging": [],
        "error": r"^\s*(% ?\S|error\b|syntax error|invalid input|unknown command)",
        "prompt": r"^[^\s]*[>#%$] ?$",
    },
    "junos": {
        "paging": ["set cli screen-length 0"],
        "error": r"^\s*(syntax error|error:|unknown command)",
        "prompt": r"^([\w.\-]+@)?[\w.\-]+[>#%] ?$",
    },
    "ios": {
        "paging": ["terminal length 0"],
        "error": r"^\s*% ",
        "prompt": r"^[\w.\-()]+[>#] ?$",
    },
    "eos": {
        "paging": ["terminal length 0"],
        "error": r"^\s*% ",
        "prompt": r"^[\w.\-()]+[>#] ?$",
    },
}
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")


class InsecureHostKeyWarning(UserWarning):
    """``host_key_policy=off``: the server's identity is not checked."""


_warned_hosts: set[str] = set()


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges what it reads at once (Linux's TCP_QUICKACK).

    sshd leaves Nagle's algorithm on for sessions without a pty, so its second
    small packet in a row waits for the ACK of the first, which the kernel here
    would delay by up to 40 ms when we have nothing to send back: after an
    early login, the channel's confirmation would wait so. The kernel clears
    the flag as it goes, so it is set again before every read (a system call
    of about a microsecond).
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        with contextlib.suppress(OSError):
            self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[arg-type]
        return super().recv(bufsize, flags)


class _EarlyLogin(AuthHandler):
    """Sends a key login right behind the ``ssh-userauth`` service request.

    The server handles packets in order, so the login needs no wait for the
    service accept: a cold connection saves a round trip. Used only where that
    is known to hold (OpenSSH), where the signature does not depend on the
    server's ``server-sig-algs`` (not RSA keys), which may not have arrived yet,
    and on a socket that acknowledges at once (see _QuickAckSocket): sshd sends
    the accept and the login's answer as two packets, and Nagle's algorithm
    holds the second until the first is acknowledged. Through a jump host the
    jump's kernel acknowledges, so the login waits for the accept there.
    """

    _sent_early = False

    def _request_auth(self) -> None:
        # Set first: the accept may be read (on paramiko's thread) before the
        # login is sent, and must not send a second one.
        self._sent_early = True
        super()._request_auth()  # type: ignore[misc]
        accept = Message()
        accept.add_string("ssh-userauth")
        accept.rewind()
        super()._parse_service_accept(accept)  # type: ignore[misc]

    def _parse_service_accept(self, m: Message) -> None:
        if not self._sent_early:
            super()._parse_service_accept(m)  # type: ignore[misc]


class _Transport(paramiko.Transport):
    """paramiko's Transport, with a faster login.

    OpenSSH sends ``hostkeys-00@openssh.com`` (no reply wanted) right after
    authentication; with Nagle on its side, its next packet then waits for our
    ACK, which the kernel delays by about 40 ms. Any small packet from us
    carries the ACK at once, so an ``SSH_MSG_IGNORE`` answers it.

    Where the login goes out early (see _EarlyLogin), the first session
    channel can follow it in the same flight (``early_channel``): OpenSSH keeps
    what it has read across its post-login process change and opens the
    channel once the login succeeds, so the channel's confirmation comes back
    with the login's. If the login fails, the server only answers the
    channel's packet with UNIMPLEMENTED, and the channel is forgotten.
    """

    early_channel = False

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        # The channel is held here: paramiko's channel map holds only weak references.
        self._spare: tuple[paramiko.Channel, threading.Event] | None = None
        self._handler_table = {
            **self._handler_table,  # type: ignore[has-type]
            MSG_UNIMPLEMENTED: lambda m: None,  # an early channel of a failed login
        }

    def _parse_global_request(self, m: Message) -> None:
        super()._parse_global_request(m)  # type: ignore[misc]
        if not self.server_mode:
            ignore = Message()
            ignore.add_byte(cMSG_IGNORE)
            ignore.add_string(b"")
            self._send_message(ignore)  # type: ignore[attr-defined]

    def auth_publickey(
        self, username: str, key: paramiko.PKey, event: threading.Event | None = None
    ) -> list[str]:
        if event is not None or not _early_login_ok(self, key):
            return super().auth_publickey(username, key, event)
        if not self.is_active() or not self.initial_kex_done:
            raise paramiko.SSHException("No existing session")
        done = threading.Event()
        self.auth_handler = _EarlyLogin(self)
        self.auth_handler.auth_publickey(username, key, done)
        if self.early_channel and self._spare is None:
            self._open_early()
        try:
            rest: list[str] = self.auth_handler.wait_for_response(done)
        except BaseException:
            self._forget_spare()
            raise
        if not self.is_authenticated():  # partial: another method follows
            self._forget_spare()
        return rest

    def _open_early(self) -> None:
        """Send a session channel's open without waiting for its confirmation."""
        with self.lock:
            window = self._sanitize_window_size(None)  # type: ignore[attr-defined]
            packet = self._sanitize_packet_size(None)  # type: ignore[attr-defined]
            chanid = self._next_channel()  # type: ignore[attr-defined]
            message = Message()
            message.add_byte(cMSG_CHANNEL_OPEN)
            message.add_string("session")
            message.add_int(chanid)
            message.add_int(window)
            message.add_int(packet)
            chan = paramiko.Channel(chanid)
            self._channels.put(chanid, chan)  # type: ignore[attr-defined]
            self.channel_events[chanid] = event = threading.Event()
            self.channels_seen[chanid] = True
            chan._set_transport(self)  # type: ignore[attr-defined]
            chan._set_window(window, packet)  # type: ignore[attr-defined]
            self._spare = (chan, event)
        self._send_user_message(message)  # type: ignore[attr-defined]

    def _forget_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            with self.lock:
                self._channels.delete(spare[0].chanid)  # type: ignore[attr-defined]
                self.channel_events.pop(spare[0].chanid, None)

    def open_session(
        self,
        window_size: int | None = None,
        max_packet_size: int | None = None,
        timeout: float | None = None,
    ) -> paramiko.Channel:
        """The channel opened early, once confirmed, else a new one."""
        spare, self._spare = self._spare, None
        if spare is None or window_size is not None or max_packet_size is not None:
            if spare is not None:
                self._spare = spare
            return super().open_session(window_size, max_packet_size, timeout)
        chan, event = spare
        deadline = time.monotonic() + (self.channel_timeout if timeout is None else timeout)
        while not event.wait(0.1):
            if not self.is_active():
                raise self.get_exception() or paramiko.SSHException("Unable to open channel.")
            if time.monotonic() > deadline:
                raise paramiko.SSHException("Timeout opening channel.")
        if self._channels.get(chan.chanid) is None:  # type: ignore[attr-defined]
            # refused: paramiko dropped it and saved the reason
            raise self.get_exception() or paramiko.SSHException("Unable to open channel.")
        return chan

    def _parse_debug(self, m: Message) -> None:
        # paramiko builds a log line from each debug message one character at a
        # time even when nobody logs DEBUG; OpenSSH sends some after every key login.
        if self.logger.isEnabledFor(logging.DEBUG):
            super()._parse_debug(m)  # type: ignore[misc]
            return
        m.get_boolean()
        m.get_string()
        m.get_string()


class SSHTransport(Transport):
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
            choices=tuple(_DEVICES),
        ),
        "cli_prompt": Option(str, None, "regex for the CLI prompt (the last line)"),
        "cli_error": Option(str, None, "regex for lines that mean the command failed"),
        "cli_paging": Option(str, None, "commands that turn paging off, ';'-separated"),
        "key_file": Option(str, None, "private key file (ed25519, ecdsa or rsa)"),
        "passphrase": Option(str, None, "passphrase of key_file", secret=True),
        "password": Option(str, None, "password for password authentication", secret=True),
        "agent": Option(bool, True, "try the keys of the running ssh-agent"),
        "look_for_keys": Option(bool, True, "try ~/.ssh/id_ed25519, id_ecdsa and id_rsa"),
        "host_key_policy": Option(
            str,
            "accept-new",
            "strict: known hosts only; accept-new: learn new hosts, refuse changed keys; "
            "off: no check (warns)",
            choices=("strict", "accept-new", "off"),
        ),
        "known_hosts": Option(str, "~/.ssh/known_hosts", "the known_hosts file"),
        "ssh_config": Option(str, "~/.ssh/config", "OpenSSH client config to read ('' skips)"),
        "timeout": Option(float, 10.0, "connect and login timeout, seconds", minimum=0.001),
        "connect_retries": Option(
            int, 2, "more attempts after a refused or timed-out connect", minimum=0
        ),
        "retry_backoff": Option(float, 0.5, "seconds before the first retry, doubling", minimum=0),
        "keepalive": Option(float, 30.0, "seconds between keepalives (0: none)", minimum=0),
        "compression": Option(bool, False, "compress the stream (slow links only)"),
        "ciphers": Option(str, None, "comma-separated cipher preference"),
        "kex": Option(
            str,
            None,
            "key exchange algorithms to offer first, comma-separated (the rest stay "
            "as fallbacks); ecdh-sha2-nistp256 costs OpenSSH less CPU than curve25519",
        ),
        "rekey_bytes": Option(int, None, "rekey after this many bytes", minimum=1),
        "rekey_packets": Option(int, None, "rekey after this many packets", minimum=1),
        "shell": Option(str, "bash", "remote bash for shell mode and batches", affects_result=True),
        "sudo": Option(bool, False, "run every command through sudo", affects_result=True),
        "sudo_user": Option(str, "root", "the user sudo runs commands as", affects_result=True),
        "sudo_password": Option(
            str, None, "sudo's password, sent over the channel when sudo asks", secret=True
        ),
        "proxy_jump": Option(
            str,
            None,
            "jump host(s), user@host[:port] or ssh:// URIs, comma-separated "
            "('none' ignores ssh_config's ProxyJump)",
        ),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        if not target.host:
            raise TargetError("ssh:// needs a host: ssh://user@host[:port]")
        self._lock = threading.RLock()
        self._sftp_lock = threading.Lock()
        self._sftp_ops_lock = threading.RLock()
        self._client: _Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._host: _RemoteShell | None = None
        self._batch_host: _RemoteShell | None = None
        self._cli: _DeviceCLI | None = None
        self._batch_lock = threading.RLock()
        self.host, self.port, self.user, self._config_keys, jump = self._resolve()
        given = self.settings.get("proxy_jump")
        self.proxy_jump: str | None = None if given == "none" else (given or jump)
        self._sudo: _Sudo | None = (
            _Sudo(self.settings["sudo_user"], self.settings.get("sudo_password"))
            if self.settings.get("sudo")
            else None
        )

    # ------------------------------------------------------------ identity
    def _resolve(self) -> tuple[str, int, str, list[str], str | None]:
        host = self.target.host
        config: dict[str, Any] = {}
        path = self.settings.get("ssh_config")
        if path:
            full = Path(path).expanduser()
            if full.is_file():
                try:
                    config = dict(paramiko.SSHConfig.from_path(str(full)).lookup(host))
                except (OSError, paramiko.SSHException, UnicodeDecodeError, ValueError) as exc:
                    raise TargetError(f"cannot read ssh config {full}: {exc}") from exc
                if "proxycommand" in config:
                    raise TargetError(
                        f"{full} gives {host} a ProxyCommand, which trainlab does not run; "
                        "use ProxyJump (or proxy_jump=), or ssh_config='' to ignore the file"
                    )
        hostname = str(config.get("hostname", host))
        try:
            port = self.target.port or int(config.get("port", 22))
        except ValueError as exc:
            raise TargetError(f"ssh config gives {host} a port that is not a number") from exc
        user = self.target.user or str(config.get("user") or getpass.getuser())
        # As OpenSSH, an IdentityFile that does not exist is skipped.
        keys = [
            str(Path(k).expanduser())
            for k in config.get("identityfile", [])
            if Path(k).expanduser().is_file()
        ]
        jump = config.get("proxyjump")
        return hostname, port, user, keys, (str(jump) if jump and jump != "none" else None)

    def identity(self) -> tuple[Any, ...]:
        # Behind different jump hosts, one address can name different machines.
        return ("ssh", self.user, self.host, self.port, self.proxy_jump)

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def concurrent(self) -> bool:
        return self.mode == "exec"

    @property
    def supports_batch(self) -> bool:
        return self.mode != "cli"  # a device CLI takes one command at a time

    # ----------------------------------------------------------- lifecycle
    def alive(self) -> bool:
        client = self._client
        if client is None or not client.is_active():
            return False
        if self.mode == "shell":
            return self._host is not None and self._host.alive()
        if self.mode == "cli":
            return self._cli is not None and self._cli.alive()
        return True

    def open(self) -> None:
        with self._lock:
            if self._client is None or not self._client.is_active():
                self._drop()
                self._client = self._connect()
            if self.mode == "shell" and (self._host is None or not self._host.alive()):
                if self._host is not None:
                    self._host.close()
                self._host = self._new_shell()
            if self.mode == "cli" and (self._cli is None or not self._cli.alive()):
                if self._cli is not None:
                    self._cli.close()
                self._cli = _DeviceCLI(self._client, self.where, **self._cli_settings())

    def close(self) -> None:
        with self._lock:
            self._drop()

    def forget_secrets(self) -> None:
        super().forget_secrets()
        if self._sudo is not None:
            self._sudo.forget()

    def _drop(self) -> None:
        for host in (self._host, self._batch_host, self._cli):
            if host is not None:
                host.close()
        self._host = self._batch_host = self._cli = None
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def _cli_settings(self) -> dict[str, Any]:
        preset = _DEVICES[self.settings["device"]]
        paging = self.settings.get("cli_paging")
        commands = (
            preset["paging"]
            if paging is None
            else [c.strip() for c in paging.split(";") if c.strip()]
        )
        try:
            prompt = re.compile(self.settings.get("cli_prompt") or preset["prompt"])
            error = re.compile(self.settings.get("cli_error") or preset["error"], re.I | re.M)
        except re.error as exc:
            raise TargetError(f"cli_prompt or cli_error is not a valid regex: {exc}") from exc
        return {
            "prompt": prompt,
            "error": error,
            "paging": commands,
            "timeout": self.settings["timeout"],
        }

    def platform_facts(self) -> dict[str, str] | None:
        if self.mode != "cli":
            return None
        device = self.settings["device"]
        return {"kernel": device, "id": device, "release": "", "arch": ""}

    def _connect(self) -> _Transport:
        sock = self._socket()
        timeout = self.settings["timeout"]
        try:
            client = _Transport(sock)
        except BaseException:
            sock.close()
            raise
        client.banner_timeout = timeout
        client.auth_timeout = timeout
        try:
            self._configure(client)
            try:
                client.start_client(timeout=timeout)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise ConnectError(
                    f"SSH handshake with {self.where} failed within {timeout:g} s: "
                    f"{exc or type(exc).__name__} (is it an SSH server?)"
                ) from exc
            if getattr(client, "host_key", None) is None:  # start_client gave up quietly
                raise ConnectError(
                    f"SSH handshake with {self.where} failed within {timeout:g} s: no answer "
                    "(is it an SSH server?)"
                )
            self._check_host_key(client)
            # The first command's channel, sent behind an early login (see _Transport).
            client.early_channel = self.mode in ("exec", "shell")
            self._authenticate(client)
            if self.settings["keepalive"]:
                client.set_keepalive(int(max(1, self.settings["keepalive"])))
        except BaseException as exc:
            client.close()
            with contextlib.suppress(Exception):
                sock.close()  # paramiko's close() skips a transport that never started
            if isinstance(exc, paramiko.SSHException | EOFError | OSError):
                raise ConnectError(f"connecting to {self.where} failed: {exc}") from exc
            raise
        return client

    def _socket(self) -> Any:
        if self.proxy_jump:
            return self._through_jump(self.proxy_jump)
        attempts = 1 + self.settings["connect_retries"]
        delay = self.settings["retry_backoff"]
        timeout = self.settings["timeout"]
        last: OSError | None = None
        for attempt in range(attempts):
            try:
                sock = socket.create_connection((self.host, self.port), timeout=timeout)
            except socket.gaierror as exc:
                raise ConnectError(f"cannot resolve host {self.host!r}: {exc.strerror}") from exc
            except OSError as exc:
                last = exc
                if attempt + 1 < attempts:
                    time.sleep(delay * (2**attempt))
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if _QUICKACK is None:
                return sock
            quick = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
            quick.settimeout(timeout)
            return quick
        reason = (
            "timed out"
            if isinstance(last, TimeoutError)
            else (getattr(last, "strerror", None) or str(last))
        )
        raise ConnectError(
            f"cannot connect to {self.host}:{self.port}: {reason} "
            f"(after {attempts} attempt{'s' if attempts > 1 else ''})"
        ) from last

    def _through_jump(self, spec: str) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from the (shared, kept) jump host to the target.

        The layer above opens the jump host (``peer_opener``): through
        ``trainlab.connect`` it is an ordinary live session from the registry, so
        every session through the same jump host shares its one connection. The
        jump takes this session's login options unless its URI gives its own.
        """
        hops = [hop.strip() for hop in spec.split(",") if hop.strip()]
        last = hops[-1] if "://" in hops[-1] else f"ssh://{hops[-1]}"
        own = set(parse_target(last).query)
        inherited: dict[str, Any] = {
            name: self.settings[name]
            for name in _JUMP_INHERITS
            if self.settings.get(name) is not None and name not in own
        }
        if "proxy_jump" not in own:
            inherited["proxy_jump"] = ",".join(hops[:-1]) or "none"
        if self.peer_opener is None:
            raise TargetError(
                f"proxy_jump needs a way to open the jump host {last}: "
                "connect with trainlab.connect(), which shares one jump session"
            )
        jump = self.peer_opener(last, inherited)
        if not isinstance(jump, SSHTransport):
            raise TargetError(f"the jump host {last} is not an ssh:// target")
        return jump.open_tunnel(self.host, self.port, self.settings["timeout"])

    def open_tunnel(self, host: str, port: int, timeout: float) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from this host to ``host:port``.

        It is the socket of a connection that goes through this host (this
        host is its jump host). Needs the connection open.
        """
        client = self._require_client()
        where = self.target.address
        try:
            channel: paramiko.Channel = client.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            raise ConnectError(
                f"jump host {where} could not reach {host}:{port}: {exc.text} "
                "(is TCP forwarding allowed there, and the address right from there?)"
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectError(f"jump host {where} failed: {exc}") from exc
        return channel

    def _configure(self, client: _Transport) -> None:
        security = client.get_security_options()
        ciphers = self.settings.get("ciphers")
        if ciphers:
            wanted = tuple(c.strip() for c in ciphers.split(",") if c.strip())
            unknown = [c for c in wanted if c not in security.ciphers]
            if unknown or not wanted:
                raise TargetError(
                    f"unsupported cipher {', '.join(unknown) or repr(ciphers)}; "
                    f"choose from {', '.join(security.ciphers)}"
                )
            security.ciphers = wanted
        else:
            fast = tuple(c for c in _FAST_CIPHERS if c in security.ciphers)
            security.ciphers = fast + tuple(c for c in security.ciphers if c not in fast)
        kex = self.settings.get("kex")
        if kex:
            first = tuple(k.strip() for k in kex.split(",") if k.strip())
            unknown = [k for k in first if k not in security.kex]
            if unknown:
                raise TargetError(
                    f"unsupported kex {', '.join(unknown)}; choose from {', '.join(security.kex)}"
                )
            security.kex = first + tuple(k for k in security.kex if k not in first)
        client.use_compression(bool(self.settings["compression"]))
        known = [name for name in self._known_types() if name in security.key_types]
        if known:  # prefer the key types we can verify, as OpenSSH does
            security.key_types = tuple(known) + tuple(
                k for k in security.key_types if k not in known
            )
        packetizer = client.packetizer
        if self.settings.get("rekey_bytes"):
            packetizer.REKEY_BYTES = self.settings["rekey_bytes"]
        if self.settings.get("rekey_packets"):
            packetizer.REKEY_PACKETS = self.settings["rekey_packets"]

    # ----------------------------------------------------------- host keys
    @property
    def _host_id(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def _known_keys(self) -> tuple[list[paramiko.PKey], list[paramiko.PKey]]:
        """(keys, revoked keys) that the known_hosts file lists for this host.

        Read line by line as OpenSSH does: a host may have several keys of one
        type, ``@revoked`` keys are refused, ``@cert-authority`` and unreadable
        lines are skipped rather than failing the connection.
        """
        path = Path(self.settings["known_hosts"]).expanduser()
        if not path.exists():
            return [], []
        if not path.is_file():
            raise ConnectError(f"known_hosts {path} is not a file")
        digest, entries = _parsed_known_hosts(path)
        version = (f"hosts:{self._host_id}", digest)
        found: tuple[list[paramiko.PKey], list[paramiko.PKey]] | None = _parsed_files.get(version)
        if found is None:
            keys: list[paramiko.PKey] = []
            revoked: list[paramiko.PKey] = []
            for marker, hostnames, key in entries:
                if any(_host_matches(pattern, self._host_id) for pattern in hostnames):
                    (revoked if marker == "@revoked" else keys).append(key)
            found = (keys, revoked)
            _remember(version, found)
        return list(found[0]), list(found[1])

    def _known_types(self) -> list[str]:
        if self.settings["host_key_policy"] == "off":
            return []
        keys, _ = self._known_keys()
        names: list[str] = []
        for key in keys:
            for name in _ALGORITHMS.get(key.get_name(), (key.get_name(),)):
                if name not in names:
                    names.append(name)
        return names

    def _check_host_key(self, client: _Transport) -> None:
        key = client.get_remote_server_key()
        policy = self.settings["host_key_policy"]
        fingerprint = _fingerprint(key)
        if policy == "off":
            if self._host_id not in _warned_hosts:
                _warned_hosts.add(self._host_id)
                warnings.warn(
                    f"host_key_policy=off: the identity of {self._host_id} ({fingerprint}) "
                    "is not checked; anyone in the path can pose as it",
                    InsecureHostKeyWarning,
                    stacklevel=2,
                )
            return
        path = Path(self.settings["known_hosts"]).expanduser()
        keys, revoked = self._known_keys()
        if any(key == bad for bad in revoked):
            raise HostKeyError(
                f"the host key of {self._host_id} ({fingerprint}) is marked @revoked in {path}"
            )
        if any(key == good for good in keys):
            return
        if any(good.get_name() == key.get_name() for good in keys):
            raise HostKeyError(
                f"the {key.get_name()} host key of {self._host_id} has CHANGED "
                f"(now {fingerprint}); this may be an attack, or a reinstalled host. "
                f"If you trust the change: ssh-keygen -R '{self._host_id}' -f {path}"
            )
        if policy == "strict":
            raise HostKeyError(
                f"{self._host_id} is not in {path} ({key.get_name()} {fingerprint}); "
                f"add it (ssh-keyscan -p {self.port} {self.host} >> {path}) or connect "
                "with host_key_policy=accept-new"
            )
        _append_known_host(path, self._host_id, key)

    # ------------------------------------------------------------------ auth
    def _authenticate(self, client: _Transport) -> None:
        user = self.user
        tried: list[str] = []
        allowed: list[str] | None = None
        for label, key in self._keys():
            if allowed is not None and "publickey" not in allowed:
                break
            try:
                client.auth_publickey(user, key)
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
                tried.append(label)
                continue
            except paramiko.AuthenticationException as exc:
                if not client.is_active():
                    raise ConnectError(
                        f"the connection to {self.where} closed during login"
                    ) from exc
                tried.append(label)
                continue
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise ConnectError(
                    f"login to {self.where} failed: {exc or type(exc).__name__}"
                ) from exc
            if client.is_authenticated():
                return
        password = self.settings.get("password")
        if password is not None and (allowed is None or "password" in allowed):
            try:
                client.auth_password(user, password)
            except paramiko.BadAuthenticationType as exc:
                allowed = list(exc.allowed_types)
            except paramiko.AuthenticationException as exc:
                if not client.is_active():
                    raise ConnectError(
                        f"the connection to {self.where} closed during login"
                    ) from exc
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise ConnectError(
                    f"login to {self.where} failed: {exc or type(exc).__name__}"
                ) from exc
            tried.append("password")
            if client.is_authenticated():
                return
        accepts = f"; the server accepts {', '.join(allowed)}" if allowed else ""
        what = ", ".join(tried) if tried else "nothing (no key file, agent key or password)"
        raise ConnectError(
            f"authentication as {self.where} failed; tried {what}{accepts}. "
            "Pass key_file= (and passphrase=), password=, or load a key into ssh-agent"
        )

    def _keys(self) -> Iterator[tuple[str, paramiko.PKey]]:
        seen: set[str] = set()
        explicit = self.settings.get("key_file")
        files = [str(Path(explicit).expanduser())] if explicit else []
        files += self._config_keys
        for path in files:
            if path not in seen:
                seen.add(path)
                yield f"key {path}", self._load_key(path, required=path == files[0])
        if self.settings["agent"]:
            agent = paramiko.Agent()
            try:
                for index, key in enumerate(agent.get_keys()):
                    yield f"agent key {index + 1} ({key.get_name()})", key
            finally:
                agent.close()
        if self.settings["look_for_keys"]:
            for name in _DEFAULT_KEYS:
                path = str(Path("~/.ssh", name).expanduser())
                if path not in seen and os.path.isfile(path):
                    seen.add(path)
                    with contextlib.suppress(ConnectError):
                        yield f"key {path}", self._load_key(path, required=False)

    def _load_key(self, path: str, *, required: bool) -> paramiko.PKey:
        passphrase = self.settings.get("passphrase")
        secret = passphrase.encode() if passphrase is not None else None
        try:
            if secret is None:  # a decrypted key is never kept: only plain ones are cached
                return _load_plain_key(path)
            return paramiko.PKey.from_path(path, secret)
        except FileNotFoundError as exc:
            raise ConnectError(f"key file {path} does not exist") from exc
        except paramiko.PasswordRequiredException as exc:
            raise ConnectError(f"key file {path} is encrypted: pass passphrase=") from exc
        except (paramiko.SSHException, ValueError, TypeError, OSError) as exc:
            if passphrase is None and "password" in str(exc).lower():
                raise ConnectError(f"key file {path} is encrypted: pass passphrase=") from exc
            hint = "wrong passphrase, or " if passphrase else ""
            raise ConnectError(
                f"cannot load key file {path}: {hint}not an OpenSSH/PEM private key"
            ) from exc

    # -------------------------------------------------------------- commands
    def _channel(self) -> paramiko.Channel:
        client = self._client
        if client is None or not client.is_active():
            raise TransportError(f"the connection to {self.where} is closed")
        try:
            return client.open_session(timeout=self.settings["timeout"])
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise TransportError(f"cannot open a channel to {self.where}: {_why(exc)}") from exc

    def run(self, command: str, timeout: float | None) -> CommandResult:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        if self.mode == "shell":
            host = self._host
            if host is None or not host.alive():
                raise TransportError(f"the shell on {self.where} is not running")
            request = framing.build_request([command])
            [out] = host.exchange(request, timeout)
            stdout, stderr, status = out.stdout, out.stderr, out.exit_status
        elif self.mode == "cli":
            cli = self._cli
            if cli is None or not cli.alive():
                raise TransportError(f"the CLI session on {self.where} is not running")
            stdout, stderr, status = cli.send(command, timeout)
        else:
            stdout, stderr, status = self._exec_mode(command, timeout)
        return self.result(command, stdout, stderr, status, started=started, since=t0)

    def run_many(
        self, commands: Sequence[str], timeout: float | None, stop_on_error: bool
    ) -> list[CommandResult]:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        request = framing.build_request(commands, stop_on_error=stop_on_error)
        if self.mode == "shell":
            host = self._host
            if host is None or not host.alive():
                raise TransportError(f"the shell on {self.where} is not running")
            outputs = host.exchange(request, timeout)
        else:
            # Exec mode keeps one shell channel for batches, opened on the first
            # batch, so every batch after it is one round trip too.
            with self._batch_lock:  # one request at a time on the kept channel
                outputs = self._kept_shell().exchange(request, timeout)
        wall = time.perf_counter() - t0
        return framing.framed_results(commands, outputs, self.target.address, started, wall)

    def _exec_mode(self, command: str, timeout: float | None) -> tuple[bytes, bytes, int]:
        if self._sudo is not None and self._sudo.tty:
            return self._through_kept_shell(command, timeout)
        try:
            return self._exec(command, timeout)
        except _NeedsTTY:  # sudo refused before the command started: nothing ran
            if self._sudo is None:
                raise
            self._sudo.tty = True
            return self._through_kept_shell(command, timeout)

    def _new_shell(self) -> _RemoteShell:
        client = self._require_client()
        try:
            return _RemoteShell(
                client, self.settings["shell"], self.where, self._sudo, self.settings["timeout"]
            )
        except _NeedsTTY:
            if self._sudo is None:
                raise
            self._sudo.tty = True  # requiretty: sudo on a pty, stderr through a FIFO
            return _RemoteShell(
                client, self.settings["shell"], self.where, self._sudo, self.settings["timeout"]
            )

    def _kept_shell(self) -> _RemoteShell:
        """Exec mode's kept shell channel, for batches (and sudo on requiretty hosts)."""
        with self._batch_lock:
            if self._batch_host is None or not self._batch_host.alive():
                if self._batch_host is not None:
                    self._batch_host.close()
                self._batch_host = self._new_shell()
            return self._batch_host

    def _through_kept_shell(self, command: str, timeout: float | None) -> tuple[bytes, bytes, int]:
        # With requiretty every sudo needs a pty; one kept sudo shell (stderr kept
        # apart through a FIFO) serves exec mode's commands instead of a pty each.
        with self._batch_lock:
            [out] = self._kept_shell().exchange(framing.build_request([command]), timeout)
        return out.stdout, out.stderr, out.exit_status

    def _require_client(self) -> _Transport:
        if self._client is None or not self._client.is_active():
            raise TransportError(f"the connection to {self.where} is closed")
        return self._client

    def _exec(self, command: str, timeout: float | None) -> tuple[bytes, bytes, int]:
        """One command on its own channel, in the login shell.

        The command is wrapped: before it, the shell reports its pid (the process
        group a timeout kills) and takes stdin from /dev/null; after it, the shell
        writes end markers with the exit status on both streams. The markers end
        the exchange even when a background process keeps the output open, and
        they arrive after all of the command's output, which the exit-status
        message need not (OpenSSH may send it first). A command that exits the
        shell itself never reaches them; then the channel's EOF and exit status do.
        """
        if len(command.encode()) > _MAX_EXEC_COMMAND:  # past ARG_MAX: the kept shell reads it
            return self._through_kept_shell(command, timeout)
        chan = self._channel()
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[bytes] = []
        err: list[bytes] = []
        nonce = framing.new_nonce()
        end = nonce + b" E"
        sudo = self._sudo
        if sudo is not None:
            inner = f"echo {_SUDO_OK.decode().strip()} >&2; exec </dev/null; {command}"
            body = sudo.command(f"{shlex.quote(self.settings['shell'])} -c {shlex.quote(inner)}")
            head = _PREAMBLE
        else:
            body = command
            head = _PREAMBLE + "exec </dev/null; "
        line = (
            f"{head}{body}\n__tl_rc=$?; printf '%s E\\n' {nonce.decode()} >&2; "
            f'printf \'%s E %d\\n\' {nonce.decode()} "$__tl_rc"; exit "$__tl_rc"'
        )
        answered = 0
        out_tail = err_tail = b""
        try:
            try:
                chan.exec_command(line)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise TransportError(f"cannot start a command on {self.where}: {exc}") from exc
            quiet_since: float | None = None
            while True:
                got_out, got_err = _drain(chan, out, err)
                if got_out:
                    out_tail = (out_tail + b"".join(out[-got_out:]))[-_READ:]
                if got_err:
                    err_tail = (err_tail + b"".join(err[-got_err:]))[-_READ:]
                    if sudo is not None and answered < 2:
                        answered = sudo.answer(chan, b"".join(err), answered)
                if _marked(out_tail, end, status=True) and _marked(err_tail, end, status=False):
                    break  # the command's own output is complete
                if self._client_gone() and not chan.status_event.is_set():
                    raise TransportError(self._broke(command))
                if chan.exit_status_ready():
                    if chan.closed and chan.exit_status == -1 and self._client_gone():
                        raise TransportError(self._broke(command))
                    if chan.closed or (
                        chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready()
                    ):
                        break
                    # The shell exited without its markers (the command ran `exit`)
                    # and something still holds the output open: wait while data
                    # flows, then stop.
                    if got_out or got_err or quiet_since is None:
                        quiet_since = time.monotonic()
                    elif time.monotonic() - quiet_since > _DRAIN_GRACE:
                        break
                wait = 1.0 if quiet_since is None else _DRAIN_GRACE / 2
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._exec_timeout(chan, command, timeout, out, err)
                    wait = min(wait, remaining)
                _wait(chan, wait)
            _drain(chan, out, err)
            stdout, stderr = b"".join(out), b"".join(err)
            _, stderr = _split_pid(stderr)
            status = chan.exit_status
            cut = stdout.rfind(end + b" ")
            if cut >= 0:
                line_end = stdout.find(b"\n", cut)
                with contextlib.suppress(ValueError):
                    status = int(stdout[cut + len(end) + 1 : line_end])
                stdout = stdout[:cut]
                err_cut = stderr.rfind(end + b"\n")
                if err_cut >= 0:
                    stderr = stderr[:err_cut]
            if sudo is not None:
                before, found, after = stderr.partition(_SUDO_OK)
                if not found:
                    raise sudo.refusal(before, self.where)
                stderr = after
            return stdout, stderr, status
        finally:
            with contextlib.suppress(Exception):
                chan.close()

    def _broke(self, command: str) -> str:
        return (
            f"the connection to {self.where} broke during {command[:80]!r}; the command is "
            "not re-run"
        )

    def _exec_timeout(
        self,
        chan: paramiko.Channel,
        command: str,
        timeout: float | None,
        out: list[bytes],
        err: list[bytes],
    ) -> CommandTimeout:
        """Kill the command's process group; wait a little for its pid if it is late."""
        _signal(chan, "KILL")
        pid, stderr = _split_pid(b"".join(err))
        patience = time.monotonic() + 5
        while pid is None and not chan.exit_status_ready() and time.monotonic() < patience:
            _wait(chan, 0.1)  # on a slow link the pid line may still be on its way
            _drain(chan, out, err)
            pid, stderr = _split_pid(b"".join(err))
        self._kill_group(pid)
        killed = (
            "it and what it started were killed"
            if pid is not None or (chan.exit_status_ready())
            else "the remote shell never reported its pid, so it may still be running"
        )
        return CommandTimeout(
            f"command {command[:80]!r} ran past its {timeout:g} s deadline on {self.where}; "
            f"{killed}",
            command=command,
            timeout=timeout,
            stdout=framing.last_bytes(out),
            stderr=stderr[-framing.PARTIAL_LIMIT :],
        )

    def _kill_group(self, pid: int | None) -> None:
        """Kill a remote process group over a fresh channel (``signal`` needs privsep)."""
        if pid is not None and not self._client_gone():
            _kill_remote_group(self._require_client(), pid, self._sudo)

    def _client_gone(self) -> bool:
        client = self._client
        return client is None or not client.is_active()

    # ------------------------------------------------------------------ files
    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._sftp_lock:
            if self._sftp is None:
                client = self._require_client()
                try:
                    sftp = client.open_sftp_client()
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise TransportError(f"cannot open SFTP on {self.where}: {exc}") from exc
                if sftp is None:
                    raise TransportError(f"{self.where} refused the SFTP subsystem")
                self._sftp = sftp
            return self._sftp

    def read_file(self, path: str) -> bytes:
        if self._sudo is not None:  # as sudo_user, which SFTP (the login user) is not
            out, err, status = self._exec_mode(f"cat -- {shlex.quote(path)}", None)
            if status != 0:
                raise self._command_file_error(err, path)
            return out

        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(path, "rb") as handle:
                handle.prefetch()
                data: bytes = handle.read()
                return data

        content: bytes = self._sftp_call("reading", path, read)
        return content

    def stat(self, path: str) -> FileStat:
        if self._sudo is not None:
            out, err, status = self._exec_mode(
                f"stat -L -c '{STAT_FORMAT}' -- {shlex.quote(path)}", None
            )
            if status != 0:
                raise self._command_file_error(err, path)
            return FileStat.from_stat_line(path, out.decode())
        info = self._sftp_call("stat of", path, lambda sftp: sftp.stat(path))
        mode = info.st_mode or 0
        return FileStat(
            path=path,
            type=file_type(mode),
            size=info.st_size or 0,
            mode=stat_module.S_IMODE(mode),
            uid=info.st_uid or 0,
            gid=info.st_gid or 0,
            mtime=float(info.st_mtime or 0),
        )

    def upload(self, local: str, remote: str) -> int:
        if not os.path.isfile(local):
            raise FileMissing(errno.ENOENT, f"{local}: no such local file")
        attrs = self._sftp_call("uploading to", remote, lambda sftp: sftp.put(local, remote))
        return int(attrs.st_size or 0)

    def download(self, remote: str, local: str) -> int:
        self._sftp_call("downloading", remote, lambda sftp: sftp.get(remote, local))
        return os.path.getsize(local)

    def _sftp_call(self, what: str, path: str, action: Any) -> Any:
        """One SFTP operation at a time (paramiko's client hangs when threads share
        it), with failures sorted: the file's own errors, or a broken connection."""
        with self._sftp_ops_lock:
            sftp = self._sftp_client()
            try:
                return action(sftp)
            except OSError as exc:
                if exc.errno is not None and not self._client_gone():
                    raise self._file_error(exc, path) from exc
                self._drop_sftp()
                raise TransportError(
                    f"{what} {path} on {self.where} failed: the connection broke ({exc})"
                ) from exc
            except (paramiko.SSHException, EOFError) as exc:
                self._drop_sftp()
                raise TransportError(f"{what} {path} on {self.where} failed: {exc}") from exc

    def _drop_sftp(self) -> None:
        with self._sftp_lock:
            if self._sftp is not None:
                with contextlib.suppress(Exception):
                    self._sftp.close()
                self._sftp = None

    def _command_file_error(self, stderr: bytes, path: str) -> FileError:
        text = stderr.decode(errors="replace").strip()
        if "No such file" in text:
            return FileMissing(errno.ENOENT, f"{path}: no such file on {self.where}")
        code = errno.EACCES if "ermission denied" in text else errno.EIO
        return FileError(code, f"{path} on {self.where}: {text or 'failed'}")

    def _file_error(self, exc: OSError, path: str) -> FileError:
        code = exc.errno or 0
        if code == errno.ENOENT or isinstance(exc, FileNotFoundError):
            return FileMissing(errno.ENOENT, f"{path}: no such file on {self.where}")
        reason = exc.strerror or str(exc) or "failed"
        return FileError(code, f"{path} on {self.where}: {reason}")


# ------------------------------------------------------------- the kept shell


class _RemoteShell:
    """bash on one SSH channel, answering framed requests (see ``trainlab.framing``).

    Under sudo with ``requiretty`` the shell runs on a pty channel (raw mode, no
    echo) and its stderr goes to a FIFO that a second channel reads, so stdout and
    stderr stay apart.
    """

    def __init__(
        self,
        client: paramiko.Transport,
        shell: str,
        where: str,
        sudo: _Sudo | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.where = where
        self.client = client
        self.sudo = sudo
        self.timeout = timeout
        self.broken = False
        self.pid: int | None = None
        self.err_chan: paramiko.Channel | None = None
        self.shell = shell
        self.tty = sudo is not None and sudo.tty
        self.fifo = ""
        # Without sudo there is nothing to answer while the shell starts, so the
        # start waits for the first request and carries it: one exec runs bash
        # and the request (see exchange), and the ready lines arrive with the
        # answer. OpenSSH opens a session's window only once its exec has run,
        # so a request sent behind the exec would wait a round trip for it.
        self._starting = sudo is None
        try:
            if self.tty:
                self.fifo = self._open_stderr_fifo()
            self.chan = client.open_session(timeout=timeout)
            if self.tty:
                self.chan.get_pty(term="dumb", width=4096, height=100)
            if not self._starting:
                self.chan.exec_command(self._start_command())
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise TransportError(f"cannot start a shell on {where}: {_why(exc)}") from exc
        if not self._starting:
            self.pid, _, _ = self._handshake([], [])

    def _start_command(self, first: framing.Request | None = None) -> str:
        """The exec line: report the login shell's pid, then become the host."""
        if self._starting:  # both streams say ready, so startup chatter can be cut off
            inner = "echo __tl_ready; echo __tl_ready >&2; " + framing.host_script(first)
        else:
            inner = "echo __tl_ready; " + framing.HOST_SCRIPT
        suffix = ""
        if self.tty:
            inner = 'stty raw -echo 2>/dev/null; exec 2>"$0"; ' + inner
            suffix = " " + shlex.quote(self.fifo)
        host = f"{shlex.quote(self.shell)} --noprofile --norc -c {shlex.quote(inner)}{suffix}"
        if self.sudo is not None:
            host = self.sudo.command(host)
        start = f"exec {host}"
        if self.sudo is None and self.shell == "bash":
            # A login shell that is bash already runs the host itself: one bash
            # start less per session, which a cold fan-out over many hosts pays
            # for each. Bash run by sshd may have read ~/.bashrc (Debian builds
            # it so), so first undo what an rc file may set that a clean
            # `bash --norc` lacks: errexit, nounset, pipefail, POSIX mode, traps
            # and alias expansion would otherwise change every command.
            start = (
                f'if [ -n "$BASH_VERSION" ]; then {_CLEAN_BASH} eval {shlex.quote(inner)}; '
                f"else {start}; fi"
            )
        return f'echo "__tl_pid $$"; {start}'

    def _start(self, request: framing.Request) -> None:
        """Start the host with ``request`` in its exec line, or behind it if too long."""
        command = self._start_command(request)
        if len(command.encode()) <= _MAX_EXEC_COMMAND:
            _send_exec(self.chan, command)  # the answer follows the reply: no wait
            return
        _send_exec(self.chan, self._start_command())
        self.chan.sendall(request.wire)  # waits for the window the exec opens

    def _open_stderr_fifo(self) -> str:
        """A FIFO in a fresh /tmp directory, read by a second channel; returns its path."""
        self.err_chan = self.client.open_session(timeout=self.timeout)
        self.err_chan.exec_command(
            'd=$(mktemp -d /tmp/trainlab-XXXXXX) && chmod 711 "$d" && '
            'mkfifo -m 622 "$d/err" && echo "$d/err" && cat "$d/err"; rm -rf "$d"'
        )
        line = b""
        deadline = time.monotonic() + max(self.timeout, 30.0)
        while not line.endswith(b"\n"):
            if self.err_chan.recv_ready():
                line += self.err_chan.recv(1)
                continue
            if self.err_chan.exit_status_ready() or time.monotonic() > deadline:
                raise TransportError(f"cannot make a FIFO for stderr on {self.where}")
            _wait(self.err_chan, 0.5)
        return line.decode().strip()

    def _handshake(
        self, out: list[bytes], err: list[bytes]
    ) -> tuple[int, list[bytes], list[bytes]]:
        """Read the login shell's pid and bash's ready line, answering sudo on the way.

        Returns the pid and what followed the ready lines on stdout and stderr:
        nothing for a plain start, the first answer's beginning for a pipelined
        one. What a chatty login shell printed before them is dropped.
        """
        answered = 0
        deadline = time.monotonic() + max(self.timeout, 30.0)  # a login shell may be slow
        tty = self.err_chan is not None
        while True:
            _drain(self.chan, out, err)
            stdout = b"".join(out).replace(b"\r", b"")
            if _READY.search(stdout) and (not self._starting or _READY.search(b"".join(err))):
                break
            # On a pty sudo prompts on the merged output; otherwise on stderr.
            said = stdout if tty else b"".join(err)
            if self.sudo is not None and said and answered < 2:
                answered = self.sudo.answer(self.chan, said, answered)
            ended = self.chan.closed or self.chan.exit_status_ready() or self.chan.eof_received
            if ended or time.monotonic() > deadline:
                _drain(self.chan, out, err)
                self.close()
                stderr = b"".join(err) + (stdout if tty else b"")
                if self.sudo is not None and _PID_LINE.search(stdout):
                    raise self.sudo.refusal(stderr, self.where)
                text = stderr.decode(errors="replace").strip()
                raise TransportError(
                    f"cannot start bash on {self.where} for shell mode"
                    f"{': ' + text if text else ''}; mode=exec works without bash"
                )
            _wait(self.chan, 0.5)
        # Anything else the login shell printed (a chatty .bashrc) is left behind.
        if self._starting:  # no pty: the bytes are the answer's, \r and all
            stdout = b"".join(out)
        pid = _PID_LINE.search(stdout)
        ready = _READY.search(stdout)
        rest = stdout[ready.end() :] if ready is not None else b""
        if pid is None or ready is None or (rest and not self._starting):
            self.close()
            raise TransportError(f"unexpected output from the shell on {self.where}: {stdout!r}")
        if not self._starting:
            return int(pid.group(1)), [], []
        stderr = b"".join(err)
        err_ready = _READY.search(stderr)
        assert err_ready is not None  # the loop waited for it
        rest_err = stderr[err_ready.end() :]
        return int(pid.group(1)), [rest] if rest else [], [rest_err] if rest_err else []

    def alive(self) -> bool:
        chan = self.chan
        return not (self.broken or chan.closed or chan.eof_received or chan.exit_status_ready())

    def exchange(
        self, request: framing.Request, timeout: float | None
    ) -> list[framing.FramedOutput]:
        chan = self.chan
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            if self._starting:
                self._start(request)
            else:
                junk: list[bytes] = []
                self._drain(junk, junk)  # late output of earlier background jobs
                chan.sendall(request.wire)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.broken = True
            raise TransportError(f"the shell on {self.where} is gone: {exc}") from exc
        nonce = request.nonce
        try:
            if self._starting:  # the request went out behind the start: read both
                self.pid, out, err = self._handshake(out, err)
                self._starting = False
            out_tail = b"".join(out)[-_READ:]
            err_tail = b"".join(err)[-_READ:]
            out_done = framing.is_done(out_tail, nonce)
            err_done = framing.is_done(err_tail, nonce)
            while not (out_done and err_done):
                got_out, got_err = self._drain(out, err)
                if got_out:
                    out_tail = (out_tail + b"".join(out[-got_out:]))[-_READ:]
                    out_done = framing.is_done(out_tail, nonce)
                if got_err:
                    err_tail = (err_tail + b"".join(err[-got_err:]))[-_READ:]
                    err_done = framing.is_done(err_tail, nonce)
                if out_done and err_done:
                    break
                if chan.closed or chan.eof_received or chan.exit_status_ready():
                    self._drain(out, err)
                    out_done = framing.is_done(b"".join(out)[-_READ:], nonce)
                    err_done = framing.is_done(b"".join(err)[-_READ:], nonce)
                    if out_done and err_done:
                        break
                    self.broken = True
                    raise TransportError(
                        f"the shell on {self.where} ended during the command; it is not "
                        "re-run, and the next call starts a new shell"
                    )
                wait = 1.0
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise DeadlinePassed
                    wait = min(wait, remaining)
                self._wait(wait)
        except DeadlinePassed:
            self.broken = True
            self.kill()
            stdout, stderr = b"".join(out), b"".join(err)
            raise framing.timeout_error(
                request,
                stdout,
                stderr,
                self.where,
                timeout,
                aftermath="the shell and what it started were killed",
            ) from None
        except BaseException:
            self.broken = True
            self.kill()
            raise
        return framing.parse_response(b"".join(out), b"".join(err), request)

    def _drain(self, out: list[bytes], err: list[bytes]) -> tuple[int, int]:
        if self.err_chan is None:
            return _drain(self.chan, out, err)
        got_out, _ = _drain(self.chan, out, err)
        got_err, _ = _drain(self.err_chan, err, err)
        return got_out, got_err

    def _wait(self, seconds: float) -> None:
        if self.err_chan is None:
            _wait(self.chan, seconds)
            return
        if self.chan.recv_ready() or self.err_chan.recv_ready():
            return
        with contextlib.suppress(OSError, ValueError):
            select.select([self.chan, self.err_chan], [], [], max(0.0, seconds))

    def kill(self) -> None:
        """Stop the shell and everything in its process group (it leads its session).

        The ``signal`` request is tried first; OpenSSH refuses it for root logins
        (no privilege separation there), so a second channel runs ``kill`` too.
        """
        _signal(self.chan, "KILL")
        if self.pid is not None and self.client.is_active():
            _kill_remote_group(self.client, self.pid, self.sudo)
        self.close()

    def close(self) -> None:
        for chan in (getattr(self, "chan", None), self.err_chan):
            if chan is not None:
                with contextlib.suppress(Exception):
                    chan.close()


class _DeviceCLI:
    """A network device's CLI on one interactive channel (a pty, as devices expect).

    Each command's output is what arrives between its echo and the next prompt;
    there is no exit status, so a line matching the device's error pattern makes
    the result fail (exit status 1, the error lines on stderr).
    """

    def __init__(
        self,
        client: paramiko.Transport,
        where: str,
        *,
        prompt: re.Pattern[str],
        error: re.Pattern[str],
        paging: list[str],
        timeout: float,
    ) -> None:
        self.where = where
        self.prompt = prompt
        self.error = error
        self.broken = False
        try:
            self.chan = client.open_session(timeout=timeout)
            self.chan.get_pty(term="vt100", width=511, height=1000)
            self.chan.invoke_shell()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise TransportError(f"cannot open a CLI session on {where}: {exc}") from exc
        self.banner = self._until_prompt(time.monotonic() + timeout, what="the first prompt")
        for command in paging:
            self.send(command, timeout)

    def alive(self) -> bool:
        chan = self.chan
        return not (self.broken or chan.closed or chan.eof_received or chan.exit_status_ready())

    def _until_prompt(self, deadline: float | None, *, what: str) -> str:
        buffer = b""
        while True:
            while self.chan.recv_ready():
                buffer += self.chan.recv(_READ)
            while self.chan.recv_stderr_ready():
                buffer += self.chan.recv_stderr(_READ)
            text = _ANSI.sub(b"", buffer).decode("utf-8", "replace").replace("\r", "")
            last = text.rsplit("\n", 1)[-1]
            if last and self.prompt.search(last):
                return text
            if self.chan.closed or self.chan.eof_received or self.chan.exit_status_ready():
                self.broken = True
                raise TransportError(f"the CLI on {self.where} closed while waiting for {what}")
            wait = 1.0
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise DeadlinePassed
            _wait(self.chan, min(wait, 1.0))

    def send(self, command: str, timeout: float | None) -> tuple[bytes, bytes, int]:
        if "\n" in command or "\r" in command:
            raise TargetError("mode=cli takes one line per command; use run_many for several")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.chan.sendall(command.encode() + b"\n")
            text = self._until_prompt(deadline, what=f"the prompt after {command[:60]!r}")
        except DeadlinePassed:
            self._interrupt()
            raise CommandTimeout(
                f"command {command[:80]!r} ran past its {timeout:g} s deadline on the CLI of "
                f"{self.where}; it was interrupted (Ctrl-C)",
                command=command,
                timeout=timeout,
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self.broken = True
            raise TransportError(f"the CLI on {self.where} is gone: {exc}") from exc
        lines = text.split("\n")
        if lines and lines[0].strip().endswith(command.strip()):
            lines = lines[1:]  # the device's echo of the command
        output = "\n".join(lines[:-1])  # the last line is the next prompt
        output = output + "\n" if output else ""
        errors = [line for line in lines[:-1] if self.error.search(line)]
        status = 1 if errors else 0
        stderr = ("\n".join(errors) + "\n") if errors else ""
        return output.encode(), stderr.encode(), status

    def _interrupt(self) -> None:
        """Ctrl-C, then wait briefly for the prompt; a CLI that does not come back is closed."""
        try:
            self.chan.sendall(b"\x03")
            self._until_prompt(time.monotonic() + 5, what="the prompt after Ctrl-C")
        except (DeadlinePassed, TransportError, OSError, EOFError, paramiko.SSHException):
            self.broken = True
            self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.chan.close()


# ---------------------------------------------------------------- helpers


def _drain(chan: paramiko.Channel, out: list[bytes], err: list[bytes]) -> tuple[int, int]:
    """Move what the channel holds into the lists; return how many chunks each got."""
    got_out = got_err = 0
    while chan.recv_ready():
        data = chan.recv(_READ)
        if not data:
            break
        out.append(data)
        got_out += 1
    while chan.recv_stderr_ready():
        data = chan.recv_stderr(_READ)
        if not data:
            break
        err.append(data)
        got_err += 1
    return got_out, got_err


def _send_exec(chan: paramiko.Channel, command: str) -> None:
    """``exec_command`` without waiting for the server's reply.

    A refusal still shows: paramiko closes the channel on CHANNEL_FAILURE, and
    whoever reads the channel sees it closed.
    """
    if chan.closed:
        raise paramiko.SSHException("the channel is closed")
    _channel_request(chan, "exec", command, want_reply=True)


def _channel_request(chan: paramiko.Channel, kind: str, value: str, *, want_reply: bool) -> None:
    """Send an RFC 4254 channel request with one string field, not waiting."""
    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(chan.remote_chanid)
    message.add_string(kind)
    message.add_boolean(want_reply)
    message.add_string(value)
    transport: Any = chan.transport
    transport._send_user_message(message)


def _why(exc: BaseException) -> str:
    """An SSH failure in words; a refused channel says what usually refuses it."""
    if isinstance(exc, paramiko.ChannelException):
        return (
            f"the server refused the channel ({exc.text or 'no reason'}, code {exc.code}); "
            "it may allow no more sessions on this connection (sshd's MaxSessions)"
        )
    return str(exc) or type(exc).__name__


def _early_login_ok(client: paramiko.Transport, key: paramiko.PKey) -> bool:
    """Whether a key login may go out before the service accept (see _EarlyLogin)."""
    return (
        isinstance(client.sock, _QuickAckSocket)
        and client.remote_version.startswith("SSH-2.0-OpenSSH_")
        and "rsa" not in key.get_name()
    )


def _wait(chan: paramiko.Channel, seconds: float) -> None:
    """Sleep until the channel has data, status or EOF, or ``seconds`` pass."""
    if chan.recv_ready() or chan.recv_stderr_ready() or chan.exit_status_ready():
        return
    with contextlib.suppress(OSError, ValueError):
        select.select([chan], [], [], max(0.0, seconds))


def _signal(chan: paramiko.Channel, name: str) -> None:
    """Send an RFC 4254 "signal" request; OpenSSH delivers it to the session's
    process group (killpg), which takes the command's children with it."""
    if chan.closed:
        return
    with contextlib.suppress(Exception):
        _channel_request(chan, "signal", name, want_reply=False)


def _kill_remote_group(client: paramiko.Transport, pid: int, sudo: _Sudo | None) -> None:
    """``kill -KILL`` a process group, through sudo when the session uses it."""
    # /bin/kill (procps), not a shell's builtin: dash's kill takes no "--" and reads a
    # negative pid as an option. pkill -g is the second try.
    command = f"env kill -KILL -- -{pid} {pid} 2>/dev/null; pkill -KILL -g {pid} 2>/dev/null; true"
    if sudo is not None:
        command = f"{command}; " + sudo.command(f"sh -c {shlex.quote(command)}")
    with contextlib.suppress(Exception):
        chan = client.open_session(timeout=10)
        try:
            if sudo is not None and sudo.tty:
                chan.get_pty(term="dumb")
            chan.exec_command(command)
            deadline = time.monotonic() + 5
            said: list[bytes] = []
            answered = 0
            while not chan.exit_status_ready() and time.monotonic() < deadline:
                _drain(chan, said, said)
                if sudo is not None and answered < 2:
                    answered = sudo.answer(chan, b"".join(said), answered)
                _wait(chan, 0.2)
        finally:
            chan.close()


_PID_LINE = re.compile(rb"__tl_pid (\d+)\n")
_READY = re.compile(rb"(?:^|\n)__tl_ready\n")


def _marked(tail: bytes, end: bytes, *, status: bool) -> bool:
    """True when ``tail`` holds the whole end marker line (``<N> E <rc>`` or ``<N> E``)."""
    at = tail.rfind(end)
    if at < 0:
        return False
    line_end = tail.find(b"\n", at)
    if line_end < 0:
        return False
    rest = tail[at + len(end) : line_end]
    return rest.strip().isdigit() if status else rest == b""


def _split_pid(stderr: bytes) -> tuple[int | None, bytes]:
    """Take the preamble's pid line out of stderr (a login shell may write before it)."""
    match = _PID_LINE.search(stderr)
    if match is None:
        return None, stderr
    return int(match.group(1)), stderr[: match.start()] + stderr[match.end() :]


# A key type in known_hosts -> the host key algorithms that prove it.
# Parsed known_hosts files and unencrypted private keys, by content: a fan-out over
# many hosts would otherwise parse every known_hosts line and the key file again
# for each connection (a third of the client's CPU per connect). Reading a file
# is cheap; parsing its keys is not.
_KnownEntry = tuple[str, tuple[str, ...], paramiko.PKey]
_parsed_files: dict[tuple[str, bytes], Any] = {}
_parsed_lock = threading.Lock()
_PARSED_MAX = 4096


def _version(kind: str, data: bytes) -> tuple[str, bytes]:
    import hashlib

    return kind, hashlib.blake2b(data, digest_size=16).digest()


def _remember(version: tuple[str, bytes], value: Any) -> None:
    with _parsed_lock:
        if len(_parsed_files) >= _PARSED_MAX:
            _parsed_files.clear()
        _parsed_files[version] = value


def _parsed_known_hosts(path: Path) -> tuple[bytes, list[_KnownEntry]]:
    """The file's digest, and (marker, host patterns, key) of each readable line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConnectError(f"cannot read known_hosts {path}: {exc.strerror}") from exc
    version = _version("known_hosts", data)
    cached: list[_KnownEntry] | None = _parsed_files.get(version)
    if cached is not None:
        return version[1], cached
    text = data.decode("utf-8", "replace")
    entries: list[_KnownEntry] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker = ""
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            if marker != "@revoked":
                continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (
            paramiko.SSHException,
            paramiko.hostkeys.InvalidHostKey,
            ValueError,
            TypeError,
        ):
            continue  # OpenSSH skips what it cannot read
        if entry is None or entry.key is None:
            continue
        entries.append((marker, tuple(entry.hostnames), entry.key))
    _remember(version, entries)
    return version[1], entries


def _load_plain_key(path: str) -> paramiko.PKey:
    """An unencrypted private key, parsed once per content of the key and its certificate.

    ``PKey.from_path`` also loads ``<key>-cert.pub`` when there is one (or the
    key beside a ``-cert.pub`` path), so both files are part of the version.
    """
    suffix = "-cert.pub"
    key_path = Path(path.removesuffix(suffix)).expanduser()
    cert_path = Path(f"{key_path}{suffix}")
    try:
        cert = cert_path.read_bytes()
    except FileNotFoundError:
        cert = b""
    data = key_path.read_bytes()
    version = _version("key", len(data).to_bytes(8, "big") + data + cert)
    cached: paramiko.PKey | None = _parsed_files.get(version)
    if cached is None:
        cached = paramiko.PKey.from_path(path, None)
        _remember(version, cached)
    return cached


_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


def _host_matches(pattern: str, host_id: str) -> bool:
    """An OpenSSH known_hosts host field: plain, or hashed as |1|salt|hash."""
    if pattern.startswith("|1|"):
        try:
            salt = pattern.split("|")[2]
            return paramiko.HostKeys.hash_host(host_id, salt) == pattern
        except (IndexError, ValueError, TypeError):
            return False
    return pattern == host_id


def _fingerprint(key: paramiko.PKey) -> str:
    return str(key.fingerprint)


def _append_known_host(path: Path, host_id: str, key: paramiko.PKey) -> None:
    """Learn a new host (accept-new): append one line, as OpenSSH does."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{host_id} {key.get_name()} {key.get_base64()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
