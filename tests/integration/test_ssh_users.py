"""Password logins and sudo, with system users the fixture creates (needs root and sudo)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

import trainlab
from tests.integration.test_local import reaped, wait_gone
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh
MODES = ["exec", "shell"]


def options(server: SSHServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    known = tmp_path / "known_hosts"
    known.write_text(Path(server.known_hosts).read_text())
    return {
        "known_hosts": str(known),
        "agent": False,
        "look_for_keys": False,
        "ssh_config": "",
        **extra,
    }


def uri(server: SSHServer, user: str) -> str:
    return f"ssh://{user}@127.0.0.1:{server.port}"


def sudo_session(
    server: SSHServer,
    users: dict[str, tuple[str, str]],
    tmp_path: Path,
    kind: str,
    **extra: Any,
) -> trainlab.Session:
    """A sudo session as the fixture's ``kind`` user, logged in with its password."""
    name, password = users[kind]
    return trainlab.connect(
        uri(server, name), **options(server, tmp_path, password=password, sudo=True, **extra)
    )


def test_password_login(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    password = test_users["pass"][1]
    s = trainlab.connect(
        uri(users_sshd, test_users["pass"][0]), **options(users_sshd, tmp_path, password=password)
    )
    assert s.run("id -un").stdout == test_users["pass"][0] + "\n"
    with pytest.raises(trainlab.ConnectError, match="tried password") as info:
        trainlab.connect(
            uri(users_sshd, test_users["pass"][0]),
            **options(users_sshd, tmp_path, password="not-it-42"),
        ).open()
    assert "not-it-42" not in str(info.value)
    assert password not in repr(s) + s._repr_html_() + s.metrics.to_csv()


@pytest.mark.parametrize("mode", MODES)
def test_sudo_with_a_password(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path, mode: str
) -> None:
    password = test_users["pass"][1]
    s = sudo_session(users_sshd, test_users, tmp_path, "pass", mode=mode, sudo_password=password)
    r = s.run("id -un; echo err >&2; exit 3")
    assert (r.stdout, r.stderr, r.exit_status) == ("root\n", "err\n", 3)
    batch = s.run_many(["id -un", "printf x >&2"])
    assert [(b.stdout, b.stderr) for b in batch] == [("root\n", ""), ("", "x")]
    assert "root:" in s.read_text("/etc/shadow")
    assert s.stat("/etc/shadow").size > 0
    exposed = repr(s) + s._repr_html_() + s.metrics.to_csv() + trainlab.sessions().to_csv()
    assert password not in exposed
    nobody = trainlab.connect(
        uri(users_sshd, test_users["pass"][0]),
        mode=mode,
        **options(
            users_sshd,
            tmp_path,
            password=password,
            sudo=True,
            sudo_password=password,
            sudo_user="nobody",
        ),
    )
    assert nobody.run("id -un").stdout == "nobody\n"


@pytest.mark.parametrize("mode", MODES)
def test_sudo_without_password_rules(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path, mode: str
) -> None:
    s = sudo_session(users_sshd, test_users, tmp_path, "nopass", mode=mode)
    assert s.run("id -un").stdout == "root\n"
    assert s.read_text("/etc/shadow").startswith("root:")


@pytest.mark.parametrize("mode", MODES)
def test_sudo_refusals_are_clear(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path, mode: str
) -> None:
    login = test_users["pass"][1]
    base = options(users_sshd, tmp_path, password=login, sudo=True)
    target = uri(users_sshd, test_users["pass"][0])
    with pytest.raises(trainlab.ConnectError, match=r"sudo on .* refused.*pass sudo_password="):
        trainlab.connect(target, mode=mode, reuse=False, **base).run("id")
    with pytest.raises(trainlab.ConnectError, match="sudo_password is wrong") as info:
        trainlab.connect(target, mode=mode, reuse=False, sudo_password="wrong-77", **base).run("id")
    assert "wrong-77" not in str(info.value)


def test_sudo_password_never_on_a_command_line(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    password = test_users["pass"][1]
    s = sudo_session(users_sshd, test_users, tmp_path, "pass", sudo_password=password)
    seen: list[str] = []
    done = threading.Event()

    def scan() -> None:
        while not done.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as handle:
                            seen.append(handle.read().decode(errors="replace"))
                    except OSError:
                        continue
            done.wait(0.01)

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        s.run("sleep 0.5")
    finally:
        done.set()
        scanner.join(timeout=10)
    assert any("sleep 0.5" in line for line in seen)  # the scan did see the command
    assert not any(password in line for line in seen)


@pytest.mark.parametrize("mode", MODES)
def test_timeout_under_sudo_kills_the_root_process(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path, mode: str
) -> None:
    password = test_users["pass"][1]
    s = sudo_session(users_sshd, test_users, tmp_path, "pass", mode=mode, sudo_password=password)
    with pytest.raises(trainlab.CommandTimeout) as info:
        s.run("sleep 300 & echo $!; wait", timeout=1.5)
    child = int(info.value.stdout.decode().split()[0])
    with reaped([child]):
        assert wait_gone(child)
    assert s.run("id -un").stdout == "root\n"
    assert s.read_text("/etc/shadow").startswith("root:")


@pytest.mark.parametrize("mode", MODES)
def test_sudo_on_a_requiretty_host(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path, mode: str
) -> None:
    s = sudo_session(users_sshd, test_users, tmp_path, "tty", mode=mode)
    r = s.run("id -un; echo to-stderr >&2; printf 'no newline'; exit 4")
    assert (r.stdout, r.stderr, r.exit_status) == ("root\nno newline", "to-stderr\n", 4)
    batch = s.run_many(["printf 'a\\nb\\n'", "echo e >&2", "head -c 5 /etc/shadow"])
    assert [(b.stdout, b.stderr) for b in batch] == [("a\nb\n", ""), ("", "e\n"), ("root:", "")]
    assert s.transport._sudo.tty  # type: ignore[attr-defined]
    with pytest.raises(trainlab.CommandTimeout) as info:
        s.run("sleep 300 & echo $!; wait", timeout=1.5)
    child = int(info.value.stdout.decode().split()[0])
    with reaped([child]):
        assert wait_gone(child)
    assert s.run("id -un").stdout == "root\n"
    assert s.read_text("/etc/shadow").startswith("root:")


@pytest.mark.parametrize("kind", ["nopass", "tty"])
def test_sudo_with_the_posix_host(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path, kind: str
) -> None:
    # shell=sh: the kept shell is the POSIX host on /bin/sh, under sudo (and on a pty,
    # with stderr through a FIFO, where sudo requires a tty).
    s = sudo_session(users_sshd, test_users, tmp_path, kind, mode="shell", shell="sh")
    r = s.run('id -un; echo to-stderr >&2; [ -z "$BASH_VERSION" ] && echo sh; exit 4')
    assert (r.stdout, r.stderr, r.exit_status) == ("root\nsh\n", "to-stderr\n", 4)
    batch = s.run_many(["echo a", "echo e >&2", "head -c 5 /etc/shadow"])
    assert [(b.stdout, b.stderr) for b in batch] == [("a\n", ""), ("", "e\n"), ("root:", "")]
    with pytest.raises(trainlab.CommandTimeout):
        s.run("sleep 300", timeout=1.0)
    assert s.run("id -un").stdout == "root\n"
