"""A private OpenSSH server on a loopback port, with keys generated for the run.

>>> with SSHServer() as server:          # doctest: +SKIP
...     s = trainlab.connect(server.uri, **server.client_options)
...     s.run("hostname")
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError
from trainlab.sandbox._base import Background

__all__ = ["INSTALL_HINT", "SSHServer", "sshd_path"]

INSTALL_HINT = "apt-get install -y openssh-server   (Debian/Ubuntu; it provides /usr/sbin/sshd)"


def sshd_path() -> str | None:
    """The sshd executable, or ``None`` when OpenSSH's server is not installed."""
    for candidate in ("/usr/sbin/sshd", "/usr/local/sbin/sshd", shutil.which("sshd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def die_with_parent() -> None:
    """In the child before exec: SIGTERM it when its parent dies (Linux prctl)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def answers_ssh(address: tuple[str, int], timeout: float) -> bool:
    """Whether an SSH server greets on ``address`` now."""
    with contextlib.suppress(OSError), socket.create_connection(address, timeout=timeout) as sock:
        return sock.recv(4).startswith(b"SSH-")
    return False


def end_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Terminate ``process`` and reap it, killing it if it does not go in ``timeout``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def distinct_uris(user: str, ports: list[int], count: int) -> list[str]:
    """Up to ``4 * len(ports)`` distinct ssh:// URIs for one loopback server."""
    uris = [
        f"ssh://{who}{name}:{port}"
        for who in (f"{user}@", "")
        for name in ("127.0.0.1", "localhost")
        for port in ports
    ]
    if not 0 < count <= len(uris):
        from trainlab.errors import TargetError

        raise TargetError(
            f"one server gives 1 to {len(uris)} distinct targets ({len(ports)} ports): "
            f"ask for fewer, or start it with more ports"
        )
    return uris[:count]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LoopbackSSH:
    """What a sandbox SSH server tells clients: its URIs and the options that trust it.

    Subclasses set ``dir`` (with ``known_hosts`` in it), ``key_file``, ``user``,
    ``port`` and ``ports``.
    """

    dir: Path
    user: str
    port: int
    ports: list[int]

    @property
    def key_file(self) -> str:  # pragma: no cover - every server defines it
        raise NotImplementedError

    @property
    def known_hosts(self) -> str:
        """A known_hosts file that already trusts this server."""
        return str(self.dir / "known_hosts")

    @property
    def uri(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def fleet_uris(self, count: int) -> list[str]:
        """``count`` distinct target URIs that all reach this server: its ports, by two
        names, with and without the user (each a different target to the live-session
        registry, so a fleet opens one connection per URI)."""
        return distinct_uris(self.user, self.ports or [self.port], count)

    @property
    def client_options(self) -> dict[str, Any]:
        """Options for ``trainlab.connect`` that reach this server and trust it."""
        return {
            "key_file": self.key_file,
            "known_hosts": self.known_hosts,
            "agent": False,
            "look_for_keys": False,
            "ssh_config": "",
        }


class SSHServer(LoopbackSSH, Background):
    """OpenSSH's sshd in the foreground on 127.0.0.1, stopped by its pid.

    The login user is the one running the server: sshd can only switch users
    when it runs as root, and then it logs the current user in as well.

    Parameters
    ----------
    workdir
        Where keys, config and logs go (a temporary directory by default).
    config
        Extra ``sshd_config`` lines (``Match`` blocks, ``ForceCommand``, ...).
    key_types
        Client key types to generate; the first is ``key_file``.
    passwords
        Accept password logins (for users with a password; off by default).
    extra_ports
        Listen on this many more loopback ports (``ports``, ``uris``; sshd takes
        16 in all), each trusted in ``known_hosts`` as ``127.0.0.1`` and as
        ``localhost``: many distinct targets from one server.
    private_home
        Give sessions a private, empty ``HOME`` (``SetEnv HOME=...``), so the login
        shell reads no ``~/.bashrc``: here root's runs ``pyenv init``, 80 ms on
        every command, which would drown what the tests and benchmarks measure.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        config: str = "",
        key_types: tuple[str, ...] = ("ed25519",),
        private_home: bool = True,
        passwords: bool = False,
        extra_ports: int = 0,
    ) -> None:
        executable = sshd_path()
        if executable is None:
            raise TrainlabError(f"OpenSSH's sshd is not installed; install it: {INSTALL_HINT}")
        self.executable = executable
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="trainlab-sshd-"))
        self.extra_config = config
        self.key_types = key_types
        self.private_home = private_home
        self.passwords = passwords
        self.user = getpass.getuser()
        self.port = 0
        self.extra_ports = extra_ports
        self.ports: list[int] = []
        self.process: subprocess.Popen[bytes] | None = None

    # -- files ---------------------------------------------------------------
    @property
    def key_file(self) -> str:
        """The client's private key (the first of ``key_types``)."""
        return str(self.dir / f"client_{self.key_types[0]}")

    @property
    def uris(self) -> list[str]:
        """One URI per listening port (``uri`` first)."""
        return [f"ssh://{self.user}@127.0.0.1:{port}" for port in self.ports]

    @property
    def host_public_key(self) -> str:
        """The server's ed25519 host key, as a ``known_hosts`` line's key part."""
        return (self.dir / "host_ed25519.pub").read_text().strip()

    def trust(self, *addresses: tuple[str, int], into: str | None = None) -> None:
        """Trust this server's host key at more ``(host, port)`` addresses (a proxy's,
        a relay's, a namespace's) in ``into`` (by default its own ``known_hosts``)."""
        kind, key = self.host_public_key.split()[:2]
        with open(into or self.known_hosts, "a") as known:
            known.writelines(f"[{host}]:{port} {kind} {key}\n" for host, port in addresses)

    def _keygen(self, path: Path, kind: str, comment: str) -> None:
        if path.exists():
            return
        bits = ["-b", "2048"] if kind == "rsa" else []
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, *bits, "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
        )

    def _prepare(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._keygen(self.dir / "host_ed25519", "ed25519", "trainlab-sandbox-host")
        authorized = []
        for kind in self.key_types:
            key = self.dir / f"client_{kind}"
            self._keygen(key, kind, "trainlab-sandbox-client")
            authorized.append(key.with_suffix(".pub").read_text().strip())
        (self.dir / "authorized_keys").write_text("\n".join(authorized) + "\n")
        os.chmod(self.dir / "authorized_keys", 0o600)
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
        self.port = self.port or _free_port()
        if len(self.ports) != 1 + self.extra_ports:
            self.ports = [self.port]
            while len(self.ports) < 1 + self.extra_ports:
                port = _free_port()
                if port not in self.ports:
                    self.ports.append(port)
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    *(f"ListenAddress 127.0.0.1:{port}" for port in self.ports[1:]),
                    f"HostKey {self.dir / 'host_ed25519'}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "StrictModes no",
                    "UsePAM no",
                    f"PasswordAuthentication {'yes' if self.passwords else 'no'}",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    "MaxStartups 200:30:400",
                    "MaxSessions 100",
                    "ClientAliveInterval 0",
                    f"SetEnv HOME={home}" if self.private_home else "",
                    self.extra_config,
                    "",
                ]
            )
        )
        host = self.host_public_key.split()
        (self.dir / "known_hosts").write_text(
            "".join(
                f"[{name}]:{port} {host[0]} {host[1]}\n"
                for port in self.ports
                for name in ("127.0.0.1", "localhost")
            )
        )
        return config

    # -- lifecycle -----------------------------------------------------------
    def start(self, timeout: float = 10.0) -> SSHServer:
        """Start sshd and wait (at most ``timeout`` seconds) until it accepts connections."""
        config = self._prepare()
        log = open(self.dir / "sshd.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.process = subprocess.Popen(
            [self.executable, "-D", "-e", "-f", str(config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # Only prctl runs between fork and exec: safe with threads, and no
            # orphaned server survives this process being killed.
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                why = f"sshd exited at start ({self.process.returncode}): {self.log_text()[-2000:]}"
                self.stop()  # closes the log and removes the keys
                raise TrainlabError(why)
            if answers_ssh(("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.02)
        self.stop()
        raise TrainlabError(f"sshd did not answer on 127.0.0.1:{self.port} within {timeout} s")

    def log_text(self) -> str:
        """What sshd logged so far (empty if the log cannot be read)."""
        with contextlib.suppress(OSError):
            return (self.dir / "sshd.log").read_text(errors="replace")
        return ""

    def connection_pids(self) -> list[int]:
        """Pids of sshd's per-connection children (to cut connections in tests)."""
        if self.process is None:
            return []
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        """Stop sshd and the processes serving its connections. Idempotent."""
        if self.process is not None and self.process.poll() is None:
            # The listener's children serve connections; stop them with it.
            for pid in self.connection_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            end_process(self.process)
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
