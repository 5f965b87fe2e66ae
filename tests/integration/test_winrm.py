"""winrm:// against the WSMan test endpoint: pool reuse, re-open, timeouts, auth, TLS."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import trainlab
from trainlab.sandbox.winrm_server import WinRMServer

pytestmark = pytest.mark.winrm


def connect(server: Any, **options: Any) -> trainlab.Session:
    return trainlab.connect(server.uri, reuse=False, **{**server.client_options, **options})


def test_one_pool_and_one_connection_serve_every_command(winrm_server: Any) -> None:
    creates, accepted = winrm_server.creates, winrm_server.accepted
    with connect(winrm_server) as s:
        answers = [s.run(f"echo {n}").stdout for n in range(20)]
        batch = s.run_many(["echo a", "echo b"])
    assert answers == [f"{n}\n" for n in range(20)]
    assert [r.stdout for r in batch] == ["a\n", "b\n"]
    assert winrm_server.creates - creates == 1
    assert winrm_server.accepted - accepted == 1
    assert s.metrics["operation"].tolist().count("connect") == 1


def test_close_deletes_the_remote_shell(winrm_server: Any) -> None:
    s = connect(winrm_server)
    s.run("true")
    shell_id = s.transport._pool.id
    assert shell_id in winrm_server.shells
    s.close()
    assert shell_id not in winrm_server.shells


def test_idle_pool_whose_shell_was_dropped_is_reopened(winrm_server: Any) -> None:
    with connect(winrm_server, health_check_idle=0) as s:
        s.run("true")
        creates = winrm_server.creates
        winrm_server.drop_shells()  # what WinRM does when the shell's idle timeout passes
        r = s.run("echo back")
        assert r.stdout == "back\n"
        assert winrm_server.creates - creates == 1
        assert s.reconnects == 1
        assert s.metrics["reconnected"].tolist()[-1]


def test_idle_pool_whose_connection_was_cut_is_reopened(winrm_server: Any) -> None:
    with connect(winrm_server, health_check_idle=0) as s:
        s.run("true")
        winrm_server.drop_connections()
        assert s.run("echo back").stdout == "back\n"
        assert s.reconnects == 1


def test_dropped_shell_mid_use_is_reported_then_reopened(winrm_server: Any) -> None:
    with connect(winrm_server, health_check_idle=3600) as s:
        s.run("true")
        winrm_server.drop_shells()
        with pytest.raises(trainlab.TransportError, match=r"gone.*next call opens a new pool"):
            s.run("echo lost")
        assert s.run("echo back").stdout == "back\n"


def test_timeout_stops_the_pipeline_and_keeps_the_pool(winrm_server: Any) -> None:
    with connect(winrm_server) as s:
        s.run("true")
        creates = winrm_server.creates
        with pytest.raises(trainlab.CommandTimeout) as info:
            s.run_many(["echo first", "sleep 5", "echo never"], timeout=1.0)
        assert info.value.command == "sleep 5"
        assert info.value.partial is not None
        assert [r.stdout for r in info.value.partial] == ["first\n"]
        assert s.run("echo ok").stdout == "ok\n"
        assert winrm_server.creates == creates


# What fails to open, on which endpoint, with which options: the error and the fix it names.
OPEN_FAILURES: dict[str, tuple[str, dict[str, Any], type[Exception], str]] = {
    "wrong password, basic": (
        "winrm_server",
        {"password": "not-the-password"},
        trainlab.ConnectError,
        r"refused the credentials of 'trainlab' \(auth=basic\).*password=",
    ),
    "wrong password, negotiate": (
        "winrm_ntlm_server",
        {"password": "not-the-password"},
        trainlab.ConnectError,
        r"refused the credentials",
    ),
    "wrong password, ntlm": (
        "winrm_ntlm_server",
        {"password": "not-the-password", "auth": "ntlm"},
        trainlab.ConnectError,
        r"refused the credentials",
    ),
    "ntlm without message encryption": (
        "winrm_ntlm_server",
        {"encryption": "never"},
        trainlab.ConnectError,
        r"WinRM at http",
    ),
    "basic on plain http, encrypted": (
        "winrm_server",
        {"encryption": "auto"},
        trainlab.TargetError,
        r"encryption=never",
    ),
    "untrusted certificate": (
        "winrms_server",
        {"cert_validation": "true"},
        trainlab.ConnectError,
        r"cert_validation=<path",
    ),
}


@pytest.mark.parametrize("case", list(OPEN_FAILURES))
def test_failing_to_open_names_the_fix_and_no_password(
    case: str, request: pytest.FixtureRequest
) -> None:
    fixture, overrides, error, pattern = OPEN_FAILURES[case]
    server = request.getfixturevalue(fixture)
    s = connect(server, **overrides)
    with pytest.raises(error, match=pattern) as info:
        s.run("true")
    for secret in (server.password, overrides.get("password", server.password)):
        assert secret not in str(info.value)
        assert secret not in repr(s)
    s.close()


@pytest.mark.parametrize("auth", ["negotiate", "ntlm"])
def test_ntlm_messages_are_encrypted(winrm_ntlm_server: Any, auth: str) -> None:
    before = winrm_ntlm_server.encrypted_requests
    with connect(winrm_ntlm_server, auth=auth) as s:
        assert s.run("echo sealed").stdout == "sealed\n"
    assert winrm_ntlm_server.encrypted_requests - before >= 3  # create, command, receive


def test_unreachable_endpoint_names_the_fix() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    s = trainlab.connect(
        f"winrm://u@127.0.0.1:{port}", reuse=False, password="p", connection_timeout=2.0
    )
    with pytest.raises(trainlab.ConnectError, match="Enable-PSRemoting"):
        s.run("true")
    s.close()


def test_certificate_checks_can_be_turned_off(winrms_server: Any) -> None:
    s = connect(winrms_server, cert_validation="false")
    assert s.run("echo tls").stdout == "tls\n"
    s.close()


def test_run_ps_returns_objects_and_frames(winrm_server: Any) -> None:
    script = (
        """printf '[{"Name":"wuauserv","Status":4,"Info":{"Pid":12}},{"Name":"bits","Status":1}]'"""
    )
    with connect(winrm_server) as s:
        objects = s.run_ps(script)
        frame = s.run_ps(script, as_frame=True)
        single = s.run_ps("""printf '{"Name":"only"}'""")
        empty = s.run_ps("true")
        with pytest.raises(trainlab.OutputError, match="not JSON"):
            s.run_ps("echo plain")
    assert objects[0]["Name"] == "wuauserv"
    assert frame["Name"].tolist() == ["wuauserv", "bits"]
    assert "Info.Pid" in frame.columns
    assert single == [{"Name": "only"}]
    assert empty == []


def test_run_ps_failure_raises_command_failed(winrm_server: Any) -> None:
    with connect(winrm_server) as s, pytest.raises(trainlab.CommandFailed):
        s.run_ps("exit 4")


def test_read_timeout_must_exceed_operation_timeout() -> None:
    with pytest.raises(trainlab.TargetError, match="read_timeout"):
        trainlab.connect("winrm://u@h", reuse=False, operation_timeout=30, read_timeout=10)


def test_connect_reuses_the_live_session(winrm_server: Any) -> None:
    a = trainlab.connect(winrm_server.uri, **winrm_server.client_options)
    b = trainlab.connect(winrm_server.uri, **winrm_server.client_options)
    assert a is b
    a.close()


def test_auth_that_needs_a_missing_package_names_it(winrm_ntlm_server: Any) -> None:
    s = connect(winrm_ntlm_server, auth="credssp")
    with pytest.raises(trainlab.TargetError, match=r"pip install 'pypsrp\[credssp\]'"):
        s.run("true")
    s.close()


def test_a_server_of_its_own_stops_cleanly() -> None:
    with WinRMServer(auth="basic,ntlm") as server:
        s = connect(server)
        assert s.run("echo own").stdout == "own\n"
        s.close()
    assert not server.shells


def test_long_commands_travel_whole(winrm_server: Any) -> None:
    # More than one WSMan envelope: pypsrp sends the rest of the pipeline with Send.
    payload = "x" * 120_000
    with connect(winrm_server) as s:
        assert s.run(f"printf %s '{payload}' | wc -c").stdout.strip() == "120000"


def test_a_receive_that_gets_no_answer_is_not_retried_past_the_deadline() -> None:
    # pypsrp retries a Receive whose HTTP read timed out five times, with backoff
    # (minutes); a session gives up after one, shortly past its deadline.
    import threading
    import time

    released = threading.Event()
    with WinRMServer() as server:
        s = connect(server)
        s.run("true")
        answer = server._receive
        held = 0

        def hang(*args: Any) -> str:
            nonlocal held
            held += 1
            if held <= 2:  # the first two Receives go unanswered
                released.wait(20)
            return answer(*args)

        server._receive = hang  # type: ignore[method-assign]
        started = time.monotonic()
        try:
            with pytest.raises(trainlab.TransportError, match="timed out"):
                s.run("echo late", timeout=1.0)
            assert time.monotonic() - started < 8
        finally:
            released.set()
            s.close()


@pytest.mark.parametrize(
    ("fixture", "auth"),
    # Not negotiate: its SpnegoError leaves the 401 answer's socket to the garbage collector.
    [("winrm_server", "basic"), ("winrm_ntlm_server", "ntlm")],
)
def test_missing_password_is_a_target_error_naming_it(
    fixture: str, auth: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(fixture)
    s = connect(server, password=None, auth=auth)
    with pytest.raises(trainlab.TargetError, match=rf"auth={auth}.*password="):
        s.run("true")
    s.close()


def test_an_interrupted_command_does_not_leave_its_shell_on_the_server(
    winrm_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainlab.transports.winrm import WinRMTransport

    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C in the notebook while the answer is awaited

    s = connect(winrm_server)
    s.run("true")
    shell_id = s.transport._pool.id
    with monkeypatch.context() as patch:
        patch.setattr(WinRMTransport, "_collect", interrupted)
        with pytest.raises(KeyboardInterrupt):
            s.run("sleep 1")
    assert s.run("echo again").stdout == "again\n"
    s.close()
    assert shell_id not in winrm_server.shells  # WinRM allows few shells per user
