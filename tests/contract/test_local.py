"""The contract on the local machine, in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab
from trainlab import framing
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


class TestLocalPosixShell(TransportContract):
    """The POSIX host (``/bin/sh``, dash here) under the same contract as bash."""

    @pytest.fixture
    def session(self) -> trainlab.Session:
        s = trainlab.connect("local://?mode=shell&shell=sh", reuse=False)
        assert s.transport._dialect is framing.POSIX  # type: ignore[attr-defined]
        return s

    @pytest.fixture
    def sample_file(self, local_file: tuple[str, bytes]) -> tuple[str, bytes]:
        return local_file
