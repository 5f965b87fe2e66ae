"""Deadlines hold when the server stops answering: the sshd process serving the session
is stopped (SIGSTOP) and continued (SIGCONT) after each check, in a ``finally``.

A command's timeout is raised within its deadline plus ``KILL_GRACE`` (1.5 s): these
tests allow ``BOUND`` (2 s) past the deadline. Its message must not claim a kill it
could not confirm, and once the server answers again the session works.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import trainlab
from trainlab.sandbox.sshd import SSHServer
from trainlab.transports.ssh.channel import KILL_GRACE

pytestmark = pytest.mark.ssh

TIMEOUT = 3.0
BOUND = 2.0  # seconds past the deadline a timeout may take, KILL_GRACE and some slack
assert KILL_GRACE < BOUND


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(found) for found in out.split()]


def _comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def serving(server: SSHServer, before: set[int]) -> list[int]:
    """The sshd processes of the connections made since ``before``: each connection's
    process and its sshd children (the unprivileged half, where there is one)."""
    found: list[int] = []
    for pid in set(server.connection_pids()) - before:
        found.append(pid)
        found += [child for child in _children(pid) if _comm(child) == "sshd"]
    return found


@contextlib.contextmanager
def stopped(pids: list[int]) -> Iterator[None]:
    """The processes stopped for the block, continued after it whatever happens."""
    assert pids, "no sshd process serves the session"
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.fixture
def session_and_server(
    request: pytest.FixtureRequest, sshd: SSHServer, ssh_options: dict[str, Any]
) -> Iterator[tuple[trainlab.Session, list[int]]]:
    mode, connect_timeout = request.param
    before = set(sshd.connection_pids())
    s = trainlab.connect(sshd.uri, mode=mode, **{**ssh_options, "timeout": connect_timeout})
    assert s.run("echo warm").stdout == "warm\n"
    assert s.read_text("/etc/hostname")  # the SFTP channel is open too
    yield s, serving(sshd, before)
    s.close()


def _timed_timeout(s: trainlab.Session, command: str) -> tuple[float, str]:
    started = time.monotonic()
    with pytest.raises(trainlab.CommandTimeout) as info:
        s.run(command, timeout=TIMEOUT)
    return time.monotonic() - started, str(info.value)


@pytest.mark.parametrize(
    "session_and_server", [("exec", 10.0), ("shell", 10.0)], indirect=True, ids=["exec", "shell"]
)
def test_a_stalled_server_times_out_within_the_grace(
    session_and_server: tuple[trainlab.Session, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    s, pids = session_and_server
    with stopped(pids):
        took, message = _timed_timeout(s, "echo never")
        gc.collect()  # the timed-out channel's object goes, as it would in a long session
    assert TIMEOUT <= took < TIMEOUT + BOUND, (took, message)
    assert "were killed" not in message
    assert "not confirmed" in message or "never started" in message, message
    # The server answers again: the session works (shell mode starts a new shell).
    with caplog.at_level(logging.WARNING, logger="paramiko"):
        assert s.run("echo back", timeout=10).stdout == "back\n"
    # A channel opened after its open timed out is closed, not left to paramiko's warning.
    assert "unrequested channel" not in caplog.text


@pytest.mark.parametrize(
    "session_and_server", [("exec", 10.0), ("shell", 10.0)], indirect=True, ids=["exec", "shell"]
)
def test_a_server_stalled_during_the_command(
    session_and_server: tuple[trainlab.Session, list[int]], tmp_path: Path
) -> None:
    s, pids = session_and_server
    pid_file = tmp_path / "pid"
    # The command runs here (loopback), so the test can end it itself afterwards.
    command = f"echo $$ > {pid_file}; exec sleep 30"
    stop = threading.Timer(1.0, lambda: [os.kill(pid, signal.SIGSTOP) for pid in pids])
    try:
        stop.start()
        took, message = _timed_timeout(s, command)
    finally:
        stop.cancel()
        stop.join()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if pid_file.exists() and pid_file.read_text().strip():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert TIMEOUT <= took < TIMEOUT + BOUND, (took, message)
    assert "were killed" not in message
    assert "not confirmed" in message, message
    assert s.run("echo back", timeout=10).stdout == "back\n"


@pytest.mark.parametrize("session_and_server", [("exec", 10.0)], indirect=True, ids=["exec"])
def test_a_timeout_on_an_answering_server_is_a_confirmed_kill(
    session_and_server: tuple[trainlab.Session, list[int]],
) -> None:
    s, _ = session_and_server
    took, message = _timed_timeout(s, "sleep 30")
    assert took < TIMEOUT + BOUND
    assert "were killed" in message


@pytest.mark.parametrize("session_and_server", [("exec", 2.0)], indirect=True, ids=["exec"])
def test_sftp_on_a_stalled_server_fails_within_its_timeout(
    session_and_server: tuple[trainlab.Session, list[int]],
) -> None:
    s, pids = session_and_server
    with stopped(pids):
        started = time.monotonic()
        with pytest.raises(trainlab.TransportError, match="did not answer within 2 s"):
            s.read_text("/etc/hostname")
        took = time.monotonic() - started
    assert took < 2.0 + BOUND, took
    assert s.read_text("/etc/hostname") == Path("/etc/hostname").read_text()


@pytest.mark.parametrize("session_and_server", [("exec", 2.0)], indirect=True, ids=["exec"])
def test_a_channel_open_is_bounded_by_the_connect_timeout(
    session_and_server: tuple[trainlab.Session, list[int]],
) -> None:
    # The channel's open waits for the connect timeout (2 s) when it ends first.
    s, pids = session_and_server
    with stopped(pids):
        started = time.monotonic()
        with pytest.raises(trainlab.TransportError, match="cannot open a channel"):
            s.run("echo never", timeout=30)
        took = time.monotonic() - started
    assert 2.0 <= took < 2.0 + BOUND, took
    assert s.run("echo back", timeout=10).stdout == "back\n"


@pytest.mark.parametrize("session_and_server", [("exec", 10.0)], indirect=True, ids=["exec"])
def test_a_batch_whose_shell_cannot_start_keeps_its_deadline(
    session_and_server: tuple[trainlab.Session, list[int]],
) -> None:
    # Exec mode starts its kept shell for the first batch: on a stalled server the
    # start (the channel's open, a sudo handshake) counts against the batch's deadline,
    # not the connect timeout (10 s).
    s, pids = session_and_server
    with stopped(pids):
        started = time.monotonic()
        with pytest.raises(trainlab.CommandTimeout, match="never ran") as info:
            s.run_many(["echo one", "echo two"], timeout=TIMEOUT)
        took = time.monotonic() - started
    assert TIMEOUT <= took < TIMEOUT + BOUND, (took, str(info.value))
    assert [r.stdout for r in s.run_many(["echo a", "echo b"], timeout=10)] == ["a\n", "b\n"]
