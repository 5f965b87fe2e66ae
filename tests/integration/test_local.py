"""The local transport against real bash: the inputs that break naive shells."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab
from trainlab.transports.local import LocalTransport

MODES = ["exec", "shell"]


@pytest.fixture(params=MODES)
def session(request: pytest.FixtureRequest) -> Iterator[trainlab.Session]:
    s = trainlab.connect("local://", mode=request.param, reuse=False)
    yield s
    s.close()


@pytest.fixture
def shell() -> Iterator[trainlab.Session]:
    s = trainlab.connect("local://?mode=shell", reuse=False)
    yield s
    s.close()


def host_pid(session: trainlab.Session) -> int:
    transport = session.transport
    assert isinstance(transport, LocalTransport)
    assert transport._host is not None
    return transport._host.proc.pid


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except OSError:  # gone before the open, or between the open and the read
        return True
    return state in (b"Z", b"X")


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return gone(pid)


@contextlib.contextmanager
def reaped(pids: list[int]) -> Iterator[list[int]]:
    """Kill, at the end, the processes a test started (by pid)."""
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def test_nul_byte_is_refused(session: trainlab.Session) -> None:
    with pytest.raises(trainlab.InvalidCommand, match="NUL"):
        session.run("echo a\0b")


def test_fifty_megabytes_of_output(session: trainlab.Session) -> None:
    size = 50 * 1024 * 1024
    r = session.run(f"head -c {size} /dev/zero | tr '\\0' y; echo done >&2", timeout=120)
    assert len(r.stdout_bytes) == size
    assert r.stdout_bytes[:3] == b"yyy"
    assert r.stdout_bytes[-3:] == b"yyy"
    assert r.stderr == "done\n"


def test_large_stderr_with_small_stdout_does_not_deadlock(session: trainlab.Session) -> None:
    r = session.run("head -c 3000000 /dev/zero >&2; echo small", timeout=60)
    assert r.stdout == "small\n"
    assert len(r.stderr_bytes) == 3_000_000


def test_output_with_a_real_looking_nonce_cannot_end_the_frame(
    session: trainlab.Session,
) -> None:
    fake = "__tl_" + secrets.token_hex(12)
    text = f"\\n{fake} E 0 0\\n{fake} Z 1\\n"
    r = session.run(f"printf '{text}'; printf '{text}' >&2; echo tail")
    assert r.stdout.endswith("tail\n")
    assert f"{fake} Z 1" in r.stdout
    assert f"{fake} Z 1" in r.stderr


def test_nul_bytes_in_output_survive(session: trainlab.Session) -> None:
    assert session.run("printf 'a\\0b'").stdout_bytes == b"a\0b"


def test_commands_that_read_stdin_get_end_of_file(session: trainlab.Session) -> None:
    r = session.run('cat; read -r line; echo "read=$? line=[$line]"', timeout=20)
    assert r.stdout == "read=1 line=[]\n"


def test_exit_in_a_command_is_its_exit_status(session: trainlab.Session) -> None:
    assert session.run("echo before; exit 42; echo never").exit_status == 42
    assert session.run("echo alive").stdout == "alive\n"


def test_exit_does_not_kill_the_shell_host(shell: trainlab.Session) -> None:
    shell.run("true")
    pid = host_pid(shell)
    for command in ("exit 3", "exec true", "set -e; false", "exec 2>&-; exit 1"):
        shell.run(command, timeout=20)
    assert host_pid(shell) == pid
    assert shell.run("echo ok").stdout == "ok\n"


def test_command_that_closes_stdout_early(session: trainlab.Session) -> None:
    r = session.run("echo first; exec 1>&-; echo gone-to-stderr >&2; exit 5", timeout=20)
    assert (r.stdout, r.stderr, r.exit_status) == ("first\n", "gone-to-stderr\n", 5)
    assert session.run("echo ok").stdout == "ok\n"


def test_background_process_holding_stdout_does_not_block(session: trainlab.Session) -> None:
    r = session.run("sleep 300 & echo $!", timeout=20)
    with reaped([int(r.stdout)]):
        assert r.exit_status == 0
        assert not gone(int(r.stdout))  # the daemon is left running, as intended
        assert session.run("echo next").stdout == "next\n"


def test_nohup_daemon_survives_a_later_timeout(shell: trainlab.Session) -> None:
    r = shell.run("nohup sleep 300 >/dev/null 2>&1 & echo $!", timeout=20)
    with reaped([int(r.stdout)]):
        with pytest.raises(trainlab.CommandTimeout):
            shell.run("sleep 30", timeout=0.3)
        assert not gone(int(r.stdout))


def test_timeout_kills_what_the_command_started(session: trainlab.Session) -> None:
    with pytest.raises(trainlab.CommandTimeout) as info:
        session.run("sleep 300 & echo $!; wait", timeout=1)
    child = int(info.value.stdout.decode().strip())
    with reaped([child]):
        assert wait_gone(child)
    assert info.value.timeout == 1
    assert session.run("echo usable").stdout == "usable\n"


def test_batch_timeout_keeps_the_finished_results(session: trainlab.Session) -> None:
    with pytest.raises(trainlab.CommandTimeout) as info:
        session.run_many(["echo a", "echo b >&2", "sleep 30", "echo never"], timeout=1)
    partial = info.value.partial
    assert partial is not None
    assert [(r.stdout, r.stderr) for r in partial] == [("a\n", ""), ("", "b\n")]
    assert info.value.command == "sleep 30"


def test_dead_host_is_replaced_on_the_next_call(shell: trainlab.Session) -> None:
    shell.run("true")
    old = host_pid(shell)
    os.kill(old, signal.SIGKILL)
    assert wait_gone(old)
    assert shell.run("echo back").stdout == "back\n"
    assert host_pid(shell) != old
    frame = shell.metrics
    assert frame["reconnected"].tolist()[-1]
    assert frame["operation"].tolist().count("connect") == 2


def test_host_killed_during_a_command_fails_it_once(
    shell: trainlab.Session, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(trainlab.TransportError, match="not re-run"):
        shell.run(f"echo x >> {marker}; kill -9 $$", timeout=20)
    assert shell.run("echo fine").stdout == "fine\n"
    assert marker.read_text() == "x\n"


def test_state_does_not_leak_between_shell_commands(shell: trainlab.Session) -> None:
    start = shell.run("pwd; umask").stdout
    for command in [
        "cd /tmp",
        "export LEAK=1",
        "LEAK2=1",
        "umask 077",
        "set -u",
        "set -o pipefail",
        "trap 'echo trapped' EXIT",
        "alias ls=false",
        "f() { echo f; }",
        "shopt -s failglob",
    ]:
        assert shell.run(command).exit_status == 0, command
    assert shell.run("pwd; umask").stdout == start
    assert shell.run('echo "${LEAK-unset} ${LEAK2-unset}"').stdout == "unset unset\n"
    assert shell.run("echo $UNDEFINED_VAR; false | true; echo $?").stdout == "\n0\n"
    assert shell.run("type f >/dev/null 2>&1; echo $?").stdout == "1\n"
    assert shell.run("echo *.nomatch").stdout == "*.nomatch\n"


def test_positional_parameters_are_empty(shell: trainlab.Session) -> None:
    assert shell.run('echo "$#:$1:$*"').stdout == "0::\n"


def test_syntax_errors_are_results(session: trainlab.Session) -> None:
    r = session.run("echo 'unterminated")
    assert r.exit_status == 2
    assert "unexpected EOF" in r.stderr or "unterminated" in r.stderr
    assert session.run("echo ok").stdout == "ok\n"


def test_very_long_command(session: trainlab.Session) -> None:
    payload = "x" * 300_000
    r = session.run(f"printf %s {payload} | wc -c")
    assert r.stdout.strip() == "300000"


def test_env_and_cwd_options(tmp_path: Path) -> None:
    for mode in MODES:
        s = trainlab.connect(
            "local://", mode=mode, cwd=str(tmp_path), env={"TL_X": "42"}, reuse=False
        )
        assert s.run("pwd; echo $TL_X").stdout == f"{tmp_path}\n42\n"
        (tmp_path / "f.txt").write_text("rel")
        assert s.read_text("f.txt") == "rel"
        s.close()


def test_files_and_stat(session: trainlab.Session, tmp_path: Path) -> None:
    assert "ID=" in session.read_text("/etc/os-release")
    info = session.stat(str(tmp_path))
    assert info.type == "directory"
    with pytest.raises(trainlab.FileError) as denied:
        session.read_bytes(str(tmp_path))
    assert "Is a directory" in str(denied.value)


def test_close_stops_the_shell_process(shell: trainlab.Session) -> None:
    shell.run("true")
    pid = host_pid(shell)
    shell.close()
    assert wait_gone(pid)


# ---------------------------------------------- regressions from a review that tried to break it

MUTATIONS = [
    "> /dev/null cd /",
    "cd</dev/null /",
    "time -p cd /",
    "c\\\nd /",
    "printf -vTL_LEAK hello",
    "printf '-v' TL_LEAK hello",
    "echo $[TL_N++]",
    "echo ${PWD:TL_N++:0}",
    "true {TL_FD}>&2",
    "func\\\ntion ls { echo FAKE; }",
    "> /dev/null set -e",
    "> /dev/null set -u",
    "> /dev/null set -x",
    "> /dev/null exit 7",
    "> /dev/null return 7",
    "> /dev/null break",
    "func\\\ntion __tl1 { :; }",
    "> /dev/null exec 2>/dev/null",
    "export TL_LEAK$'\\x3d'v",
    "> /dev/null trap 'echo trapped' DEBUG",
]
CHECK = (
    'pwd; echo "[${TL_LEAK-}] [${TL_N-}] [${TL_FD-}]"; ls -d / ; false; echo $nope; echo end >&2'
)


@pytest.mark.parametrize("batch", [False, True], ids=["run", "run_many"])
def test_no_spelling_of_a_command_changes_the_host(tmp_path: Path, batch: bool) -> None:
    for mode in MODES:
        s = trainlab.connect("local://", mode=mode, cwd=str(tmp_path), reuse=False)
        expected = s.run(CHECK)
        for mutation in MUTATIONS:
            if batch:
                results = s.run_many([mutation, CHECK], timeout=10)
                after = results[1]
            else:
                s.run(mutation, timeout=10)
                after = s.run(CHECK, timeout=10)
            assert (after.stdout, after.stderr) == (expected.stdout, expected.stderr), (
                mode,
                mutation,
            )
        s.close()


def test_command_lookups_are_not_remembered(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "tl-tool").write_text("#!/bin/sh\necho from-first\n")
    (first / "tl-tool").chmod(0o755)
    path = f"{second}:{first}:{os.environ['PATH']}"
    s = trainlab.connect("local://?mode=shell", env={"PATH": path}, reuse=False)
    assert s.run("tl-tool").stdout == "from-first\n"
    (second / "tl-tool").write_text("#!/bin/sh\necho from-second\n")
    (second / "tl-tool").chmod(0o755)
    assert s.run("tl-tool").stdout == "from-second\n"
    s.close()


@pytest.mark.parametrize("batch", [False, True], ids=["run", "run_many"])
def test_timeout_kills_orphaned_grandchildren(session: trainlab.Session, batch: bool) -> None:
    command = "(sleep 304 & echo $! > /dev/stderr); sleep 30"

    def call() -> object:
        if batch:
            return session.run_many([command, "true"], timeout=1)
        return session.run(command, timeout=1)

    with pytest.raises(trainlab.CommandTimeout) as info:
        call()
    orphan = int(info.value.stderr.decode().split()[0])
    with reaped([orphan]):
        assert wait_gone(orphan)


@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_background_flood_does_not_hold_the_answer(session: trainlab.Session) -> None:
    for _ in range(5):
        r = session.run(
            "(head -c 5000000 /dev/zero | tr '\\0' .) & sleep 0.02; echo fg", timeout=20
        )
        assert r.stdout.endswith("fg\n") or "fg\n" in r.stdout


@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_markers_survive_a_concurrent_writer(shell: trainlab.Session) -> None:
    r = shell.run("(for i in $(seq 3000); do echo noise; done) & echo $!")
    writer = int(r.stdout.strip().splitlines()[-1])
    with reaped([writer]):
        for n in range(50):
            batch = shell.run_many([f"echo a{n}", f"echo b{n} >&2", "true"], timeout=20)
            assert [res.exit_status for res in batch] == [0, 0, 0]
            assert f"a{n}\n" in batch[0].stdout
            assert f"b{n}\n" in batch[1].stderr


def test_another_threads_timeout_does_not_fail_a_waiting_call(shell: trainlab.Session) -> None:
    import threading

    shell.run("true")
    outcome: dict[str, object] = {}

    def slow() -> None:
        try:
            shell.run("sleep 5", timeout=1)
        except trainlab.CommandTimeout as exc:
            outcome["a"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    outcome["b"] = shell.run("echo hi", timeout=10).stdout
    thread.join(timeout=30)
    assert isinstance(outcome["a"], trainlab.CommandTimeout)
    assert outcome["b"] == "hi\n"


def test_long_multibyte_command(session: trainlab.Session) -> None:
    r = session.run("printf %s " + "é" * 70_000 + " | wc -c")
    assert r.stdout.strip() == str(70_000 * 2)


@pytest.mark.parametrize("command", ["-o", "--version", "+x"])
def test_commands_starting_with_a_dash_are_commands(
    session: trainlab.Session, command: str
) -> None:
    r = session.run(command)
    assert r.exit_status == 127
    assert "not found" in r.stderr


def test_timeout_partial_output_is_capped(session: trainlab.Session) -> None:
    with pytest.raises(trainlab.CommandTimeout) as info:
        session.run("yes", timeout=0.5)
    assert 0 < len(info.value.stdout) <= 1024 * 1024
