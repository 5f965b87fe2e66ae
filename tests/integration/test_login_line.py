"""The line every login shell is handed parses alike in each of them, run for real.

sshd runs a command as ``$SHELL -c LINE``; these run ``<shell> -c LINE`` the same way,
with ``$SHELL`` set as sshd sets it, for every shell users log in with.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.shells import LOGIN_SHELLS
from trainlab.transports.ssh.login import login_shell_in, portable

# Every login shell of the shell tests, and BusyBox's sh (the package that brings it).
PACKAGES = {**LOGIN_SHELLS, "busybox": "busybox-static"}


# Quotes, $, backslashes, !, backticks, %, a newline, non-ASCII: each would break a
# naive wrapper in one of the shells above.
HOSTILE = (
    "x='it'\"'\"'s'; printf '%s|%s\\n' \"$x\" 'a\\\\b $HOME !x `y` \"q\" 100%'\n"
    "echo 'ünï'; echo err >&2; exit 3"
)
EXPECTED_OUT = 'it\'s|a\\\\b $HOME !x `y` "q" 100%\nünï\n'.encode()


def run(shell: str, line: str) -> subprocess.CompletedProcess[bytes]:
    path = shutil.which(shell)
    if path is None:
        pytest.fail(f"{shell} is not installed: apt-get install -y {PACKAGES[shell]}")
    argv = [path, "sh", "-c", line] if shell == "busybox" else [path, "-c", line]
    return subprocess.run(
        argv, capture_output=True, timeout=30, env={**os.environ, "SHELL": path}, check=False
    )


@pytest.mark.parametrize("shell", PACKAGES)
@pytest.mark.parametrize("runner", ["auto", "sh", "bash"])
def test_every_login_shell_runs_the_script_as_written(shell: str, runner: str) -> None:
    done = run(shell, portable(HOSTILE, runner))
    login, stderr = login_shell_in(done.stderr)
    assert (done.stdout, stderr, done.returncode) == (EXPECTED_OUT, b"err\n", 3)
    assert login == shutil.which(shell)


@pytest.mark.parametrize("shell", ["bash", "dash", "fish", "tcsh"])
def test_auto_keeps_bash_where_it_is_the_login_shell_and_sh_elsewhere(shell: str) -> None:
    done = run(shell, portable('[ -n "$BASH_VERSION" ] && echo bash || echo sh', "auto"))
    assert done.stdout == (b"bash\n" if shell == "bash" else b"sh\n")


def test_shell_bash_says_when_there_is_no_bash() -> None:
    done = subprocess.run(
        ["/bin/sh", "-c", portable("echo never", "bash")],
        capture_output=True,
        env={"PATH": "/nonexistent", "SHELL": "/bin/sh"},
        timeout=30,
        check=False,
    )
    assert (done.stdout, done.returncode) == (b"", 127)
    assert b"__tl_nobash\n" in done.stderr
