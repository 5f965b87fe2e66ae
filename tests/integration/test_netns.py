"""The delay line: a network namespace whose every packet waits, ACKs included."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

import trainlab
from trainlab.sandbox.netns import DelayLine, FarSSH, delay_line_missing
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh

RTT = 0.1


@pytest.fixture(scope="module")
def far(sshd: SSHServer) -> Iterator[tuple[DelayLine, FarSSH]]:
    why = delay_line_missing()
    if why is not None:
        pytest.fail(why)
    with DelayLine(rtt=RTT) as line, FarSSH(sshd, line) as server:
        yield line, server


def test_a_tcp_handshake_takes_the_whole_round_trip(far: tuple[DelayLine, FarSSH]) -> None:
    line, server = far
    # SYN there, SYN-ACK back: the connect returns no sooner than one RTT (a lower
    # bound, which a loaded machine can only lengthen).
    for host in line.far:
        started = time.monotonic()
        with socket.create_connection((host, server.ports[0]), timeout=10) as sock:
            elapsed = time.monotonic() - started
            assert sock.recv(4) == b"SSH-"
        assert elapsed >= RTT * 0.95


def test_the_kit_runs_on_the_far_sshd(
    far: tuple[DelayLine, FarSSH], ssh_options: dict[str, Any]
) -> None:
    _, server = far
    for uri, _, _ in server.targets(3):
        s = trainlab.connect(uri, mode="shell", reuse=False, **ssh_options)
        started = time.monotonic()
        assert s.run("echo far").stdout == "far\n"
        # at least the TCP handshake, key exchange, login and command
        assert time.monotonic() - started >= 4 * RTT * 0.95
        s.close()


def test_stop_removes_the_namespace_and_devices(sshd: SSHServer) -> None:
    why = delay_line_missing()
    if why is not None:
        pytest.fail(why)
    line = DelayLine(rtt=0.01).start()
    names = (line.netns, *line._devices)
    line.stop()
    namespaces = subprocess.run(
        ["ip", "netns", "list"], check=False, capture_output=True, text=True
    ).stdout
    links = subprocess.run(["ip", "link"], check=False, capture_output=True, text=True).stdout
    assert line.netns not in namespaces
    assert not [name for name in names[1:] if name in links]
