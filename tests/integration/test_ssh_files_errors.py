"""A file's own failure over SSH is a ``FileError`` with its errno, as on local://: a
directory (EISDIR), a missing path (ENOENT), a file the user may not read (EACCES),
over SFTP and through sudo alike. A broken connection stays a ``TransportError``."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

import trainlab
from tests.integration.test_ssh_users import options, sudo_session, uri
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh


def _code(call: Any, *args: str) -> tuple[type[BaseException], int | None]:
    with pytest.raises(trainlab.FileError) as info:
        call(*args)
    return type(info.value), info.value.errno


@pytest.mark.parametrize("mode", ["exec", "shell"])
def test_directory_and_missing_path_match_local(
    ssh_options: dict[str, Any], sshd: SSHServer, mode: str
) -> None:
    local = trainlab.connect("local://")
    remote = trainlab.connect(sshd.uri, mode=mode, **ssh_options)
    for s in (local, remote):
        assert _code(s.read_text, "/etc") == (trainlab.FileError, errno.EISDIR)
        assert _code(s.read_bytes, "/etc") == (trainlab.FileError, errno.EISDIR)
        assert _code(s.stat, "/no/such/path") == (trainlab.FileMissing, errno.ENOENT)
        assert _code(s.read_text, "/no/such/path") == (trainlab.FileMissing, errno.ENOENT)
    with pytest.raises(trainlab.FileError, match="is a directory"):
        remote.read_text("/etc")
    # The SFTP channel is still good after each of them.
    assert remote.read_text("/etc/hostname") == Path("/etc/hostname").read_text()
    assert remote.run("echo ok").stdout == "ok\n"


def test_permission_denied_is_eacces(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    name, password = test_users["nopass"]
    s = trainlab.connect(uri(users_sshd, name), **options(users_sshd, tmp_path, password=password))
    assert _code(s.read_text, "/etc/shadow") == (trainlab.FileError, errno.EACCES)
    assert _code(s.read_bytes, "/etc/shadow") == (trainlab.FileError, errno.EACCES)
    assert _code(s.read_text, "/etc") == (trainlab.FileError, errno.EISDIR)
    assert s.stat("/etc/shadow").type == "file"  # stat needs no read permission


def test_through_sudo_the_same_errnos(
    users_sshd: SSHServer, test_users: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    s = sudo_session(users_sshd, test_users, tmp_path, "nopass")
    assert _code(s.read_text, "/etc") == (trainlab.FileError, errno.EISDIR)
    assert _code(s.read_text, "/no/such/path") == (trainlab.FileMissing, errno.ENOENT)
    assert _code(s.stat, "/no/such/path") == (trainlab.FileMissing, errno.ENOENT)
    assert "root:" in s.read_text("/etc/shadow")  # sudo_user may read it
