"""The contract on pwsh+ssh://: OpenSSH's sshd runs the PSRP test host as its
``powershell`` subsystem, as it runs ``pwsh -sshs`` on a real host."""

from __future__ import annotations

from typing import Any

import pytest

import trainlab
from trainlab.sandbox.sshd import SSHServer
from trainlab.testing import PowerShellContract, TransportContract

pytestmark = [pytest.mark.winrm, pytest.mark.ssh]


class TestPwshOverSSH(PowerShellContract, TransportContract):
    @pytest.fixture
    def session(self, pwsh_sshd: SSHServer, pwsh_ssh_options: dict[str, Any]) -> trainlab.Session:
        uri = f"pwsh+ssh://{pwsh_sshd.user}@127.0.0.1:{pwsh_sshd.port}"
        return trainlab.connect(uri, reuse=False, **pwsh_ssh_options)
