"""Exec mode's wrapper against commands that used to reach it: an EXIT trap, a syntax
error, an unterminated here-document, a closed stdout; and commands holding bytes that
are not UTF-8, on local://, SSH exec and SSH shell alike.

Each answer is compared with what ``sh -c`` gives for the same command on this machine,
on every login shell of the shell test bed and the BusyBox host.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

import trainlab
from tests.integration.test_ssh_users import sudo_session
from tests.shells import LOGIN_SHELLS, ShellHost
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh

# Commands whose text must not reach the wrapper's, with what they must print.
HOSTILE = {
    "exit trap": "trap 'echo TRAPPED' EXIT; echo body",
    "exit trap and exit": "trap 'echo TRAPPED' EXIT; echo body; exit 7",
    "syntax error": "if then",
    "unterminated here-document": "cat <<EOF",
    "closed stdout": "exec >&-; echo x",
    "a quote left open": "echo 'unclosed",
    "a comment": "echo one # and a comment",
}


def sh_c(command: str) -> tuple[str, int]:
    """What ``sh -c`` prints on stdout and exits with, here."""
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    return done.stdout, done.returncode


def assert_like_sh_c(result: trainlab.CommandResult, command: str) -> None:
    stdout, status = sh_c(command)
    assert (result.stdout, result.exit_status) == (stdout, status), command
    assert "__tl_" not in result.stdout + result.stderr, result  # no wrapper text leaks


@pytest.mark.parametrize("mode", ["exec", "shell"])
@pytest.mark.parametrize("shell", ["auto", "sh"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_commands_answer_as_sh_c(
    ssh_options: dict[str, Any], sshd: SSHServer, mode: str, shell: str, name: str
) -> None:
    s = trainlab.connect(sshd.uri, mode=mode, shell=shell, **ssh_options)
    command = HOSTILE[name]
    assert_like_sh_c(s.run(command), command)
    assert s.run("echo still here").stdout == "still here\n"  # the session is unharmed


def test_exit_trap_output_is_kept_in_exec_mode(
    ssh_options: dict[str, Any], sshd: SSHServer
) -> None:
    s = trainlab.connect(sshd.uri, mode="exec", **ssh_options)
    result = s.run("trap 'echo TRAPPED; echo trapped-err >&2' EXIT; echo body")
    assert (result.stdout, result.stderr, result.exit_status) == (
        "body\nTRAPPED\n",
        "trapped-err\n",
        0,
    )


def test_syntax_error_is_a_status_with_the_shell_message(
    ssh_options: dict[str, Any], sshd: SSHServer
) -> None:
    s = trainlab.connect(sshd.uri, mode="exec", **ssh_options)
    result = s.run("if then")
    assert result.exit_status == 2
    assert "syntax error" in result.stderr.lower()
    assert result.stdout == ""


@pytest.mark.parametrize("name", [*LOGIN_SHELLS, "busybox"])
def test_hostile_commands_on_every_login_shell(request: pytest.FixtureRequest, name: str) -> None:
    if name == "busybox":
        host: ShellHost = request.getfixturevalue("busybox_host")
    else:
        host = request.getfixturevalue("shell_hosts")[name]
    s = trainlab.connect(host.uri, mode="exec", **host.options)
    for command in ("trap 'echo TRAPPED' EXIT; echo body", "if then", "cat <<EOF"):
        result = s.run(command)
        assert "__tl_" not in result.stdout + result.stderr, (name, result)
        assert result.stdout == sh_c(command)[0], (name, command)
    # A syntax error is status 2 in dash, bash and BusyBox ash alike.
    assert s.run("if then").exit_status == 2
    assert s.run("cat <<EOF").exit_status == 0
    assert s.run("echo hi; exit 3").exit_status == 3


def test_hostile_commands_under_sudo(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Any
) -> None:
    s = sudo_session(users_sshd, test_users, tmp_path, "nopass")
    for command in ("trap 'echo TRAPPED' EXIT; id -un", "if then", "exec >&-; echo x"):
        result = s.run(command)
        assert "__tl_" not in result.stdout + result.stderr, result
    assert s.run("trap 'echo TRAPPED' EXIT; id -un").stdout == "root\nTRAPPED\n"
    assert s.run("if then").exit_status == 2
    assert s.run("exit 5").exit_status == 5


# printf's %s of a lone surrogate: the byte 0xff, as os.fsdecode gives for it.
UNDECODABLE = "printf '%s' '\udcff' | od -An -tx1"


@pytest.mark.parametrize("where", ["local", "exec", "shell"])
def test_undecodable_bytes_in_a_command_travel_as_bytes(
    ssh_options: dict[str, Any], sshd: SSHServer, where: str
) -> None:
    if where == "local":
        s = trainlab.connect("local://")
    else:
        s = trainlab.connect(sshd.uri, mode=where, **ssh_options)
    result = s.run(UNDECODABLE)
    assert (result.stdout.split(), result.exit_status) == (["ff"], 0)
    assert s.run("echo \udcff").stdout_bytes == b"\xff\n"
