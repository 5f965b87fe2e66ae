"""Hosts whose login shell is not bash, for the shell tests (they need root).

``shell_hosts`` / ``login_shell``: one system user per login shell (bash, dash,
zsh, mksh, fish, tcsh) on a private sshd. ``busybox_host``: a user chrooted into
a directory that holds BusyBox and nothing else (no bash, no /etc/os-release),
as on Alpine or a router. Users and the chroot are made for the run, with random
names, and removed after it, also when a step of making them fails.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from trainlab.sandbox.sshd import INSTALL_HINT, SSHServer, sshd_path

# Login shell -> the Debian package that installs it.
LOGIN_SHELLS = {
    "bash": "bash",
    "dash": "dash",
    "zsh": "zsh",
    "mksh": "mksh",
    "fish": "fish",
    "tcsh": "tcsh",
}
# Per-run names, so two test runs on one machine never share (or delete) users.
_RUN = secrets.token_hex(3)
SHELL_USERS = {shell: f"tl-sh-{shell}-{_RUN}" for shell in LOGIN_SHELLS}
BUSYBOX_USER = f"tl-bb-{_RUN}"
# Login shells that are no POSIX shell at all, as scripts that answer what the real ones
# answer to a command starting with `exec` (a Windows OpenSSH server's cmd.exe or
# PowerShell, a router's CLI). They stand in for hosts this machine cannot run: they show
# what the transport does with such an answer, not that the real shells answer so.
STAND_INS = {
    "cmd": (
        "echo \"'exec' is not recognized as an internal or external command,\" >&2\n"
        "echo 'operable program or batch file.' >&2\nexit 1\n"
    ),
    "powershell": (
        "echo \"exec : The term 'exec' is not recognized as the name of a cmdlet, function, "
        'script file, or operable program." >&2\nexit 1\n'
    ),
    "device": "echo \"% Invalid input detected at '^' marker.\"\nexit 0\n",
}
STAND_IN_USERS = {name: f"tl-si-{name}-{_RUN}" for name in STAND_INS}
STAND_IN_DIR = Path(f"/var/lib/trainlab-stand-ins-{_RUN}")
# sshd's ChrootDirectory must be owned by root, and so must every directory above
# it, none writable by group or others: not under /tmp. /var/lib is such a path.
CHROOT_PARENT = Path("/var/lib")
ALPINE_RELEASE = "3.20.3"
# A file in the chroot, for SFTP reads: its path as the chrooted user sees it.
BUSYBOX_HOME = f"/home/{BUSYBOX_USER}"
BUSYBOX_FILE = f"{BUSYBOX_HOME}/greeting.txt"
BUSYBOX_FILE_TEXT = "hello from a BusyBox-only host\n"
BUSYBOX_INSTALL = "apt-get install -y busybox-static"


class ShellHost(NamedTuple):
    """A login to one test user: ``(name, uri, options)`` for ``trainlab.connect``.

    ``name`` is the user's login shell (``fish``, ``busybox``, ...); ``options`` trust
    the server through a known_hosts file of the test's own.
    """

    name: str
    uri: str
    options: dict[str, Any]

    @property
    def user(self) -> str:
        return urlsplit(self.uri).username or ""

    @property
    def port(self) -> int:
        return urlsplit(self.uri).port or 22

    def paramiko_client(self) -> Any:
        """A connected ``paramiko.SSHClient`` with the same key and host key trust."""
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(self.options["known_hosts"])
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            "127.0.0.1",
            port=self.port,
            username=self.user,
            key_filename=self.options["key_file"],
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
        return client


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(
            f"{what} create system users and need root: "
            "run the suite as root, as `bash .ci/run` does in CI"
        )
    if sshd_path() is None:
        pytest.fail(f"these tests need OpenSSH's sshd, which is not installed: {INSTALL_HINT}")


def shell_path(shell: str) -> str:
    """Where ``shell`` is installed; the test fails, naming the install, when it is not."""
    path = shutil.which(shell)
    if path is None:
        pytest.fail(
            f"the shell tests need {shell}, which is not installed: "
            f"apt-get install -y {LOGIN_SHELLS[shell]}"
        )
    return path


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def add_user(cleanup: contextlib.ExitStack, name: str, shell: str, home: str) -> pwd.struct_passwd:
    """A system user whose removal is registered on ``cleanup`` before it is made.

    The password is ``*``: no password logs in, yet the account is not locked
    (``!``), which sshd without PAM would refuse even for a key. A name already
    taken is an error, never a user to remove afterwards.
    """
    if _user_exists(name):
        raise RuntimeError(f"a user named {name} already exists; the shell tests make their own")
    cleanup.callback(_remove_user, name, home)
    _run(
        "useradd",
        "--shell",
        shell,
        "--home-dir",
        home,
        "--no-create-home",
        "--user-group",
        "--password",
        "*",
        name,
    )
    return pwd.getpwnam(name)


def _remove_user(name: str, home: str) -> None:
    """Remove ``name`` (with its processes' claim: ``--force``) and ``home``; say what stayed."""
    subprocess.run(["userdel", "--force", name], capture_output=True, check=False)
    shutil.rmtree(home, ignore_errors=True)
    left = [
        what for what, there in ((name, _user_exists(name)), (home, Path(home).exists())) if there
    ]
    if left:
        raise RuntimeError(f"the shell tests could not remove {', '.join(left)}")


def _authorize(home: Path, user: pwd.struct_passwd, public_key: str) -> None:
    """``home``/.ssh/authorized_keys with ``public_key``, all owned by ``user``."""
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key)
    keys.chmod(0o600)
    for path in (home, ssh_dir, keys):
        os.chown(path, user.pw_uid, user.pw_gid)


def _client_public_key(server: SSHServer) -> str:
    return (server.dir / f"client_{server.key_types[0]}.pub").read_text()


def _host(server: SSHServer, name: str, user: str, tmp_path: Path) -> ShellHost:
    known = tmp_path / "known_hosts"
    if not known.exists():
        known.write_text(Path(server.known_hosts).read_text())
    options = {**server.client_options, "known_hosts": str(known)}
    return ShellHost(name, f"ssh://{user}@127.0.0.1:{server.port}", options)


# -- one user per login shell --------------------------------------------------------------


@pytest.fixture(scope="session")
def shells_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """An OpenSSH server that logs each of ``SHELL_USERS`` in to its own shell, by key."""
    _need_root("the login shell tests")
    shells = {shell: shell_path(shell) for shell in LOGIN_SHELLS}
    with contextlib.ExitStack() as cleanup:
        users = {
            name: add_user(cleanup, name, shells[shell], f"/home/{name}")
            for shell, name in SHELL_USERS.items()
        }
        cleanup.callback(shutil.rmtree, STAND_IN_DIR, ignore_errors=True)
        STAND_IN_DIR.mkdir(mode=0o755)
        for kind, name in STAND_IN_USERS.items():
            script = STAND_IN_DIR / kind
            script.write_text("#!/bin/sh\n" + STAND_INS[kind])
            script.chmod(0o755)
            users[name] = add_user(cleanup, name, str(script), f"/home/{name}")
        everyone = [*SHELL_USERS.values(), *STAND_IN_USERS.values()]
        server = SSHServer(
            tmp_path_factory.mktemp("shells-sshd"),
            private_home=False,  # each user's own home, and the rc files its shell reads there
            config=f"Match User {','.join(everyone)}\n"
            "    AuthorizedKeysFile .ssh/authorized_keys\n",
        )
        cleanup.enter_context(server)  # stopped before the users go
        # sshd reads authorized_keys at each login: the client key exists once it runs.
        for user in users.values():
            _authorize(Path(user.pw_dir), user, _client_public_key(server))
        yield server


@pytest.fixture
def shell_hosts(shells_sshd: SSHServer, tmp_path: Path) -> dict[str, ShellHost]:
    """Every login shell's test user: shell name -> ``ShellHost(name, uri, options)``."""
    return {shell: _host(shells_sshd, shell, name, tmp_path) for shell, name in SHELL_USERS.items()}


@pytest.fixture
def stand_in_hosts(shells_sshd: SSHServer, tmp_path: Path) -> dict[str, ShellHost]:
    """Users whose login shell stands in for no POSIX shell: ``cmd``, ``powershell``,
    ``device`` -> ``ShellHost``."""
    return {kind: _host(shells_sshd, kind, name, tmp_path) for kind, name in STAND_IN_USERS.items()}


@pytest.fixture(params=list(LOGIN_SHELLS))
def login_shell(request: pytest.FixtureRequest, shell_hosts: dict[str, ShellHost]) -> ShellHost:
    """Each login shell's test user in turn (the test runs once per shell)."""
    host: ShellHost = shell_hosts[request.param]
    return host


# -- a BusyBox-only host ---------------------------------------------------------------------


def busybox_path() -> str:
    """BusyBox's static build; the test fails, naming the install, when it is missing."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"the BusyBox host tests need busybox-static, which is not installed: {BUSYBOX_INSTALL}"
    )


def build_busybox_root(root: Path, user: pwd.struct_passwd, busybox: str) -> None:
    """Fill ``root`` with BusyBox, its applets, /dev/null, zero and urandom, and the /etc
    ``user`` needs.

    Every applet is a symlink to /bin/busybox, so /bin/sh is BusyBox's ash; there is
    no bash (BusyBox can be built with a ``bash`` applet: it is left out) and no
    /etc/os-release, but an /etc/alpine-release, as on a minimal Alpine.
    """
    root.chmod(0o755)
    (root / "bin").mkdir()
    shutil.copy(busybox, root / "bin" / "busybox")
    (root / "bin" / "busybox").chmod(0o755)
    applets = subprocess.run(
        [busybox, "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if Path(applet).name in ("busybox", "bash"):
            continue
        link = root / applet
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to("/bin/busybox")
    (root / "dev").mkdir()
    # The character devices every Linux host has, even a container's: null, zero, urandom.
    for name, minor in (("null", 3), ("zero", 5), ("urandom", 9)):
        os.mknod(root / "dev" / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    (root / "dev" / "null").chmod(0o666)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        f"{user.pw_name}:x:{user.pw_uid}:{user.pw_gid}::{BUSYBOX_HOME}:/bin/sh\n"
    )
    (etc / "group").write_text(f"root:x:0:\n{user.pw_name}:x:{user.pw_gid}:\n")
    (etc / "alpine-release").write_text(ALPINE_RELEASE + "\n")
    home = root / BUSYBOX_HOME.lstrip("/")
    home.mkdir(parents=True)
    greeting = home / "greeting.txt"
    greeting.write_text(BUSYBOX_FILE_TEXT)
    os.chown(greeting, user.pw_uid, user.pw_gid)
    works = subprocess.run(
        ["chroot", str(root), "/bin/sh", "-c", "echo ok"], capture_output=True, check=False
    )
    if works.stdout != b"ok\n":
        pytest.fail(
            f"{busybox} does not run alone in a chroot (is it the static build?): "
            f"{works.stderr.decode(errors='replace').strip()}; {BUSYBOX_INSTALL}"
        )


@pytest.fixture(scope="session")
def busybox_root() -> Iterator[Path]:
    """The BusyBox-only directory ``BUSYBOX_USER`` is chrooted into, and that user.

    The user's home on this machine is never made: sshd chroots before its chdir,
    so the home it uses is the one inside.
    """
    _need_root("the BusyBox host tests")
    busybox = busybox_path()
    with contextlib.ExitStack() as cleanup:
        root = CHROOT_PARENT / f"trainlab-busybox-{_RUN}"
        cleanup.callback(_remove_tree, root)
        root.mkdir(mode=0o755)
        user = add_user(cleanup, BUSYBOX_USER, "/bin/sh", BUSYBOX_HOME)
        build_busybox_root(root, user, busybox)
        yield root


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        raise RuntimeError(f"the BusyBox host tests could not remove {path}")


@pytest.fixture(scope="session")
def busybox_sshd(
    busybox_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SSHServer]:
    """An OpenSSH server that chroots ``BUSYBOX_USER`` into ``busybox_root``.

    No ForceCommand: sshd runs commands with the user's shell, /bin/sh, which in
    the chroot is BusyBox's ash. SFTP is sshd's internal-sftp (the server's
    ``Subsystem``), which needs nothing inside the chroot.
    """
    server = SSHServer(
        tmp_path_factory.mktemp("busybox-sshd"),
        private_home=False,
        config=f"Match User {BUSYBOX_USER}\n"
        f"    ChrootDirectory {busybox_root}\n"
        f"    AuthorizedKeysFile {busybox_root}{BUSYBOX_HOME}/.ssh/authorized_keys\n",
    )
    with server:
        user = pwd.getpwnam(BUSYBOX_USER)
        home = busybox_root / BUSYBOX_HOME.lstrip("/")
        _authorize(home, user, _client_public_key(server))
        yield server


@pytest.fixture
def busybox_host(busybox_sshd: SSHServer, tmp_path: Path) -> ShellHost:
    """The chrooted BusyBox user: ``ShellHost("busybox", uri, options)``."""
    return _host(busybox_sshd, "busybox", BUSYBOX_USER, tmp_path)
