"""An SSH server on loopback built on asyncssh, for machines without OpenSSH's sshd.

It runs each exec request with ``bash -c`` (a shell request starts ``bash``), as
the user running it, in a private ``HOME``; it serves SFTP on the local
filesystem, forwards signal requests to the command's process group, and
accepts only the client key it generated. Keys are made per run.

It is the sandbox's fallback: OpenSSH's sshd is what the tests and benchmarks
measure when it is installed (``apt-get install -y openssh-server``).

>>> with AsyncSSHServer() as server:                        # doctest: +SKIP
...     trainlab.connect(server.uri, **server.client_options).run("uname -a")
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import tempfile
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from trainlab.errors import TrainlabError
from trainlab.sandbox._base import Background
from trainlab.sandbox.sshd import LoopbackSSH

__all__ = ["AsyncSSHServer", "asyncssh_available", "import_asyncssh"]

_CHUNK = 65536


def import_asyncssh() -> ModuleType:
    """asyncssh, imported without its DSA deprecation warning.

    cryptography 51 deprecates DSA, and asyncssh's ``crypto`` modules touch it at import
    (annotations and a key table), so every import warns although the sandbox never uses
    DSA. That is asyncssh's to change; a notebook user should not see it. Only that
    warning, from asyncssh's own modules, is silenced; the project's tests filter the same
    one (pyproject.toml) for imports that do not come through here.
    """
    with warnings.catch_warnings():
        try:
            from cryptography.utils import CryptographyDeprecationWarning
        except ImportError:  # asyncssh cannot import without it either
            pass
        else:
            warnings.filterwarnings(
                "ignore",
                message="DSA is deprecated",
                category=CryptographyDeprecationWarning,
                module=r"asyncssh\.",
            )
        import asyncssh
    return asyncssh


def asyncssh_available() -> bool:
    """True when asyncssh can be imported."""
    try:
        import_asyncssh()
    except ImportError:
        return False
    return True


class AsyncSSHServer(LoopbackSSH, Background):
    """asyncssh's server on 127.0.0.1, in a thread of this process.

    The same surface as ``SSHServer``: ``uri``, ``client_options``, ``key_file``,
    ``known_hosts``, ``port``, ``user``.
    """

    def __init__(self, workdir: str | os.PathLike[str] | None = None) -> None:
        if not asyncssh_available():
            raise TrainlabError(
                "no SSH server for the sandbox: install OpenSSH's "
                "(apt-get install -y openssh-server) or asyncssh (pip install asyncssh)"
            )
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="trainlab-asshd-"))
        self.user = getpass.getuser()
        self.port = 0
        self.ports: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._children: set[int] = set()
        self._connections: set[Any] = set()

    @property
    def key_file(self) -> str:
        return str(self.dir / "client_ed25519")

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0) -> AsyncSSHServer:
        asyncssh = import_asyncssh()

        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "home").mkdir(exist_ok=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519", comment="trainlab-sandbox-host")
        client_key = asyncssh.generate_private_key("ssh-ed25519", comment="trainlab-sandbox")
        client_key.write_private_key(self.key_file)
        os.chmod(self.key_file, 0o600)
        client_key.write_public_key(self.key_file + ".pub")
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="trainlab-asshd", daemon=True)
        self._thread.start()

        async def listen() -> Any:
            return await asyncssh.create_server(
                None,
                "127.0.0.1",
                0,
                server_host_keys=[host_key],
                authorized_client_keys=authorized,
                process_factory=self._serve,
                sftp_factory=True,
                encoding=None,
                allow_scp=False,
                keepalive_interval=0,
                acceptor=self._accepted,
            )

        try:
            self._server = asyncio.run_coroutine_threadsafe(listen(), loop).result(timeout)
        except BaseException:
            self.stop()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])
        public = host_key.export_public_key().decode().split()
        # Both names of fleet_uris, as OpenSSH's sandbox server has them.
        Path(self.known_hosts).write_text(
            "".join(
                f"[{name}]:{self.port} {public[0]} {public[1]}\n"
                for name in ("127.0.0.1", "localhost")
            )
        )
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = None
        self._server = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _accepted(self, connection: Any) -> None:
        self._connections = {c for c in self._connections if not c.is_closed()}
        self._connections.add(connection)

    async def _shutdown(self) -> None:
        """Stop listening, end every command, and let every session task finish."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for connection in list(self._connections):
            connection.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.wait_closed(), 5)
        self._connections.clear()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ sessions
    def _environment(self) -> dict[str, str]:
        home = str(self.dir / "home")
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        return {
            **keep,
            "HOME": home,
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": "/bin/bash",
        }

    async def _serve(self, process: Any) -> None:
        asyncssh = import_asyncssh()

        command = process.command
        argv = ["bash", "-c", command] if command else ["bash", "--noprofile", "--norc"]
        child = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._environment(),
            cwd=str(self.dir / "home"),
            start_new_session=True,  # its own process group, for signals
        )
        self._children.add(child.pid)

        async def feed() -> None:
            assert child.stdin is not None
            while True:
                try:
                    data = await process.stdin.read(_CHUNK)
                except asyncssh.SignalReceived as exc:
                    number = getattr(signal, f"SIG{exc.signal}", None)
                    if number is not None:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(child.pid, number)
                    continue
                except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
                    continue
                except (asyncssh.Error, OSError):
                    data = b""
                if not data:
                    with contextlib.suppress(OSError):
                        child.stdin.close()
                    return
                try:
                    child.stdin.write(data)
                    await child.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    return

        async def pump(source: Any, sink: Any) -> None:
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    return
                sink.write(data)
                with contextlib.suppress(Exception):
                    await sink.drain()

        feeding = asyncio.ensure_future(feed())
        try:
            await asyncio.gather(
                pump(child.stdout, process.stdout), pump(child.stderr, process.stderr)
            )
            status = await child.wait()
        except (asyncssh.Error, OSError):  # the client went away
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGHUP)
            status = await child.wait()
        finally:
            feeding.cancel()
            self._children.discard(child.pid)
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                # Reap it: a Popen collected unreaped warns that it is still running.
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(child.wait(), 2)
            transport = getattr(child, "_transport", None)  # closes its pipes too
            if transport is not None:
                transport.close()
        with contextlib.suppress(Exception):
            process.exit(status if status >= 0 else 128 - status)
