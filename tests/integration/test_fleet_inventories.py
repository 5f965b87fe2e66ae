"""Fleets from an Ansible inventory and from an ssh_config whose hosts are the suite's sshd."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from trainlab.fleet import Fleet
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh

# Reach the test servers with nothing of this machine's own SSH setup.
NO_USER_KEYS = {"agent": False, "look_for_keys": False}


def test_a_fleet_from_an_ansible_inventory_runs_on_the_sshd(
    sshd: SSHServer, tmp_path: Path
) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[lab]\n"
        "alpha ansible_host=127.0.0.1\n"
        "beta ansible_host=localhost ansible_connection=paramiko\n"
        "[lab:vars]\n"
        f"ansible_port={sshd.port}\n"
        f"ansible_user={sshd.user}\n"
        f"ansible_ssh_private_key_file={sshd.key_file}\n"
        "[control]\n"
        "here ansible_connection=local\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(Path(sshd.known_hosts).read_text())
    fleet = Fleet.from_ansible(
        str(inventory), known_hosts=str(known), ssh_config="", progress=False, **NO_USER_KEYS
    )
    assert sorted(fleet.uris) == ["alpha", "beta", "here"]
    result = fleet.run("echo $((6 * 7)) $(id -un)", check=True)
    assert sorted(result.frame["target"]) == ["alpha", "beta", "here"]
    assert {o.stdout for o in result} == {f"42 {getpass.getuser()}\n"}
    sessions = dict(zip(fleet.uris, fleet.sessions(), strict=True))
    assert sessions["alpha"].uri == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    assert sessions["beta"].uri == f"ssh://{sshd.user}@localhost:{sshd.port}"
    assert sessions["here"].uri == "local://"
    fleet.close()


def test_a_fleet_from_an_ssh_config_takes_its_keys_and_jump_hosts(
    sshd: SSHServer, jump_sshd: SSHServer, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host alpha behind\n"
        "    HostName 127.0.0.1\n"
        f"    Port {sshd.port}\n"
        f"    User {sshd.user}\n"
        f"    IdentityFile {sshd.key_file}\n"
        "Host behind\n"
        "    ProxyJump hop\n"
        "Host hop\n"
        "    HostName 127.0.0.1\n"
        f"    Port {jump_sshd.port}\n"
        f"    User {jump_sshd.user}\n"
        f"    IdentityFile {sshd.key_file}\n"
        "Host *\n"
        "    ServerAliveInterval 30\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(Path(sshd.known_hosts).read_text() + Path(jump_sshd.known_hosts).read_text())
    before = len(jump_sshd.connection_pids())
    fleet = Fleet.from_ssh_config(
        "*,!hop", str(config), known_hosts=str(known), progress=False, **NO_USER_KEYS
    )
    assert fleet.uris == ["alpha", "behind"]
    result = fleet.run("echo reached", check=True)
    assert [(o.target, o.stdout) for o in result] == [
        ("alpha", "reached\n"),
        ("behind", "reached\n"),
    ]
    alpha, behind = fleet.sessions()
    assert alpha.transport.where == behind.transport.where == f"{sshd.user}@127.0.0.1:{sshd.port}"
    assert (alpha.transport.proxy_jump, behind.transport.proxy_jump) == (None, "hop")
    assert len(jump_sshd.connection_pids()) == before + 1
    fleet.close()


def test_without_known_hosts_keys_are_learned_into_homes_known_hosts(
    sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As OpenSSH does (accept-new): here into a private HOME, never the real one."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        f"Host lab\n  HostName 127.0.0.1\n  Port {sshd.port}\n  IdentityFile {sshd.key_file}\n"
    )
    fleet = Fleet.from_ssh_config(progress=False, **NO_USER_KEYS)  # ~/.ssh/config
    assert [o.stdout for o in fleet.run("echo ok", check=True)] == ["ok\n"]
    learned = (tmp_path / ".ssh" / "known_hosts").read_text()
    assert learned.startswith(f"[127.0.0.1]:{sshd.port} ")
    fleet.close()
