"""Platform detection on minimal hosts: the BusyBox-only host over SSH, and the
detection command's fallback branch in every POSIX shell this machine has."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import trainlab
from tests.shells import ALPINE_RELEASE, LOGIN_SHELLS, ShellHost, busybox_path, shell_path
from trainlab.platform import DETECT_COMMAND, FALLBACK_FILES, parse_facts

pytestmark = pytest.mark.ssh

# The sh family: the shells DETECT_COMMAND is written for (fish and tcsh are not sh).
POSIX_SHELLS = ["bash", "dash", "zsh", "mksh", "busybox"]


def test_busybox_host_is_alpine_from_its_alpine_release(busybox_host: ShellHost) -> None:
    s = trainlab.connect(busybox_host.uri, mode="exec", **busybox_host.options)
    p = s.platform
    assert (p.name, p.family, p.release, p.probe) == (
        "alpine",
        "alpine",
        ALPINE_RELEASE,
        "alpine-release",
    )
    assert p.is_a("linux")
    assert p.kernel == "Linux"
    assert p.arch
    assert "from alpine-release" in repr(p)
    assert s.commands == 1  # one round trip


@pytest.mark.parametrize("shell", ["bash", "dash", "zsh", "mksh"])
def test_os_release_hosts_are_detected_as_before(
    shell_hosts: dict[str, ShellHost], shell: str
) -> None:
    here = parse_facts("Linux x y\n" + Path("/etc/os-release").read_text())
    host = shell_hosts[shell]
    p = trainlab.connect(host.uri, mode="exec", **host.options).platform
    assert (p.name, p.family, p.release, p.probe) == (
        here.name,
        here.family,
        here.release,
        "os-release",
    )


def _posix_shell(name: str) -> list[str]:
    return [busybox_path(), "sh"] if name == "busybox" else [shell_path(name)]


def _detect_in(root: Path, shell: str) -> str:
    """DETECT_COMMAND in ``shell``, with /etc and /usr/lib moved under ``root``."""
    command = DETECT_COMMAND.replace("/etc/", f"{root}/etc/").replace(
        "/usr/lib/", f"{root}/usr/lib/"
    )
    assert command.count(str(root)) == 2 + 2 + len(FALLBACK_FILES)
    done = subprocess.run(
        [*_posix_shell(shell), "-c", command],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert (done.returncode, done.stderr) == (0, "")
    # The output names the files as the host would: under /etc.
    return done.stdout.replace(f"{root}/", "/")


@pytest.mark.parametrize("shell", POSIX_SHELLS)
def test_the_detect_command_falls_back_alike_in_every_posix_shell(
    tmp_path: Path, shell: str
) -> None:
    assert set(POSIX_SHELLS) - {"busybox"} <= set(LOGIN_SHELLS)
    etc = tmp_path / "etc"
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    etc.mkdir()
    # CentOS 6: an lsb-release with no DISTRIB_ID (and no final newline), a redhat-release.
    (etc / "lsb-release").write_text("LSB_VERSION=base-4.0-amd64:core-4.0-noarch")
    (etc / "redhat-release").write_text("CentOS release 6.10 (Final)\n")
    p = parse_facts(_detect_in(tmp_path, shell))
    assert (p.name, p.family, p.release, p.probe) == ("centos", "redhat", "6.10", "redhat-release")

    (etc / "alpine-release").write_text("3.20.3\n")
    p = parse_facts(_detect_in(tmp_path, shell))
    assert (p.name, p.release, p.probe) == ("alpine", "3.20.3", "alpine-release")

    (tmp_path / "usr" / "lib" / "os-release").write_text('ID=alpine\nVERSION_ID="3.21.0"\n')
    p = parse_facts(_detect_in(tmp_path, shell))
    assert (p.name, p.release, p.probe) == ("alpine", "3.21.0", "os-release")

    shutil.rmtree(etc)
    (tmp_path / "usr" / "lib" / "os-release").unlink()
    etc.mkdir()
    output = _detect_in(tmp_path, shell)
    assert len(output.splitlines()) == 1  # uname's line alone
    assert parse_facts(output).probe == "uname"
