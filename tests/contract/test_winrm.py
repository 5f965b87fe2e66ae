"""The contract on winrm:// and winrms://, against the WSMan test endpoint on loopback."""

from __future__ import annotations

from typing import Any

import pytest

import trainlab
from trainlab.testing import PowerShellContract, TransportContract

pytestmark = pytest.mark.winrm


class TestWinRMBasic(PowerShellContract, TransportContract):
    @pytest.fixture
    def session(self, winrm_server: Any) -> trainlab.Session:
        return trainlab.connect(winrm_server.uri, reuse=False, **winrm_server.client_options)


class TestWinRMNTLMEncrypted(PowerShellContract, TransportContract):
    @pytest.fixture
    def session(self, winrm_ntlm_server: Any) -> trainlab.Session:
        options = winrm_ntlm_server.client_options
        return trainlab.connect(winrm_ntlm_server.uri, reuse=False, **options)


class TestWinRMS(PowerShellContract, TransportContract):
    @pytest.fixture
    def session(self, winrms_server: Any) -> trainlab.Session:
        return trainlab.connect(winrms_server.uri, reuse=False, **winrms_server.client_options)
