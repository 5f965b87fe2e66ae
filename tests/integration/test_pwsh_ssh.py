"""pwsh+ssh:// against OpenSSH's sshd whose ``powershell`` subsystem is the PSRP test
host: one connection and one channel for every command, the host or the connection
lost mid-command, deadlines, login failures, and a server without the subsystem."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import trainlab
from trainlab.sandbox.sshd import SSHServer

pytestmark = [pytest.mark.winrm, pytest.mark.ssh]


def uri(server: SSHServer) -> str:
    return f"pwsh+ssh://{server.user}@127.0.0.1:{server.port}"


@pytest.fixture
def session(pwsh_sshd: SSHServer, pwsh_ssh_options: dict[str, Any]) -> trainlab.Session:
    s = trainlab.connect(uri(pwsh_sshd), reuse=False, **pwsh_ssh_options)
    s.run("true")
    return s


def channel_of(session: trainlab.Session) -> Any:
    host = session.transport._host  # type: ignore[attr-defined]
    assert host is not None
    return host.stream.channel


def test_one_connection_and_one_channel_serve_every_command(session: trainlab.Session) -> None:
    with session:
        channel = channel_of(session)
        answers = [session.run(f"echo {n}").stdout for n in range(20)]
        assert answers == [f"{n}\n" for n in range(20)]
        batch = session.run_many(["echo a", "exit 4", "echo b >&2"])
        assert [(r.stdout, r.stderr, r.exit_status) for r in batch] == [
            ("a\n", "", 0),
            ("", "", 4),
            ("", "b\n", 0),
        ]
        frame = session.run_ps(
            """printf '[{"Id":1,"Name":"a"},{"Id":2,"Name":"b"}]'""", as_frame=True
        )
        assert frame["Id"].tolist() == [1, 2]
        assert channel_of(session) is channel
        assert session.metrics["operation"].tolist().count("connect") == 1
        assert session.reconnects == 0


def test_connect_returns_the_live_session_for_the_same_target(
    pwsh_sshd: SSHServer, pwsh_ssh_options: dict[str, Any]
) -> None:
    a = trainlab.connect(uri(pwsh_sshd), **pwsh_ssh_options)
    b = trainlab.connect(uri(pwsh_sshd), **pwsh_ssh_options)
    c = trainlab.connect(uri(pwsh_sshd), subsystem="powershell-lines", **pwsh_ssh_options)
    assert a is b
    assert c is not a
    assert c.run("printf 'x\\ny\\n'").stdout == "x\ny"  # a record a line: line mode
    a.close()
    c.close()


def test_host_killed_mid_command_is_reported_and_restarted_on_the_kept_connection(
    session: trainlab.Session,
) -> None:
    with session:
        connection = session.transport._client  # type: ignore[attr-defined]
        channel = channel_of(session)
        # The script's parent is the subsystem's process: the host dies mid-command.
        with pytest.raises(trainlab.TransportError, match=r"exited.*not re-run"):
            session.run("kill -9 $PPID; sleep 5")
        assert session.run("echo fresh").stdout == "fresh\n"
        assert channel_of(session) is not channel
        assert session.transport._client is connection  # type: ignore[attr-defined]


def cut_connections(server: SSHServer) -> None:
    for pid in server.connection_pids():
        os.kill(pid, signal.SIGKILL)


def test_connection_dropped_mid_command_fails_it_once_then_reconnects(
    session: trainlab.Session, pwsh_sshd: SSHServer, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    outcome: dict[str, BaseException] = {}

    def in_flight() -> None:
        try:
            session.run(f"echo x >> {marker}; sleep 5", timeout=30)
        except BaseException as exc:
            outcome["error"] = exc

    with session:
        connection = session.transport._client  # type: ignore[attr-defined]
        thread = threading.Thread(target=in_flight)
        thread.start()
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        cut_connections(pwsh_sshd)
        thread.join(20)
        assert not thread.is_alive()
        assert isinstance(outcome.get("error"), trainlab.TransportError)
        assert "connection" in str(outcome["error"])
        assert "not re-run" in str(outcome["error"])
        assert session.run("echo back").stdout == "back\n"
        assert session.transport._client is not connection  # type: ignore[attr-defined]
        assert session.reconnects == 1
        assert marker.read_text() == "x\n"  # the failed command was not run again


def test_idle_connection_dropped_is_reconnected_on_the_next_call(
    session: trainlab.Session, pwsh_sshd: SSHServer
) -> None:
    with session:
        cut_connections(pwsh_sshd)
        deadline = time.monotonic() + 5
        while session.transport.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.run("echo again").stdout == "again\n"
        assert session.reconnects == 1


def test_deadline_stops_the_pipeline_and_keeps_the_channel(session: trainlab.Session) -> None:
    with session:
        channel = channel_of(session)
        started = time.monotonic()
        with pytest.raises(trainlab.CommandTimeout, match="stays in use") as info:
            session.run_many(["echo first", "sleep 5"], timeout=0.5)
        assert time.monotonic() - started < 4
        assert info.value.partial is not None
        assert [r.stdout for r in info.value.partial] == ["first\n"]
        assert session.run("echo ok").stdout == "ok\n"
        assert channel_of(session) is channel


def test_live_output_reaches_on_output_in_order(session: trainlab.Session) -> None:
    seen: list[tuple[str, str]] = []
    with session:
        r = session.run(
            "echo out; echo err >&2", on_output=lambda stream, text: seen.append((stream, text))
        )
    assert (r.stdout, r.stderr) == ("out\n", "err\n")
    assert seen == [("stdout", "out\n"), ("stderr", "err\n")]


def test_wrong_key_is_a_connect_error(
    pwsh_sshd: SSHServer, pwsh_ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    key = tmp_path / "stranger"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    options = {**pwsh_ssh_options, "key_file": str(key)}
    s = trainlab.connect(uri(pwsh_sshd), reuse=False, **options)
    with pytest.raises(trainlab.ConnectError, match=r"authentication as .* failed; tried key"):
        s.run("true")
    s.close()


def test_unknown_host_key_is_refused_under_strict(
    pwsh_sshd: SSHServer, pwsh_ssh_options: dict[str, Any], tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    options = {**pwsh_ssh_options, "known_hosts": str(empty), "host_key_policy": "strict"}
    s = trainlab.connect(uri(pwsh_sshd), reuse=False, **options)
    with pytest.raises(trainlab.HostKeyError):
        s.run("true")
    s.close()


def test_server_without_the_subsystem_says_how_to_add_it(
    sshd: SSHServer, ssh_options: dict[str, Any]
) -> None:
    # The suite's default sshd serves sftp only, as a host where nobody set this up.
    s = trainlab.connect(uri(sshd), reuse=False, **ssh_options)
    with pytest.raises(trainlab.ConnectError) as info:
        s.run("true")
    s.close()
    message = str(info.value)
    assert "has no 'powershell' SSH subsystem" in message
    assert "Subsystem powershell /usr/bin/pwsh -sshs -NoLogo" in message
    assert "Subsystem powershell c:/progra~1/powershell/7/pwsh.exe -sshs" in message


def test_subsystem_that_never_answers_is_dropped_at_open_timeout(
    pwsh_sshd: SSHServer, pwsh_ssh_options: dict[str, Any]
) -> None:
    options = {**pwsh_ssh_options, "subsystem": "silent", "open_timeout": 0.5}
    s = trainlab.connect(uri(pwsh_sshd), reuse=False, **options)
    started = time.monotonic()
    with pytest.raises(trainlab.ConnectError, match=r"did not open a runspace within 0\.5 s"):
        s.run("true")
    assert time.monotonic() - started < 5
    s.close()


def test_subsystem_that_prints_text_is_named(
    pwsh_sshd: SSHServer, pwsh_ssh_options: dict[str, Any]
) -> None:
    s = trainlab.connect(uri(pwsh_sshd), reuse=False, subsystem="chatty", **pwsh_ssh_options)
    with pytest.raises(trainlab.ConnectError) as info:
        s.run("true")
    s.close()
    message = str(info.value)
    assert "not a PSRP packet (b'Welcome to the bastion')" in message
    assert "login script" in message


def test_through_a_jump_host(
    pwsh_sshd: SSHServer,
    pwsh_ssh_options: dict[str, Any],
    jump_sshd: SSHServer,
) -> None:
    # The jump host takes this server's client key too, and the known_hosts trusts both.
    with open(jump_sshd.dir / "authorized_keys", "a") as handle:
        handle.write((pwsh_sshd.dir / "authorized_keys").read_text())
    known = Path(pwsh_ssh_options["known_hosts"])
    known.write_text(known.read_text() + Path(jump_sshd.known_hosts).read_text())
    hop = f"{jump_sshd.user}@127.0.0.1:{jump_sshd.port}"
    with trainlab.connect(uri(pwsh_sshd), reuse=False, proxy_jump=hop, **pwsh_ssh_options) as s:
        assert s.run("echo far").stdout == "far\n"
        assert s.transport.identity()[-1] == hop
    trainlab.close_all()


def test_pwsh_over_ssh_needs_a_host() -> None:
    with pytest.raises(trainlab.TargetError, match=r"pwsh\+ssh://user@host"):
        trainlab.connect("pwsh+ssh://", reuse=False)


def test_a_refused_connect_says_what_ssh_says(closed_port: int, tmp_path: Path) -> None:
    s = trainlab.connect(
        f"pwsh+ssh://nobody@127.0.0.1:{closed_port}",
        reuse=False,
        ssh_config="",
        known_hosts=str(tmp_path / "known_hosts"),
        connect_retries=3,
    )
    with pytest.raises(trainlab.ConnectError) as info:
        s.run("true")
    assert str(info.value) == (
        f"cannot connect to 127.0.0.1:{closed_port}: connection refused (1 attempt, not "
        "retried: the answer would be the same): is sshd running there, and on that port? "
        "(retry_refused=true waits for a host still booting)"
    )
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
