"""The SSH client's caches of parsed key files: keyed by everything a parse reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from trainlab.transports.ssh.auth import load_plain_key

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def _keygen(*args: str) -> None:
    subprocess.run(["ssh-keygen", "-q", *args], check=True, timeout=30)


def test_a_renewed_certificate_is_not_served_from_the_key_cache(tmp_path: Path) -> None:
    _keygen("-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca"))
    key = tmp_path / "id_ed25519"
    _keygen("-t", "ed25519", "-N", "", "-f", str(key))
    # The key alone first, then with a certificate beside it, then a renewed one.
    assert load_plain_key(str(key)).public_blob is None
    _keygen("-s", str(tmp_path / "ca"), "-I", "first", "-n", "alice", "-z", "1", f"{key}.pub")
    first = load_plain_key(str(key)).public_blob
    assert first is not None
    assert first.key_type.endswith("-cert-v01@openssh.com")
    _keygen("-s", str(tmp_path / "ca"), "-I", "second", "-n", "alice", "-z", "2", f"{key}.pub")
    second = load_plain_key(str(key)).public_blob
    assert second is not None
    assert second.key_blob != first.key_blob
    assert second.key_blob == _fresh(key).key_blob


def test_the_same_key_at_two_paths_gets_only_its_own_certificate(tmp_path: Path) -> None:
    _keygen("-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca"))
    with_cert = tmp_path / "a" / "id_ed25519"
    with_cert.parent.mkdir()
    _keygen("-t", "ed25519", "-N", "", "-f", str(with_cert))
    _keygen("-s", str(tmp_path / "ca"), "-I", "a", "-n", "alice", f"{with_cert}.pub")
    plain = tmp_path / "b" / "id_ed25519"
    plain.parent.mkdir()
    shutil.copy(with_cert, plain)
    assert load_plain_key(str(with_cert)).public_blob is not None
    assert load_plain_key(str(plain)).public_blob is None


def _fresh(path: Path) -> paramiko.PublicBlob:
    blob = paramiko.PKey.from_path(str(path)).public_blob
    assert blob is not None
    return blob
