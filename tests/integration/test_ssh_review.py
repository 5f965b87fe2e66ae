"""Regressions from a review that tried to break the SSH transport."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

import trainlab
from tests.integration.test_local import gone, reaped, wait_gone
from trainlab.sandbox.proxy import LatencyProxy
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh


def test_threads_sharing_sftp_in_exec_mode(sshd: SSHServer, ssh_options: dict[str, Any]) -> None:
    s = trainlab.connect(sshd.uri, reuse=False, **ssh_options)

    def work() -> None:
        for _ in range(10):
            s.stat("/etc/passwd")
            s.read_bytes("/etc/hostname")

    threads = [threading.Thread(target=work, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


@pytest.fixture(scope="module")
def rsa_sshd(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("rsa-sshd")
    key = folder / "host_rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    config = f"HostKey {key}\nHostKeyAlgorithms rsa-sha2-512,rsa-sha2-256"
    with SSHServer(folder, config=config) as server:
        yield server


def test_rsa_host_learned_then_trusted(rsa_sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    options = {**rsa_sshd.client_options, "known_hosts": str(known)}
    for _ in range(2):  # learn once, then verify against the learned ssh-rsa line
        assert trainlab.connect(rsa_sshd.uri, reuse=False, **options).run("echo ok").ok
    assert " ssh-rsa " in known.read_text()
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(rsa_sshd.port), "127.0.0.1"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    (tmp_path / "scanned").write_text(scanned)
    strict = {**options, "known_hosts": str(tmp_path / "scanned"), "host_key_policy": "strict"}
    assert trainlab.connect(rsa_sshd.uri, reuse=False, **strict).run("echo ok").ok


def host_line(server: SSHServer, public: str) -> str:
    kind, data = public.split()[:2]
    return f"[127.0.0.1]:{server.port} {kind} {data}\n"


def test_known_hosts_lines_openssh_accepts(
    sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = host_line(sshd, (tmp_path / "other.pub").read_text())
    right = host_line(sshd, sshd.host_public_key)
    known = tmp_path / "known_hosts"
    known.write_bytes(
        b"@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n"
        b"garbage line with \xff bytes\n"
        b"[127.0.0.1]:1 ssh-ed25519 not-base64!!\n"
        + wrong.encode()  # a second key of the same type, not the first
        + right.encode()
    )
    options = {**ssh_options, "known_hosts": str(known), "host_key_policy": "strict"}
    assert trainlab.connect(sshd.uri, reuse=False, **options).run("echo ok").ok
    known.write_text("@revoked " + right)
    with pytest.raises(trainlab.HostKeyError, match="@revoked"):
        trainlab.connect(sshd.uri, reuse=False, **options).open()
    folder = {**options, "known_hosts": str(tmp_path)}
    with pytest.raises(trainlab.ConnectError, match="is not a file"):
        trainlab.connect(sshd.uri, reuse=False, **folder).open()


@pytest.fixture
def slow_link(sshd: SSHServer) -> Any:
    with LatencyProxy("127.0.0.1", sshd.port, rtt=0.3) as proxy:
        yield proxy


def test_slow_link_keeps_the_whole_output(
    sshd: SSHServer, ssh_options: dict[str, Any], slow_link: LatencyProxy
) -> None:
    s = trainlab.connect(
        f"ssh://{sshd.user}@127.0.0.1:{slow_link.port}",
        reuse=False,
        **{**ssh_options, "host_key_policy": "accept-new"},
    )
    r = s.run("head -c 2130000 /dev/zero")
    assert len(r.stdout_bytes) == 2_130_000
    with pytest.raises(trainlab.CommandTimeout, match="were killed"):
        s.run("echo $$ > /dev/stderr; exec sleep 9032", timeout=0.1)
    out = subprocess.run(
        ["pgrep", "-f", "sleep 9032"], capture_output=True, text=True, check=False
    ).stdout
    pids = [int(p) for p in out.split()]
    with reaped(pids):
        assert all(wait_gone(pid) for pid in pids)


def test_exec_mode_edges(sshd: SSHServer, ssh_options: dict[str, Any]) -> None:
    s = trainlab.connect(sshd.uri, reuse=False, **ssh_options)
    assert s.run("cat", timeout=20).stdout == ""  # stdin is /dev/null
    assert s.run("sh -c 'kill -TERM $$'").exit_status == 143
    assert s.run("printf %s " + "x" * 200_000 + " | wc -c").stdout.strip() == "200000"
    r = s.run("sleep 300 >/dev/null 2>&1 & echo $!", timeout=20)
    with reaped([int(r.stdout)]):
        assert not gone(int(r.stdout))
    assert s.run("exit 4").exit_status == 4
    assert s.run("printf 'no newline'").stdout == "no newline"


def test_a_port_that_never_speaks_ssh(ssh_options: dict[str, Any]) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        s = trainlab.connect(
            f"ssh://nobody@127.0.0.1:{port}", reuse=False, **{**ssh_options, "timeout": 1.0}
        )
        with pytest.raises(trainlab.ConnectError, match="is it an SSH server"):
            s.open()


@pytest.mark.parametrize(
    "uri",
    ["ssh://u:pa ss@h", "u:secretpw@h", "ssh://u:sec/ret@h", "ssh://u:sec@ret@h:x"],
)
def test_passwords_in_uris_never_reach_errors(uri: str) -> None:
    with pytest.raises(trainlab.TargetError) as info:
        trainlab.connect(uri)
    secret = uri.split(":", 2)[1 if "://" not in uri else 2].rsplit("@", 1)[0]
    assert secret not in str(info.value)


def test_ssh_config_oddities(sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host jumpy\n  ProxyCommand nc %h %p\n")
    with pytest.raises(trainlab.TargetError, match="ProxyCommand"):
        trainlab.connect("ssh://jumpy", **{**ssh_options, "ssh_config": str(config)})
    config.write_text("Host badport\n  Port abc\n")
    with pytest.raises(trainlab.TargetError, match="not a number"):
        trainlab.connect("ssh://badport", **{**ssh_options, "ssh_config": str(config)})
    config.write_text(
        f"Host ok\n  HostName 127.0.0.1\n  Port {sshd.port}\n  IdentityFile /nonexistent/key\n"
    )
    s = trainlab.connect("ssh://ok", **{**ssh_options, "ssh_config": str(config)})
    assert s.run("echo fine").stdout == "fine\n"
    with pytest.raises(trainlab.TargetError, match="port 0"):
        trainlab.connect("ssh://host:0")
