"""The transport contract over SSH for users whose login shell is not bash, in both
modes: dash, zsh, mksh, fish, tcsh, and a BusyBox-only host without bash.

What a command string means must not depend on the login shell: the kit's wrapper
and its kept shell reach a POSIX sh whatever the user logs in with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab
from tests.shells import BUSYBOX_FILE, BUSYBOX_FILE_TEXT, LOGIN_SHELLS, ShellHost
from trainlab.testing import TransportContract

pytestmark = pytest.mark.ssh

# bash's own contract runs in test_ssh.py; these are the others.
OTHER_SHELLS = [name for name in LOGIN_SHELLS if name != "bash"]
HOSTS = [*OTHER_SHELLS, "busybox"]
# Every host keeps a shell now: BusyBox's is the POSIX host.
NO_KEPT_SHELL_YET: set[str] = set()


def _host(request: pytest.FixtureRequest, name: str) -> ShellHost:
    if name == "busybox":
        found: ShellHost = request.getfixturevalue("busybox_host")
        return found
    hosts: dict[str, ShellHost] = request.getfixturevalue("shell_hosts")
    return hosts[name]


def _sample(host: ShellHost) -> tuple[str, bytes]:
    if host.name == "busybox":
        return BUSYBOX_FILE, BUSYBOX_FILE_TEXT.encode()
    return "/etc/os-release", Path("/etc/os-release").read_bytes()


@pytest.fixture(params=HOSTS)
def shell_host(request: pytest.FixtureRequest) -> ShellHost:
    return _host(request, request.param)


class TestExecOnEveryLoginShell(TransportContract):
    @pytest.fixture
    def session(self, shell_host: ShellHost, request: pytest.FixtureRequest) -> trainlab.Session:
        uses_batches = ("batch", "metrics")  # the metrics test runs a batch too
        if shell_host.name in NO_KEPT_SHELL_YET and any(
            word in request.node.name for word in uses_batches
        ):
            request.applymarker(pytest.mark.xfail(strict=True, reason="batches need a kept shell"))
        return trainlab.connect(shell_host.uri, reuse=False, **shell_host.options)

    @pytest.fixture
    def sample_file(self, shell_host: ShellHost) -> tuple[str, bytes]:
        return _sample(shell_host)


@pytest.fixture(params=[h for h in HOSTS if h not in NO_KEPT_SHELL_YET])
def kept_shell_host(request: pytest.FixtureRequest) -> ShellHost:
    return _host(request, request.param)


class TestShellModeOnEveryLoginShell(TransportContract):
    @pytest.fixture
    def session(self, kept_shell_host: ShellHost) -> trainlab.Session:
        host = kept_shell_host
        return trainlab.connect(host.uri, mode="shell", reuse=False, **host.options)

    @pytest.fixture
    def sample_file(self, kept_shell_host: ShellHost) -> tuple[str, bytes]:
        return _sample(kept_shell_host)


# Quotes, $, backslashes, !, backticks, %, a newline and non-ASCII: each breaks a naive
# wrapper in one of the login shells.
HOSTILE = (
    "x='it'\"'\"'s'; printf '%s|%s\\n' \"$x\" 'a\\\\b $HOME !x `y` \"q\" 100%'\n"
    "echo 'ünï'; echo \"$((6 * 7))\" >&2"
)


@pytest.mark.parametrize("mode", ["exec", "shell"])
def test_quoting_hostile_commands_mean_the_same_everywhere(
    request: pytest.FixtureRequest, shell_host: ShellHost, mode: str
) -> None:
    if mode == "shell" and shell_host.name in NO_KEPT_SHELL_YET:
        request.applymarker(pytest.mark.xfail(strict=True, reason="no kept shell without bash"))
    s = trainlab.connect(shell_host.uri, mode=mode, reuse=False, **shell_host.options)
    r = s.run(HOSTILE)
    assert (r.stdout, r.stderr, r.exit_status) == (
        'it\'s|a\\\\b $HOME !x `y` "q" 100%\nünï\n',
        "42\n",
        0,
    )


def test_the_login_shell_is_learned_and_commands_stay_posix(
    shell_hosts: dict[str, ShellHost],
) -> None:
    fish = shell_hosts["fish"]
    s = trainlab.connect(fish.uri, reuse=False, **fish.options)
    first = s.run('if [ -n "$x" ]; then echo set; else echo unset; fi')
    assert first.stdout == "unset\n"
    assert s.transport.login_shell == "/usr/bin/fish"  # type: ignore[attr-defined]
    again = s.run("x=1; echo $x")
    assert (again.stdout, again.exit_status) == ("1\n", 0)


def test_shell_login_hands_commands_to_the_login_shell_untouched(
    shell_hosts: dict[str, ShellHost],
) -> None:
    fish = shell_hosts["fish"]
    s = trainlab.connect(fish.uri, shell="login", reuse=False, **fish.options)
    r = s.run("set greeting hello; echo $greeting (string upper fish)")  # fish, on purpose
    assert (r.stdout, r.exit_status) == ("hello FISH\n", 0)
    tcsh = shell_hosts["tcsh"]
    t = trainlab.connect(tcsh.uri, shell="login", reuse=False, **tcsh.options)
    assert t.run("set n = 3; @ m = $n * 2; echo $m").stdout == "6\n"
    assert not t.transport.supports_batch  # batches need the kit's own host
    batch = t.run_many(["echo one", "echo two"])  # the session runs them one by one
    assert [r.stdout for r in batch] == ["one\n", "two\n"]


def test_shell_login_takes_no_sudo_and_no_kept_shell() -> None:
    with pytest.raises(trainlab.TargetError, match="shell=login"):
        trainlab.connect("ssh://h", shell="login", sudo=True, reuse=False)
    with pytest.raises(trainlab.TargetError, match="shell=login"):
        trainlab.connect("ssh://h", shell="login", mode="shell", reuse=False)
    with pytest.raises(trainlab.TargetError, match="auto, sh, bash, login"):
        trainlab.connect("ssh://h", shell="fish", reuse=False)


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("cmd", r"cmd\.exe \(a Windows OpenSSH server\).*winrm://"),
        ("powershell", r"PowerShell \(a Windows OpenSSH server\).*winrm://"),
        ("device", r"no POSIX shell and answered .% Invalid input.*mode=cli"),
    ],
)
@pytest.mark.parametrize("mode", ["exec", "shell"])
def test_a_host_without_a_posix_shell_is_named_not_misread(
    stand_in_hosts: dict[str, ShellHost], kind: str, said: str, mode: str
) -> None:
    host = stand_in_hosts[kind]
    s = trainlab.connect(host.uri, mode=mode, reuse=False, **host.options)
    with pytest.raises(trainlab.TargetError, match=said):
        s.run("uname -a")
