"""The contract over SSH against the sandbox's fallback server (asyncssh), in both modes.

The fallback serves machines without OpenSSH's sshd; the kit must behave the same
against it, so it runs the whole contract too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab
from trainlab.sandbox.asshd import AsyncSSHServer
from trainlab.testing import ThisMachinesFiles, TransportContract


@pytest.fixture(scope="module")
def asshd() -> Iterator[AsyncSSHServer]:
    with AsyncSSHServer() as server:
        yield server


class TestAsyncSSHExec(ThisMachinesFiles, TransportContract):
    @pytest.fixture
    def session(self, asshd: AsyncSSHServer) -> trainlab.Session:
        return trainlab.connect(asshd.uri, reuse=False, **asshd.client_options)


class TestAsyncSSHShell(ThisMachinesFiles, TransportContract):
    @pytest.fixture
    def session(self, asshd: AsyncSSHServer) -> trainlab.Session:
        return trainlab.connect(asshd.uri, mode="shell", reuse=False, **asshd.client_options)


def test_every_fleet_uri_is_trusted_already(asshd: AsyncSSHServer) -> None:
    # As with OpenSSH's server: known_hosts names it as 127.0.0.1 and as localhost,
    # so a strict client reaches every one of fleet_uris without learning a key.
    before = Path(asshd.known_hosts).read_text()
    fleet = trainlab.Fleet(
        asshd.fleet_uris(4), host_key_policy="strict", progress=False, **asshd.client_options
    )
    try:
        result = fleet.run("echo ok")
    finally:
        fleet.close()
    assert [o.error for o in result] == ["", "", "", ""]
    assert [o.stdout for o in result] == ["ok\n"] * 4
    assert Path(asshd.known_hosts).read_text() == before
