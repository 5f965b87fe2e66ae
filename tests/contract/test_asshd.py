"""The contract over SSH against the sandbox's fallback server (asyncssh), in both modes.

The fallback serves machines without OpenSSH's sshd; the kit must behave the same
against it, so it runs the whole contract too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import trainlab
from tests.contract.contract import ThisMachinesFiles, TransportContract
from trainlab.sandbox.asshd import AsyncSSHServer


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
