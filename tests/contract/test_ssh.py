"""The contract over SSH, against a real OpenSSH server on loopback, in both modes."""

from __future__ import annotations

import pytest

import trainlab
from trainlab.sandbox.sshd import SSHServer
from trainlab.testing import ThisMachinesFiles, TransportContract

pytestmark = pytest.mark.ssh


class TestSSHExec(ThisMachinesFiles, TransportContract):
    @pytest.fixture
    def session(self, sshd: SSHServer, ssh_options: dict[str, object]) -> trainlab.Session:
        return trainlab.connect(sshd.uri, reuse=False, **ssh_options)


class TestSSHShell(ThisMachinesFiles, TransportContract):
    @pytest.fixture
    def session(self, sshd: SSHServer, ssh_options: dict[str, object]) -> trainlab.Session:
        return trainlab.connect(sshd.uri, mode="shell", reuse=False, **ssh_options)
