"""The shell test bed is what it claims: each user's login shell really runs its commands,
and the BusyBox host has BusyBox's sh and no bash. Raw paramiko, not trainlab, so these
hold whatever the transport supports."""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from tests import shells
from tests.shells import (
    ALPINE_RELEASE,
    BUSYBOX_FILE,
    BUSYBOX_FILE_TEXT,
    BUSYBOX_USER,
    LOGIN_SHELLS,
    SHELL_USERS,
    ShellHost,
)

pytestmark = pytest.mark.ssh

# Per login shell: a probe in its own syntax (the shell's pid differs: fish has no $$),
# and a pattern for the version its own variable reports.
PROBES = {
    "bash": ("readlink /proc/$$/exe; echo $BASH_VERSION", r"\d+\.\d+\.\d+\(\d+\)-release"),
    "dash": ("readlink /proc/$$/exe; echo ${BASH_VERSION:-none}${ZSH_VERSION:-}", r"none"),
    "zsh": ("readlink /proc/$$/exe; echo $ZSH_VERSION", r"\d+\.\d+(\.\d+)?"),
    "mksh": ("readlink /proc/$$/exe; echo $KSH_VERSION", r"@\(#\)MIRBSD KSH R\d+.*"),
    "fish": ("readlink /proc/$fish_pid/exe; echo $FISH_VERSION", r"\d+\.\d+\.\d+.*"),
    "tcsh": ("readlink /proc/$$/exe; echo $tcsh", r"\d+\.\d+\.\d+"),
}


def run(client: Any, command: str) -> tuple[str, str, int]:
    """One exec channel: (stdout, stderr, exit status)."""
    _, stdout, stderr = client.exec_command(command, timeout=20)
    out = stdout.read().decode()
    err = stderr.read().decode()
    return out, err, stdout.channel.recv_exit_status()


@pytest.fixture
def client(login_shell: ShellHost) -> Any:
    client = login_shell.paramiko_client()
    yield client
    client.close()


@pytest.fixture
def busybox(busybox_host: ShellHost) -> Any:
    client = busybox_host.paramiko_client()
    yield client
    client.close()


def test_every_login_shell_has_a_probe() -> None:
    assert set(PROBES) == set(LOGIN_SHELLS)
    assert {"bash", "dash", "zsh", "mksh", "fish", "tcsh"} == set(SHELL_USERS)


def test_the_login_shell_runs_the_command(login_shell: ShellHost, client: Any) -> None:
    shell = login_shell.name
    expected = os.path.realpath(shutil.which(shell) or shell)
    assert pwd.getpwnam(login_shell.user).pw_shell.endswith("/" + shell)
    probe, version = PROBES[shell]
    out, err, status = run(client, probe)
    assert status == 0, err
    exe, reported = out.splitlines()
    assert os.path.realpath(exe) == expected
    assert re.fullmatch(version, reported), reported
    out, _, status = run(client, "id -un")
    assert (out, status) == (login_shell.user + "\n", 0)


def test_the_login_shell_keeps_its_own_syntax(login_shell: ShellHost, client: Any) -> None:
    """A POSIX assignment parses in the sh family and not in fish or tcsh: the bed can
    tell a wrapper that parses everywhere from one that parses in sh only."""
    out, err, status = run(client, "tl_x=42; echo $tl_x")
    if login_shell.name == "fish":
        # fish 3.6 refuses the line, yet `fish -c` exits 0 after a parse error:
        # only the missing output and the message tell.
        assert out == ""
        assert "Unsupported use of '='" in err
    elif login_shell.name == "tcsh":
        assert status != 0
        assert out == ""
        assert "tl_x=42: Command not found." in err
    else:
        assert (out, status) == ("42\n", 0), err


def test_each_user_logs_in_by_the_client_key_only(shell_hosts: dict[str, ShellHost]) -> None:
    import paramiko

    host = shell_hosts["dash"]
    client = paramiko.SSHClient()
    client.load_host_keys(host.options["known_hosts"])
    login = {"port": host.port, "username": host.user, "allow_agent": False, "timeout": 10}
    try:
        with pytest.raises(paramiko.AuthenticationException):
            client.connect("127.0.0.1", password="not-a-password", look_for_keys=False, **login)
    finally:
        client.close()


# -- the BusyBox-only host ------------------------------------------------------------------


def test_busybox_host_runs_busybox_ash(busybox_host: ShellHost, busybox: Any) -> None:
    assert busybox_host.user == BUSYBOX_USER
    out, err, status = run(busybox, "/bin/sh --help 2>&1 | head -1")
    assert status == 0, err
    assert out.startswith("BusyBox v"), out
    out, _, status = run(busybox, 'echo "$0"; readlink /bin/sh; id -un; pwd')
    assert status == 0
    assert out.splitlines() == ["sh", "/bin/busybox", BUSYBOX_USER, f"/home/{BUSYBOX_USER}"]


def test_busybox_host_has_no_bash(busybox: Any) -> None:
    out, err, status = run(busybox, "echo $0; bash -c true; echo $?")
    assert (out, err, status) == ("sh\n127\n", "sh: bash: not found\n", 0)
    out, _, _ = run(busybox, "command -v bash; echo $?")
    assert out == "127\n"
    out, _, _ = run(busybox, "ls /bin/bash /usr/bin/bash 2>&1; echo rc=$?")
    assert out.count("No such file or directory") == 2
    assert out.endswith("rc=1\n")


def test_busybox_host_looks_like_minimal_alpine(busybox: Any) -> None:
    out, _, status = run(busybox, "cat /etc/alpine-release; test -e /etc/os-release; echo $?")
    assert (out, status) == (f"{ALPINE_RELEASE}\n1\n", 0)


def test_busybox_host_reads_files_over_sftp_inside_the_chroot(busybox: Any) -> None:
    sftp = busybox.open_sftp()
    try:
        with sftp.open(BUSYBOX_FILE, "rb") as handle:
            assert handle.read().decode() == BUSYBOX_FILE_TEXT
        assert stat.S_ISREG(sftp.stat(BUSYBOX_FILE).st_mode or 0)
        # This machine's os-release exists; the chroot's does not.
        assert Path("/etc/os-release").exists()
        with pytest.raises(OSError) as info:
            sftp.stat("/etc/os-release")
        assert info.value.errno == errno.ENOENT
        assert "busybox" in sftp.listdir("/bin")
        assert "bash" not in sftp.listdir("/bin")
    finally:
        sftp.close()


def test_busybox_root_is_fit_for_sshd_chroot(busybox_root: Path) -> None:
    """sshd's ChrootDirectory: the directory and each above it owned by root, and
    writable by no one else."""
    for path in (busybox_root, *busybox_root.parents):
        info = path.stat()
        assert info.st_uid == 0, path
        assert not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH), path
    null = (busybox_root / "dev" / "null").stat()
    assert stat.S_ISCHR(null.st_mode)
    assert os.major(null.st_rdev) == 1
    assert os.minor(null.st_rdev) == 3
    assert not (busybox_root / "etc" / "os-release").exists()


# -- the fixtures' own failure paths ----------------------------------------------------------


def test_a_missing_shell_fails_with_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shells.shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y fish$"):
        shells.shell_path("fish")


def _setup_that_breaks(cleanup: contextlib.ExitStack, name: str) -> None:
    shells.add_user(cleanup, name, "/bin/sh", f"/home/{name}")
    Path(f"/home/{name}").mkdir()
    assert pwd.getpwnam(name).pw_shell == "/bin/sh"
    raise RuntimeError("setup broke")


def test_users_made_before_a_setup_failure_are_removed() -> None:
    name = f"tl-sh-gone-{secrets.token_hex(3)}"
    with pytest.raises(RuntimeError, match="setup broke"), contextlib.ExitStack() as cleanup:
        _setup_that_breaks(cleanup, name)
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    assert not Path(f"/home/{name}").exists()
