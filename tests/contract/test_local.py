"""The contract on the local machine, in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab
from trainlab.testing import TransportContract


@pytest.fixture
def local_file(tmp_path: Path) -> tuple[str, bytes]:
    path = tmp_path / "sample.txt"
    content = "héllo\nworld\n".encode()
    path.write_bytes(content)
    return str(path), content


class TestLocalExec(TransportContract):
    @pytest.fixture
    def session(self) -> trainlab.Session:
        return trainlab.connect("local://", reuse=False)

    @pytest.fixture
    def sample_file(self, local_file: tuple[str, bytes]) -> tuple[str, bytes]:
        return local_file


class TestLocalShell(TransportContract):
    @pytest.fixture
    def session(self) -> trainlab.Session:
        return trainlab.connect("local://?mode=shell", reuse=False)

    @pytest.fixture
    def sample_file(self, local_file: tuple[str, bytes]) -> tuple[str, bytes]:
        return local_file
