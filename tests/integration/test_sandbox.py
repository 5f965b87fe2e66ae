"""The sandbox: every part starts, hands out working targets near and far, and cleans up."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

import trainlab
from tests.servers import _need_sshd
from trainlab.errors import TargetError, TrainlabError
from trainlab.sandbox import Sandbox
from trainlab.sandbox.api import DEVICES


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.ssh
@pytest.mark.rest
def test_ssh_and_rest_near_and_far_then_everything_stops() -> None:
    _need_sshd()
    with Sandbox(["ssh", "rest"]) as lab:
        assert lab.ssh_kind == "OpenSSH"
        assert lab.missing == {}
        near = lab.connect("ssh")
        far = lab.connect("ssh", rtt=0.02)
        assert near.run("echo near").stdout == "near\n"
        assert far.run("echo far").stdout == "far\n"
        assert near.target.port != far.target.port  # the far one goes through a proxy
        api = lab.connect("rest", rtt=0.02)
        # Paging links point back at the address used, so they stay behind the proxy.
        frame = api.get_all("/devices/", params={"limit": 10})
        assert len(frame) == len(DEVICES)
        ports = [near.target.port, far.target.port, api.target.port]
        sessions = [near, far, api]
    assert all(s.closed for s in sessions)
    assert not any(listening(p) for p in ports if p)


def test_the_asyncssh_server_stands_in_for_openssh() -> None:
    with Sandbox(["ssh"], ssh_server="asyncssh") as lab:
        assert lab.ssh_kind == "asyncssh"
        s = lab.connect("ssh", mode="shell")
        batch = s.run_many(["echo a", "exit 3", "echo $HOME"])
        assert [r.exit_status for r in batch] == [0, 3, 0]
        assert "trainlab-asshd-" in batch[2].stdout  # a private home, no ~/.bashrc
        with pytest.raises(trainlab.CommandTimeout):
            s.run("sleep 30", timeout=0.3)
        assert s.run("echo still").stdout == "still\n"
        port = lab.ssh.port
    assert not listening(port)


def test_the_sandbox_imports_asyncssh_without_its_dsa_warning() -> None:
    # A fresh interpreter, so the import really happens, with every warning an error.
    def python(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-W", "error", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    raw = python("import asyncssh")
    # The locked versions do warn: if this fails, asyncssh stopped touching DSA, and the
    # filter in pyproject.toml and in import_asyncssh can go.
    assert "DSA is deprecated" in raw.stderr
    through_sandbox = python(
        "from trainlab.sandbox.asshd import import_asyncssh; print(import_asyncssh().__name__)"
    )
    assert through_sandbox.stderr == ""
    assert through_sandbox.stdout == "asyncssh\n"


def test_bad_parts_and_missing_parts_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TargetError, match="unknown sandbox parts"):
        Sandbox(["ftp"])
    with pytest.raises(TargetError, match="auto, openssh or asyncssh"):
        Sandbox(["ssh"], ssh_server="dropbear")

    from trainlab.sandbox import aws

    def no_moto(self: Any) -> None:
        raise TrainlabError("moto's server is not installed: pip install 'trainlab[sandbox]'")

    monkeypatch.setattr(aws.MotoServer, "__init__", no_moto)
    with Sandbox(["aws"]) as lab:
        assert "pip install 'trainlab[sandbox]'" in lab.missing["aws"]
        with pytest.raises(TrainlabError, match=r"no aws server: .*pip install"):
            lab.target("aws")
        with pytest.raises(TrainlabError, match=r"not started with 'ssh'"):
            lab.target("ssh")
    with pytest.raises(TrainlabError, match="pip install"), Sandbox(["aws"], strict=True):
        pass


def test_powershell_parts_near_and_far() -> None:
    with Sandbox(["winrm", "pwsh"]) as lab:
        assert lab.missing == {}
        near = lab.connect("winrm")
        far = lab.connect("winrm", rtt=0.02)
        assert near.run("echo near").stdout == "near\n"
        assert far.run("echo far").stdout == "far\n"
        assert near.target.port != far.target.port
        host = lab.connect("pwsh")
        assert host.run("echo local").stdout == "local\n"
        with pytest.raises(TargetError, match="no round trip"):
            lab.target("pwsh", rtt=0.02)
        port = near.target.port
    assert not listening(port)


@pytest.mark.ssh
@pytest.mark.winrm
def test_pwsh_over_ssh_on_the_sandbox_sshd_near_and_far() -> None:
    _need_sshd()
    with Sandbox(["ssh"], ssh_server="openssh") as lab:
        near = lab.connect("pwsh+ssh")
        far = lab.connect("pwsh+ssh", rtt=0.02)
        assert near.run("echo near").stdout == "near\n"
        assert far.run("echo far").stdout == "far\n"
        assert near.target.scheme == "pwsh+ssh"
        assert near.target.port != far.target.port
        assert lab.connect("ssh").run("echo plain").stdout == "plain\n"  # ssh:// as before
    with Sandbox(["pwsh"]) as lab, pytest.raises(TrainlabError, match="not started with 'ssh'"):
        lab.target("pwsh+ssh")


@pytest.mark.ssh
def test_an_sshd_that_exits_at_start_leaves_no_keys_or_open_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _need_sshd()
    from trainlab.sandbox import sshd

    made: list[sshd.SSHServer] = []

    class Failing(sshd.SSHServer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**{**kwargs, "config": "NoSuchKeyword yes"})
            made.append(self)

    monkeypatch.setattr(sshd, "SSHServer", Failing)
    with Sandbox(["ssh"], ssh_server="openssh") as lab:
        assert "sshd exited at start" in lab.missing["ssh"]
    [server] = made
    assert server._log.closed
    assert not server.dir.exists()  # its private keys are gone too
