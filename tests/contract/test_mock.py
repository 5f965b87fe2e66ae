"""The contract on the scripted mock: the session layer over the same answers."""

from __future__ import annotations

import pytest

import trainlab
from trainlab.testing import SCRIPT, TransportContract


class TestMock(TransportContract):
    @pytest.fixture
    def session(self) -> trainlab.Session:
        return trainlab.connect(
            "mock://contract",
            reuse=False,
            responses=SCRIPT,
            files={"/etc/hostname": b"contract\n"},
        )

    @pytest.fixture
    def sample_file(self) -> tuple[str, bytes]:
        return "/etc/hostname", b"contract\n"
