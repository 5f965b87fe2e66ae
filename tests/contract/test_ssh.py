"""The contract over SSH, against a real OpenSSH server on loopback, in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab
from tests.contract.contract import TransportContract
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh


@pytest.fixture
def remote_file(tmp_path: Path) -> tuple[str, bytes]:
    # The server runs on this machine as this user, so a local file is a remote file.
    path = tmp_path / "sample.txt"
    content = "héllo\nworld\n".encode()
    path.write_bytes(content)
    return str(path), content


class TestSSHExec(TransportContract):
    @pytest.fixture
    def session(self, sshd: SSHServer, ssh_options: dict[str, object]) -> trainlab.Session:
        return trainlab.connect(sshd.uri, reuse=False, **ssh_options)

    @pytest.fixture
    def sample_file(self, remote_file: tuple[str, bytes]) -> tuple[str, bytes]:
        return remote_file


class TestSSHShell(TransportContract):
    @pytest.fixture
    def session(self, sshd: SSHServer, ssh_options: dict[str, object]) -> trainlab.Session:
        return trainlab.connect(sshd.uri, mode="shell", reuse=False, **ssh_options)

    @pytest.fixture
    def sample_file(self, remote_file: tuple[str, bytes]) -> tuple[str, bytes]:
        return remote_file
