"""SSH against a real OpenSSH server on loopback: auth, host keys, timeouts, faults, files."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import trainlab
from tests.integration.test_local import gone, reaped, wait_gone
from tests.servers import _need_sshd
from trainlab.sandbox.sshd import SSHServer
from trainlab.transports.ssh import InsecureHostKeyWarning

pytestmark = pytest.mark.ssh
MODES = ["exec", "shell"]


@pytest.fixture(params=MODES)
def session(
    request: pytest.FixtureRequest, sshd: SSHServer, ssh_options: dict[str, Any]
) -> trainlab.Session:
    return trainlab.connect(sshd.uri, mode=request.param, reuse=False, **ssh_options)


def new_key(
    tmp_path: Path, kind: str, passphrase: str = "", authorize: SSHServer | None = None
) -> str:
    path = tmp_path / f"extra_{kind}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    if authorize is not None:
        with open(authorize.dir / "authorized_keys", "a") as handle:
            handle.write(path.with_suffix(".pub").read_text())
    return str(path)


# ------------------------------------------------------------------ auth


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_key_types(sshd: SSHServer, ssh_options: dict[str, Any], kind: str) -> None:
    options = {**ssh_options, "key_file": str(sshd.dir / f"client_{kind}")}
    s = trainlab.connect(sshd.uri, reuse=False, **options)
    assert s.run("echo ok").stdout == "ok\n"


def test_encrypted_key_with_passphrase(
    sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    key = new_key(tmp_path, "ed25519", passphrase="open sesame", authorize=sshd)
    options = {**ssh_options, "key_file": key}
    s = trainlab.connect(sshd.uri, reuse=False, passphrase="open sesame", **options)
    assert s.run("echo ok").stdout == "ok\n"
    with pytest.raises(trainlab.ConnectError, match="is encrypted: pass passphrase=") as info:
        trainlab.connect(sshd.uri, reuse=False, **options).open()
    assert "sesame" not in str(info.value)
    with pytest.raises(trainlab.ConnectError, match="wrong passphrase") as info:
        trainlab.connect(sshd.uri, reuse=False, passphrase="wrong secret", **options).open()
    assert "wrong secret" not in str(info.value)


def test_unauthorized_key_and_password_fail_without_echoing_secrets(
    sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    stranger = new_key(tmp_path, "ed25519")
    options = {**ssh_options, "key_file": stranger}
    with pytest.raises(trainlab.ConnectError) as info:
        trainlab.connect(sshd.uri, reuse=False, password="hunter2", **options).open()
    message = str(info.value)
    assert f"authentication as {sshd.user}@127.0.0.1:{sshd.port} failed" in message
    assert f"key {stranger}" in message
    assert "the server accepts publickey" in message
    assert "hunter2" not in message


def test_missing_key_file(sshd: SSHServer, ssh_options: dict[str, Any]) -> None:
    options = {**ssh_options, "key_file": "/nonexistent/id_ed25519"}
    with pytest.raises(
        trainlab.ConnectError, match="key file /nonexistent/id_ed25519 does not exist"
    ):
        trainlab.connect(sshd.uri, reuse=False, **options).open()


def test_refused_connection_is_retried_when_asked_then_named(ssh_options: dict[str, Any]) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = trainlab.connect(
        f"ssh://nobody@127.0.0.1:{port}",
        reuse=False,
        connect_retries=1,
        retry_backoff=0.01,
        retry_refused=True,  # by default a refusal fails at once
        **ssh_options,
    )
    with pytest.raises(trainlab.ConnectError, match=r"connection refused \(2 attempts\)"):
        s.run("true")
    frame = s.metrics
    assert frame["operation"].tolist() == ["connect"]
    assert not frame["ok"].any()


# ------------------------------------------------------------- host keys


def test_strict_refuses_an_unknown_host(
    sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    options = {**ssh_options, "known_hosts": str(empty), "host_key_policy": "strict"}
    with pytest.raises(trainlab.HostKeyError, match="ssh-keyscan -p") as info:
        trainlab.connect(sshd.uri, reuse=False, **options).open()
    assert f"[127.0.0.1]:{sshd.port} is not in" in str(info.value)
    assert not empty.exists()


def test_accept_new_learns_then_strict_trusts(
    sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    learned = tmp_path / "dir" / "known_hosts"
    options = {**ssh_options, "known_hosts": str(learned)}
    trainlab.connect(sshd.uri, reuse=False, host_key_policy="accept-new", **options).open()
    line = learned.read_text()
    assert line.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert oct(learned.stat().st_mode & 0o777) == "0o600"
    s = trainlab.connect(sshd.uri, reuse=False, host_key_policy="strict", **options)
    assert s.run("echo trusted").stdout == "trusted\n"
    assert learned.read_text() == line  # learned once


def test_changed_host_key_is_refused(
    sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    impostor = new_key(tmp_path, "ed25519")
    public = Path(impostor + ".pub").read_text().split()
    known = tmp_path / "changed_known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {public[0]} {public[1]}\n")
    for policy in ("strict", "accept-new"):
        options = {**ssh_options, "known_hosts": str(known), "host_key_policy": policy}
        with pytest.raises(trainlab.HostKeyError, match="has CHANGED") as info:
            trainlab.connect(sshd.uri, reuse=False, **options).open()
        assert "ssh-keygen -R" in str(info.value)


def test_policy_off_warns_once(
    sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    from trainlab.transports.ssh import hostkeys

    hostkeys._warned_hosts.clear()
    options = {**ssh_options, "known_hosts": str(tmp_path / "none"), "host_key_policy": "off"}
    with pytest.warns(InsecureHostKeyWarning, match="is not checked"):
        trainlab.connect(sshd.uri, reuse=False, **options).open()
    trainlab.connect(sshd.uri, reuse=False, **options).open()  # no second warning
    assert not (tmp_path / "none").exists()


# ------------------------------------------------------------- ssh config


def test_ssh_config_alias(sshd: SSHServer, ssh_options: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host lab-alias\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.key_file}\n"
    )
    options = {**ssh_options, "ssh_config": str(config), "key_file": None}
    s = trainlab.connect("ssh://lab-alias", reuse=False, **options)
    assert s.run("echo via-config").stdout == "via-config\n"
    assert s.transport.identity() == ("ssh", sshd.user, "127.0.0.1", sshd.port, None)


def test_cipher_and_kex_choices_are_used_or_named(
    sshd: SSHServer, ssh_options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="paramiko")  # paramiko logs the agreed kex
    s = trainlab.connect(
        sshd.uri, reuse=False, ciphers="aes256-ctr", kex="ecdh-sha2-nistp256", **ssh_options
    )
    assert s.run("echo ok").stdout == "ok\n"
    assert s.transport._client.local_cipher == "aes256-ctr"  # type: ignore[attr-defined]
    assert "Kex: ecdh-sha2-nistp256" in caplog.messages
    s.close()
    for option, value in (("ciphers", "chacha20-poly1305@openssh.com"), ("kex", "sntrup761")):
        with pytest.raises(trainlab.TargetError, match=f"unsupported {option[:3]}.*choose from"):
            trainlab.connect(sshd.uri, reuse=False, **{**ssh_options, option: value}).open()


# -------------------------------------------------------- timeouts, daemons


def test_timeout_leaves_nothing_running_on_the_host(session: trainlab.Session) -> None:
    with pytest.raises(trainlab.CommandTimeout) as info:
        session.run("sleep 300 & echo $!; (sleep 301 & echo $! >&2); wait", timeout=1)
    child = int(info.value.stdout.decode().split()[0])
    orphan = int(info.value.stderr.decode().split()[0])
    with reaped([child, orphan]):
        assert wait_gone(child)
        assert wait_gone(orphan)
    assert session.run("echo usable").stdout == "usable\n"


def test_command_leaving_a_daemon_returns(session: trainlab.Session) -> None:
    r = session.run("nohup sleep 300 >/dev/null 2>&1 & echo $!", timeout=20)
    daemon = int(r.stdout)
    with reaped([daemon]):
        assert not gone(daemon)
        held = session.run("sleep 300 & echo $!", timeout=20)  # stdout still held open
        with reaped([int(held.stdout)]):
            assert held.exit_status == 0
            assert session.run("echo next").stdout == "next\n"


# ------------------------------------------------------------------ faults


def cut_connections(sshd: SSHServer) -> None:
    for pid in sshd.connection_pids():
        os.kill(pid, signal.SIGKILL)


def test_dropped_connection_fails_the_call_in_flight_once(
    session: trainlab.Session, sshd: SSHServer, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    session.run("true")
    outcome: dict[str, BaseException] = {}

    def in_flight() -> None:
        try:
            session.run(f"echo x >> {marker}; sleep 5", timeout=30)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=in_flight)
    thread.start()
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    cut_connections(sshd)
    thread.join(timeout=30)
    assert isinstance(outcome.get("error"), trainlab.TransportError)
    assert session.run("echo back").stdout == "back\n"
    assert marker.read_text() == "x\n"
    frame = session.metrics
    assert frame["operation"].tolist().count("connect") == 2
    assert frame["reconnected"].iloc[-1]


def test_connection_cut_between_calls_reconnects(
    session: trainlab.Session, sshd: SSHServer
) -> None:
    session.run("true")
    cut_connections(sshd)
    deadline = time.monotonic() + 10
    while session.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session.run("echo again").stdout == "again\n"
    assert session.reconnects == 1


# ------------------------------------------------------------------- files


def test_upload_download_and_cache_invalidation(session: trainlab.Session, tmp_path: Path) -> None:
    remote = tmp_path / "remote.txt"
    remote.write_text("old")
    assert session.read_text(str(remote), ttl=60) == "old"
    local = tmp_path / "local.txt"
    local.write_text("new content")
    assert session.upload(local, str(remote)) == len("new content")
    assert session.read_text(str(remote), ttl=60) == "new content"
    back = tmp_path / "back.txt"
    assert session.download(str(remote), back) == len("new content")
    assert back.read_text() == "new content"
    with pytest.raises(trainlab.FileMissing):
        session.download(str(tmp_path / "absent"), tmp_path / "x")


def test_permission_denied_is_a_file_error(session: trainlab.Session) -> None:
    with pytest.raises(trainlab.FileError) as info:
        session.read_bytes("/proc/1/mem")
    assert not isinstance(info.value, trainlab.FileMissing)


def test_batch_in_one_round_trip(session: trainlab.Session) -> None:
    batch = session.run_many([f"echo {n}" for n in range(20)] + ["exit 4"])
    assert [r.stdout for r in batch[:20]] == [f"{n}\n" for n in range(20)]
    assert batch[20].exit_status == 4
    assert batch.round_trips == 1


def test_registry_reuses_the_live_ssh_session(sshd: SSHServer, ssh_options: dict[str, Any]) -> None:
    a = trainlab.connect(sshd.uri, **ssh_options)
    assert trainlab.connect(sshd.uri, **ssh_options) is a
    assert trainlab.connect(sshd.uri, mode="shell", **ssh_options) is not a


# -------------------------------------------------------------- jump hosts


def test_through_a_jump_host_that_is_shared(
    sshd: SSHServer, jump_sshd: SSHServer, jump_options: dict[str, Any]
) -> None:
    jump = f"{jump_sshd.user}@127.0.0.1:{jump_sshd.port}"
    before = len(jump_sshd.connection_pids())
    a = trainlab.connect(sshd.uri, proxy_jump=jump, **jump_options)
    b = trainlab.connect(sshd.uri, mode="shell", proxy_jump=jump, **jump_options)
    assert a.run("echo via-jump").stdout == "via-jump\n"
    assert b.run_many(["echo one", "echo two"])[1].stdout == "two\n"
    targets = trainlab.sessions()["target"].tolist()
    assert targets.count(f"ssh://{jump}") == 1  # one kept jump session, shared
    assert len(jump_sshd.connection_pids()) == before + 1
    assert a.transport.identity()[-1] == jump
    direct = trainlab.connect(sshd.uri, **jump_options)
    assert direct._key("run", "x") != a._key("run", "x")


def test_jump_chain_and_ssh_config(
    sshd: SSHServer, jump_sshd: SSHServer, jump_options: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host target\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  ProxyJump {jump_sshd.user}@127.0.0.1:{jump_sshd.port}\n"
    )
    s = trainlab.connect("ssh://target", **{**jump_options, "ssh_config": str(config)})
    assert s.run("echo configured").stdout == "configured\n"
    hop = f"{jump_sshd.user}@127.0.0.1:{jump_sshd.port}"
    chained = trainlab.connect(sshd.uri, proxy_jump=f"{hop},{hop}", **jump_options)
    assert chained.run("echo two-hops").stdout == "two-hops\n"


def test_jump_host_that_cannot_reach_the_target(
    jump_sshd: SSHServer, jump_options: dict[str, Any]
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    jump = f"{jump_sshd.user}@127.0.0.1:{jump_sshd.port}"
    s = trainlab.connect(
        f"ssh://{jump_sshd.user}@127.0.0.1:{closed}", proxy_jump=jump, **jump_options
    )
    with pytest.raises(trainlab.ConnectError, match=r"could not reach 127\.0\.0\.1"):
        s.run("true")


# ------------------------------------------------------------ device CLI


@pytest.fixture
def cli(cli_sshd: SSHServer, tmp_path: Path) -> trainlab.Session:
    known = tmp_path / "known_hosts"
    known.write_text(Path(cli_sshd.known_hosts).read_text())
    options = {**cli_sshd.client_options, "known_hosts": str(known)}
    return trainlab.connect(cli_sshd.uri, mode="cli", device="junos", reuse=False, **options)


def test_cli_outputs_are_cut_at_the_prompt(cli: trainlab.Session) -> None:
    r = cli.run("show version")
    assert (r.stdout, r.stderr, r.exit_status) == (
        "Hostname: lab-router\nModel: vmx\nJunos: 21.4R1.12\n",
        "",
        0,
    )
    table = cli.run("show interfaces terse").table()
    assert len(table) == 30  # paging was turned off on open: no ---(more)---
    assert table.loc[29, "Local"] == "10.0.29.1/24"


def test_cli_errors_fail_the_result(cli: trainlab.Session) -> None:
    r = cli.run("show bogus")
    assert r.exit_status == 1
    assert r.stderr == "syntax error, expecting <command>.\n"
    with pytest.raises(trainlab.CommandFailed, match="syntax error"):
        cli.run("show bogus", check=True)


def test_cli_timeout_interrupts_and_the_session_goes_on(cli: trainlab.Session) -> None:
    with pytest.raises(trainlab.CommandTimeout, match="interrupted"):
        cli.run("show slow", timeout=1)
    assert cli.run("show version").exit_status == 0


def test_cli_batches_run_one_by_one_and_say_so(cli: trainlab.Session) -> None:
    batch = cli.run_many(["show version", "show bogus"])
    assert [r.exit_status for r in batch] == [0, 1]
    assert batch.round_trips == 2
    assert cli.platform.name == "junos"


def test_cli_without_paging_off_would_hang_on_more(cli_sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(Path(cli_sshd.known_hosts).read_text())
    options = {**cli_sshd.client_options, "known_hosts": str(known)}
    s = trainlab.connect(cli_sshd.uri, mode="cli", cli_paging="", reuse=False, **options)
    with pytest.raises(trainlab.CommandTimeout):
        s.run("show interfaces terse", timeout=1)


def test_close_releases_the_connection(
    session: trainlab.Session, sshd: SSHServer, tmp_path: Path
) -> None:
    before = set(sshd.connection_pids())
    session.run("true")
    session.read_bytes("/etc/hostname")
    assert set(sshd.connection_pids()) - before
    session.close()
    deadline = time.monotonic() + 10
    while set(sshd.connection_pids()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not set(sshd.connection_pids()) - before


def test_agent_keys(sshd: SSHServer, ssh_options: dict[str, Any], ssh_agent: str) -> None:
    options = {**ssh_options, "key_file": None, "agent": True}
    s = trainlab.connect(sshd.uri, reuse=False, **options)
    assert s.run("echo via-agent").stdout == "via-agent\n"
    without = {**options, "agent": False}
    with pytest.raises(trainlab.ConnectError, match="tried nothing"):
        trainlab.connect(sshd.uri, reuse=False, **without).open()


def test_shell_mode_is_clean_bash_even_when_bashrc_changes_options(tmp_path: Path) -> None:
    # Debian's bash reads ~/.bashrc when sshd starts it; the kept shell must not
    # inherit errexit, nounset, pipefail or traps from it (exec mode does, as ssh does).
    _need_sshd()
    with SSHServer(tmp_path / "rc-sshd") as server:
        (server.dir / "home" / ".bashrc").write_text(
            "set -o errexit -o nounset -o pipefail\ntrap 'echo trapped >&2' EXIT\n"
        )
        exec_mode = trainlab.connect(server.uri, reuse=False, **server.client_options)
        assert "unbound variable" in exec_mode.run("echo $NOT_SET_ANYWHERE").stderr  # rc applies
        s = trainlab.connect(server.uri, mode="shell", reuse=False, **server.client_options)
        assert s.run("false; echo after").stdout == "after\n"
        assert s.run("echo ${NOT_SET_ANYWHERE}ok").stdout == "ok\n"
        assert s.run("false | true").exit_status == 0
        batch = s.run_many(["exit 4", "echo still"])
        assert [r.exit_status for r in batch] == [4, 0]
        assert "trapped" not in batch[1].stderr
        exec_mode.close()
        s.close()
