"""Servers the integration tests start themselves, on 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trainlab.sandbox.sshd import INSTALL_HINT, SSHServer, sshd_path


def _need_sshd() -> None:
    if sshd_path() is None:
        pytest.fail(f"these tests need OpenSSH's sshd, which is not installed: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """One OpenSSH server for the whole run, with ed25519, ecdsa and rsa client keys."""
    _need_sshd()
    server = SSHServer(tmp_path_factory.mktemp("sshd"), key_types=("ed25519", "ecdsa", "rsa"))
    with server:
        yield server


@pytest.fixture
def ssh_options(sshd: SSHServer, tmp_path: Path) -> dict[str, object]:
    """Options that reach the test server and trust it, with a private known_hosts."""
    known = tmp_path / "known_hosts"
    known.write_text(Path(sshd.known_hosts).read_text())
    return {**sshd.client_options, "known_hosts": str(known)}


@pytest.fixture(scope="session")
def jump_sshd(sshd: SSHServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A second OpenSSH server, used as a jump host; it trusts the first one's client keys."""
    server = SSHServer(tmp_path_factory.mktemp("jump"))
    with server:
        with open(server.dir / "authorized_keys", "a") as handle:
            handle.write((sshd.dir / "authorized_keys").read_text())
        yield server


@pytest.fixture
def jump_options(ssh_options: dict[str, object], jump_sshd: SSHServer) -> dict[str, object]:
    """ssh_options whose known_hosts also trusts the jump host."""
    known = Path(str(ssh_options["known_hosts"]))
    known.write_text(known.read_text() + Path(jump_sshd.known_hosts).read_text())
    return ssh_options
