"""Reaching an SSH server and logging in: ssh_config, a socket or a jump host's tunnel,
algorithms, the host key, authentication and keepalive. ``ssh://`` and ``pwsh+ssh://``
both connect through ``SSHLogin``, so both take the same login options;
``open_subsystem`` starts a subsystem (``powershell``) on a logged-in connection.

Imports paramiko, the layers below transports and the ssh package's modules.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import paramiko

from trainlab.errors import ConnectError, ConnectTimeout, TargetError
from trainlab.options import Option
from trainlab.transports.retry import (
    DEFINITE,
    FAILURE_WORDS,
    ConnectRetry,
    attempts_made,
    connect_failure,
)
from trainlab.transports.ssh._paramiko import PipelinedTransport, invoke_subsystem, quick_ack
from trainlab.transports.ssh.auth import authenticate, candidate_keys
from trainlab.transports.ssh.errors import map_errors
from trainlab.transports.ssh.hostkeys import KnownHosts
from trainlab.transports.ssh.jump import jump_login

__all__ = ["DAY", "LOGIN_OPTIONS", "SSHLogin", "open_subsystem"]

# The largest timeout or keepalive interval an option takes (sockets and timers take no
# infinity), and the longest pause between connect attempts.
DAY = 86_400.0
_MAX_PAUSE = 60.0
# The usual fix for each kind of connect failure (``connect_failure``), in ssh's terms.
_FIXES = {
    "refused": "is sshd running there, and on that port?",
    "unresolvable": "check the host name",
    "unreachable": "check the network path to it (route, VPN, firewall), or reach it "
    "through a jump host (proxy_jump=)",
    "timeout": "is the host up? a firewall may be dropping the packets; raise timeout= "
    "for a slow network",
    "reset": "the server or something between dropped the connection (sshd's MaxStartups "
    "limit of unauthenticated connections, a firewall)",
}
# AEAD first: one pass per packet instead of a cipher and a MAC.
_FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")

#: The options of every transport that logs in over SSH.
LOGIN_OPTIONS: Mapping[str, Option] = {
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
    "timeout": Option(
        float,
        10.0,
        "connect and login timeout, and the longest wait for an SFTP answer, seconds",
        minimum=0.001,
        maximum=DAY,
    ),
    "connect_retries": Option(
        int,
        2,
        "more attempts after a connect that timed out or was reset (a refused, "
        "unresolvable or unreachable host fails at once unless retry_refused=true)",
        minimum=0,
        maximum=20,
    ),
    "retry_refused": Option(
        bool,
        False,
        "retry a refused, unresolvable or unreachable host too (one still booting)",
    ),
    "retry_backoff": Option(
        float,
        0.5,
        f"seconds before the first retry, doubling (each pause at most {_MAX_PAUSE:g} s)",
        minimum=0,
        maximum=_MAX_PAUSE,
    ),
    "keepalive": Option(
        float, 30.0, "seconds between keepalives (0: none)", minimum=0, maximum=DAY
    ),
    "compression": Option(bool, False, "compress the stream (slow links only)"),
    "ciphers": Option(str, None, "comma-separated cipher preference"),
    "kex": Option(
        str,
        None,
        "key exchange algorithms to offer first, comma-separated (the rest stay "
        "as fallbacks); ecdh-sha2-nistp256 costs OpenSSH less CPU than curve25519",
    ),
    "rekey_bytes": Option(int, None, "rekey after this many bytes", minimum=1, maximum=2**62),
    "rekey_packets": Option(int, None, "rekey after this many packets", minimum=1, maximum=2**62),
    "proxy_jump": Option(
        str,
        None,
        "jump host(s), user@host[:port] or ssh:// URIs, comma-separated "
        "('none' ignores ssh_config's ProxyJump)",
    ),
}

#: Opens a jump host's ``ssh://`` transport: ``Transport.peer_opener``.
PeerOpener = Callable[[str, Mapping[str, Any]], Any]


class SSHLogin:
    """Where one SSH target is and how to log in to it: ``connect()`` gives a logged-in
    paramiko transport. ``settings`` holds ``LOGIN_OPTIONS`` (it is the transport's own
    dict, so secrets it forgets are forgotten here too)."""

    def __init__(self, scheme: str, target: Any, settings: Mapping[str, Any]) -> None:
        if not target.host:
            raise TargetError(f"{scheme}:// needs a host: {scheme}://user@host[:port]")
        self.target = target
        self.settings = settings
        self.host, self.port, self.user, self.config_keys, jump = self._resolve()
        given = settings.get("proxy_jump")
        self.proxy_jump: str | None = None if given == "none" else (given or jump)
        self.known_hosts = KnownHosts(
            settings["known_hosts"], settings["host_key_policy"], self.host, self.port
        )

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

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

    # ------------------------------------------------------------ connecting
    def connect(self, peer_opener: PeerOpener | None, *, early_channel: bool) -> PipelinedTransport:
        """A logged-in connection; ``early_channel`` sends the first session channel's
        open behind the login (see ``_paramiko.PipelinedTransport``)."""
        sock = self._socket(peer_opener)
        timeout = self.settings["timeout"]
        try:
            client = PipelinedTransport(sock)
        except BaseException:
            sock.close()
            raise
        client.banner_timeout = timeout
        client.auth_timeout = timeout
        try:
            with map_errors(f"connecting to {self.where} failed", error=ConnectError):
                self._configure(client)
                try:
                    with map_errors(
                        f"SSH handshake with {self.where} failed within {timeout:g} s",
                        error=ConnectError,
                        hint=" (is it an SSH server?)",
                    ):
                        client.start_client(timeout=timeout)
                except ConnectError as exc:
                    dropped = self._handshake_failed(exc)
                    if dropped is None:
                        raise
                    raise dropped from exc.__cause__
                if getattr(client, "host_key", None) is None:  # start_client gave up quietly
                    raise self._handshake_timed_out()
                self.known_hosts.check(client.get_remote_server_key())
                client.early_channel = early_channel
                authenticate(
                    client,
                    self.user,
                    self.where,
                    candidate_keys(self.settings, self.config_keys),
                    self.settings.get("password"),
                )
                if self.settings["keepalive"]:
                    client.set_keepalive(int(max(1, self.settings["keepalive"])))
        except BaseException:
            client.close()
            with contextlib.suppress(Exception):
                sock.close()  # paramiko's close() skips a transport that never started
            raise
        return client

    def _socket(self, peer_opener: PeerOpener | None) -> Any:
        if self.proxy_jump:
            return self._through_jump(self.proxy_jump, peer_opener)
        policy = self.retry_policy
        timeout = self.settings["timeout"]
        attempt = 0
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=timeout)
            except OSError as exc:
                if policy.retries_after(exc, attempt):
                    policy.sleep(policy.pause(attempt))
                    attempt += 1
                    continue
                raise self._unreachable(exc, attempt + 1) from exc
            # paramiko leaves Nagle on; every small packet would wait.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return quick_ack(sock, timeout)

    @property
    def retry_policy(self) -> ConnectRetry:
        """Which failed connects are tried again, how often, with what pauses."""
        return ConnectRetry(
            retries=self.settings["connect_retries"],
            backoff=self.settings["retry_backoff"],
            max_pause=_MAX_PAUSE,
            definite=self.settings["retry_refused"],
        )

    def _unreachable(self, exc: OSError, attempts: int) -> ConnectError:
        """The error for a TCP connect that failed ``attempts`` times, the last with ``exc``:
        the failure, the attempts, and the usual fix."""
        definite = self.retry_policy.definite
        kind = connect_failure(exc)
        what = FAILURE_WORDS.get(kind) or exc.strerror or str(exc) or type(exc).__name__
        fix = _FIXES.get(kind, "check the host and port")
        error: type[ConnectError] = ConnectError
        if isinstance(exc, socket.gaierror):
            if kind != "unresolvable":  # the resolver failed for now (EAI_AGAIN)
                what = f"the host name did not resolve ({exc.strerror})"
                fix = "is a DNS server reachable? check the host name"
            if self.host != self.target.host:
                fix += f", and the HostName ssh_config gives {self.target.host!r}"
            else:
                fix += " (or give it a HostName in ssh_config)"
        elif kind == "timeout":
            what = f"timed out within {self.settings['timeout']:g} s"
            error = ConnectTimeout
        if kind == "refused" and not definite:
            fix += " (retry_refused=true waits for a host still booting)"
        tried = attempts_made(attempts, an_answer=kind in DEFINITE and not definite)
        return error(f"cannot connect to {self.host}:{self.port}: {what} ({tried}): {fix}")

    def _handshake_failed(self, exc: ConnectError) -> ConnectError | None:
        """The error for an SSH handshake the server never answered or dropped before its
        banner; None for any other failure, whose own error says it."""
        if connect_failure(exc) == "timeout":
            return self._handshake_timed_out()
        if connect_failure(exc) != "reset" and not _ends_in_eof(exc):
            return None
        return ConnectError(
            f"SSH handshake with {self.where} failed: the connection was closed before "
            f"the server's banner: {_FIXES['reset']}, or it is not an SSH server"
        )

    def _handshake_timed_out(self) -> ConnectTimeout:
        return ConnectTimeout(
            f"SSH handshake with {self.where} failed: no banner within "
            f"{self.settings['timeout']:g} s: is it an SSH server on that port? raise "
            "timeout= for a slow or busy one"
        )

    def _through_jump(self, spec: str, peer_opener: PeerOpener | None) -> paramiko.Channel:
        """A ``direct-tcpip`` channel from the (shared, kept) jump host to the target.

        The layer above opens the jump host (``peer_opener``): through
        ``trainlab.connect`` it is an ordinary live session from the registry, so
        every session through the same jump host shares its one connection. The
        jump takes this session's login options unless its URI gives its own.
        """
        uri, options = jump_login(spec, self.settings)
        if peer_opener is None:
            raise TargetError(
                f"proxy_jump needs a way to open the jump host {uri}: "
                "connect with trainlab.connect(), which shares one jump session"
            )
        jump = peer_opener(uri, options)
        if getattr(jump, "scheme", None) != "ssh" or not hasattr(jump, "open_tunnel"):
            raise TargetError(f"the jump host {uri} is not an ssh:// target")
        channel: paramiko.Channel = jump.open_tunnel(self.host, self.port, self.settings["timeout"])
        return channel

    def _configure(self, client: PipelinedTransport) -> None:
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
        known = [name for name in self.known_hosts.key_types() if name in security.key_types]
        if known:  # prefer the key types we can verify, as OpenSSH does
            security.key_types = tuple(known) + tuple(
                k for k in security.key_types if k not in known
            )
        packetizer = client.packetizer
        if self.settings.get("rekey_bytes"):
            packetizer.REKEY_BYTES = self.settings["rekey_bytes"]
        if self.settings.get("rekey_packets"):
            packetizer.REKEY_PACKETS = self.settings["rekey_packets"]


def _ends_in_eof(exc: BaseException) -> bool:
    """Whether ``exc`` (a paramiko error, raised while handling another) came from the
    connection's end: paramiko reads a closed socket as ``EOFError``."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, EOFError):
            return True
        seen += 1
        current = current.__cause__ or current.__context__
    return False


def open_subsystem(
    client: paramiko.Transport, name: str, where: str, timeout: float
) -> paramiko.Channel | None:
    """A session channel running the server's subsystem ``name``; None when the server
    refused it (sshd has no such ``Subsystem`` line). Waits at most ``timeout`` for
    the channel and for the answer to the request (``ConnectError`` past it)."""
    with map_errors(f"cannot open a channel to {where}", error=ConnectError):
        channel = client.open_session(timeout=timeout)
    try:
        with map_errors(f"cannot start the {name!r} subsystem on {where}", error=ConnectError):
            started = invoke_subsystem(channel, name, timeout)
    except BaseException:
        channel.close()
        raise
    if started:
        return channel
    channel.close()
    if not client.is_active():
        raise ConnectError(
            f"the connection to {where} closed while starting the {name!r} subsystem"
        )
    return None
