"""The contract over SSH against the sandbox's fallback server (asyncssh), in both modes.

The fallback serves machines without OpenSSH's sshd; the kit must behave the same
against it, so it runs the whole contract too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab
from tests.contract.contract import TransportContract
from trainlab.sandbox.asshd import AsyncSSHServer


@pytest.fixture(scope="module")
def asshd() -> Iterator[AsyncSSHServer]:
    with AsyncSSHServer() as server:
        yield server


@pytest.fixture
def remote_file(tmp_path: Path) -> tuple[str, bytes]:
    path = tmp_path / "sample.txt"
    content = "héllo\nworld\n".encode()
    path.write_bytes(content)
    return str(path), content


class TestAsyncSSHExec(TransportContract):
    @pytest.fixture
    def session(self, asshd: AsyncSSHServer) -> trainlab.Session:
        return trainlab.connect(asshd.uri, reuse=False, **asshd.client_options)

    @pytest.fixture
    def sample_file(self, remote_file: tuple[str, bytes]) -> tuple[str, bytes]:
        return remote_file


class TestAsyncSSHShell(TransportContract):
    @pytest.fixture
    def session(self, asshd: AsyncSSHServer) -> trainlab.Session:
        return trainlab.connect(asshd.uri, mode="shell", reuse=False, **asshd.client_options)

    @pytest.fixture
    def sample_file(self, remote_file: tuple[str, bytes]) -> tuple[str, bytes]:
        return remote_file
