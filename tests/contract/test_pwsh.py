"""The contract on pwsh://, through a real subprocess: the out-of-process PSRP test server."""

from __future__ import annotations

from typing import Any

import pytest

import trainlab
from trainlab.testing import PowerShellContract, TransportContract

pytestmark = pytest.mark.winrm


class TestPwsh(PowerShellContract, TransportContract):
    @pytest.fixture
    def session(self, pwsh_options: dict[str, Any]) -> trainlab.Session:
        return trainlab.connect("pwsh://", reuse=False, **pwsh_options)
