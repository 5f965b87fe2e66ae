"""pwsh:// through a real subprocess (the out-of-process PSRP test server): reuse,
health checks, respawn, the client-side deadline, and errors that name the fix."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

import trainlab

pytestmark = pytest.mark.winrm


def host_pid(session: trainlab.Session) -> int:
    host = session.transport._host
    assert host is not None
    return int(host.stream.proc.pid)  # type: ignore[attr-defined]


def test_one_process_serves_every_command(pwsh_options: dict[str, Any]) -> None:
    with trainlab.connect("pwsh://", reuse=False, **pwsh_options) as s:
        s.run("true")
        pid = host_pid(s)
        answers = [s.run(f"echo {n}").stdout for n in range(20)]
        assert answers == [f"{n}\n" for n in range(20)]
        assert host_pid(s) == pid
        assert s.metrics["operation"].tolist().count("connect") == 1


def test_connect_returns_the_live_host_for_the_same_options(pwsh_options: dict[str, Any]) -> None:
    a = trainlab.connect("pwsh://", **pwsh_options)
    b = trainlab.connect("pwsh://", **pwsh_options)
    c = trainlab.connect("pwsh://", cwd="/", **pwsh_options)
    assert a is b
    assert c is not a
    a.close()
    c.close()


def test_a_dead_host_is_respawned_on_the_next_call(pwsh_options: dict[str, Any]) -> None:
    with trainlab.connect("pwsh://", reuse=False, **pwsh_options) as s:
        s.run("true")
        old = host_pid(s)
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while s.transport.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.run("echo again").stdout == "again\n"
        assert host_pid(s) != old
        assert s.reconnects == 1


def test_host_dying_mid_command_is_reported_not_rerun(pwsh_options: dict[str, Any]) -> None:
    with trainlab.connect("pwsh://", reuse=False, **pwsh_options) as s:
        s.run("true")
        with pytest.raises(trainlab.TransportError, match=r"exited.*not re-run"):
            s.run("kill -9 $PPID; sleep 5")
        assert s.run("echo fresh").stdout == "fresh\n"


def test_deadline_stops_the_pipeline_and_keeps_the_host(pwsh_options: dict[str, Any]) -> None:
    with trainlab.connect("pwsh://", reuse=False, **pwsh_options) as s:
        s.run("true")
        pid = host_pid(s)
        started = time.monotonic()
        with pytest.raises(trainlab.CommandTimeout, match="stays in use") as info:
            s.run_many(["echo first", "sleep 5"], timeout=0.5)
        assert time.monotonic() - started < 4
        assert info.value.partial is not None
        assert [r.stdout for r in info.value.partial] == ["first\n"]
        assert s.run("echo ok").stdout == "ok\n"
        assert host_pid(s) == pid


def test_close_ends_the_process(pwsh_options: dict[str, Any]) -> None:
    s = trainlab.connect("pwsh://", reuse=False, **pwsh_options)
    s.run("true")
    host = s.transport._host
    assert host is not None
    s.close()
    assert host.stream.proc.poll() is not None  # type: ignore[attr-defined]


def test_host_that_never_answers_is_killed_at_open_timeout() -> None:
    s = trainlab.connect(
        "pwsh://", reuse=False, executable="/bin/sh", arguments="-c 'sleep 30'", open_timeout=0.5
    )
    started = time.monotonic()
    with pytest.raises(trainlab.ConnectError, match=r"did not open a runspace within 0\.5 s"):
        s.run("true")
    assert time.monotonic() - started < 5
    s.close()


def test_executable_that_is_not_a_server_is_named() -> None:
    s = trainlab.connect("pwsh://", reuse=False, executable="/bin/echo", arguments="hello")
    with pytest.raises(trainlab.ConnectError, match="server mode"):
        s.run("true")
    s.close()


def test_missing_executable_is_a_connect_error() -> None:
    s = trainlab.connect("pwsh://", reuse=False, executable="/nonexistent/pwsh")
    with pytest.raises(trainlab.ConnectError, match="executable="):
        s.run("true")
    s.close()


def test_no_powershell_on_path_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    s = trainlab.connect("pwsh://", reuse=False)
    with pytest.raises(trainlab.ConnectError, match=r"aka\.ms/powershell"):
        s.run("true")
    s.close()


def test_pwsh_takes_no_host() -> None:
    with pytest.raises(trainlab.TargetError, match="winrm://"):
        trainlab.connect("pwsh://win1", reuse=False)


def test_run_ps_frames_objects(pwsh_options: dict[str, Any]) -> None:
    with trainlab.connect("pwsh://", reuse=False, **pwsh_options) as s:
        frame = s.run_ps("""printf '[{"Id":1,"Name":"a"},{"Id":2,"Name":"b"}]'""", as_frame=True)
    assert frame["Id"].tolist() == [1, 2]


def test_long_commands_travel_whole(pwsh_options: dict[str, Any]) -> None:
    # More than a pipe holds: the client writes as the host reads.
    payload = "x" * 120_000
    with trainlab.connect("pwsh://", reuse=False, **pwsh_options) as s:
        assert s.run(f"printf %s '{payload}' | wc -c").stdout.strip() == "120000"


def test_host_interrupted_while_opening_is_killed(
    pwsh_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from trainlab.transports import out_of_process, pwsh

    started: list[subprocess.Popen[bytes]] = []

    class Recorded(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    def interrupted(self: Any, element: Any, events: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pwsh.subprocess, "Popen", Recorded)
    monkeypatch.setattr(out_of_process.OutOfProcessClient, "_step", interrupted)
    s = trainlab.connect("pwsh://", reuse=False, **pwsh_options)
    with pytest.raises(KeyboardInterrupt):
        s.run("true")
    s.close()
    assert len(started) == 1
    assert started[0].poll() is not None  # not left running, untracked


def test_host_that_never_answers_shows_what_it_wrote() -> None:
    s = trainlab.connect(
        "pwsh://",
        reuse=False,
        executable="/bin/sh",
        arguments="-c 'echo no-such-option >&2; sleep 30'",
        open_timeout=0.5,
    )
    with pytest.raises(trainlab.ConnectError, match="it wrote: no-such-option"):
        s.run("true")
    s.close()


def test_host_that_is_not_a_server_shows_what_it_wrote() -> None:
    s = trainlab.connect(
        "pwsh://", reuse=False, executable="/bin/sh", arguments="-c 'echo bad-flag >&2; echo x'"
    )
    with pytest.raises(trainlab.ConnectError, match="server mode") as info:
        s.run("true")
    s.close()
    assert "it wrote: bad-flag" in str(info.value)


def test_missing_working_directory_names_cwd(pwsh_options: dict[str, Any]) -> None:
    s = trainlab.connect("pwsh://", reuse=False, cwd="/nonexistent/dir", **pwsh_options)
    with pytest.raises(trainlab.ConnectError, match=r"'/nonexistent/dir'.*check cwd="):
        s.run("true")
    s.close()
