"""The POSIX host on real shells: dash (/bin/sh), BusyBox ash, mksh and bash run as sh.

Each test runs against every one of them through ``local://?mode=shell&shell=PATH``
(a shell named ``sh`` is a link, so BusyBox runs its ash applet and bash its POSIX
mode); the quoting tests also run against the bash host, so both dialects answer alike.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab
from tests.integration.test_local import host_pid, reaped, wait_gone
from trainlab import framing

# name -> (executable, how a shell named ``sh`` runs it, the package that installs it)
SHELLS = {
    "dash": ("dash", False, "apt-get install dash"),
    "busybox-ash": ("busybox", True, "apt-get install busybox-static"),
    "mksh": ("mksh", False, "apt-get install mksh"),
    "bash-as-sh": ("bash", True, "apt-get install bash"),
}


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shells")


def shell_path(name: str, links: Path) -> str:
    """An absolute path that runs shell ``name`` as a POSIX sh."""
    executable, as_sh, install = SHELLS[name]
    found = shutil.which(executable)
    if found is None:
        pytest.fail(f"{executable} is missing: {install}")
    if not as_sh:
        return found
    link = links / name / "sh"
    if not link.exists():
        link.parent.mkdir()
        link.symlink_to(found)
    return str(link)


@pytest.fixture(params=list(SHELLS))
def posix(
    request: pytest.FixtureRequest, links: Path, tmp_path: Path
) -> Iterator[trainlab.Session]:
    shell = shell_path(request.param, links)
    s = trainlab.connect("local://", mode="shell", shell=shell, cwd=str(tmp_path), reuse=False)
    assert s.transport._dialect is framing.POSIX  # type: ignore[attr-defined]
    yield s
    s.close()


@pytest.fixture(params=["bash", *SHELLS])
def either(request: pytest.FixtureRequest, links: Path) -> Iterator[trainlab.Session]:
    """The bash host, then the POSIX host on each shell."""
    shell = "bash" if request.param == "bash" else shell_path(request.param, links)
    s = trainlab.connect("local://", mode="shell", shell=shell, reuse=False)
    yield s
    s.close()


def test_the_shell_option_picks_the_host(links: Path) -> None:
    cases = {
        "sh": ("/bin/sh", "posix"),
        "bash": ("bash", "bash"),
        "auto": ("bash", "bash"),  # bash is on this machine's PATH
        "/usr/bin/bash": ("/usr/bin/bash", "bash"),
        shell_path("mksh", links): (shell_path("mksh", links), "posix"),
    }
    for value, (argv0, dialect) in cases.items():
        s = trainlab.connect("local://", mode="shell", shell=value, reuse=False)
        transport = s.transport
        assert transport._shell == [argv0], value  # type: ignore[attr-defined]
        assert transport._dialect.name == dialect, value  # type: ignore[attr-defined]
        assert s.run("echo ok").stdout == "ok\n"
        s.close()
    with pytest.raises(trainlab.TargetError, match="shell"):
        trainlab.connect("local://", mode="shell", shell=" ", reuse=False)


def test_auto_takes_the_posix_host_where_bash_is_missing(tmp_path: Path) -> None:
    for tool in ("echo", "cat"):
        (tmp_path / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    s = trainlab.connect("local://?mode=shell", env={"PATH": str(tmp_path)}, reuse=False)
    assert s.transport._dialect is framing.POSIX  # type: ignore[attr-defined]
    assert s.run("echo hi | cat").stdout == "hi\n"
    s.close()


# ------------------------------------------------------------ quoting-hostile commands

HOSTILE = {
    # command: what it prints, in bash and in every POSIX sh
    "printf '%s\\n' 'it'\\''s' \"a \\\"b\\\"\" '$HOME' \"\\$x\" 'back\\slash' \"c\\\\d\"": (
        'it\'s\na "b"\n$HOME\n$x\nback\\slash\nc\\d\n'
    ),
    "echo '!bang' \"!x\" !y": "!bang !x !y\n",
    "printf '%s\\n' 'line1\nline2'": "line1\nline2\n",
    "printf '%s\\n' \"two\nlines\" && echo done": "two\nlines\ndone\n",
    "echo 'caf\u00e9 \u2603 \U0001f600'": "caf\u00e9 \u2603 \U0001f600\n",
    "printf '%s' '`tick` $(subst) ${brace} \\n'": "`tick` $(subst) ${brace} \\n",
    'X=\'q"uo\'"\'te"; printf "%s\\n" "$X"': "q\"uo'te\n",
    "cd /tmp && pwd": "/tmp\n",
}


def test_quoting_hostile_commands(either: trainlab.Session) -> None:
    for command, expected in HOSTILE.items():
        r = either.run(command, timeout=20)
        assert (r.stdout, r.stderr, r.exit_status) == (expected, "", 0), command
    batch = either.run_many(list(HOSTILE), timeout=20)
    assert [r.stdout for r in batch] == list(HOSTILE.values())
    assert [r.exit_status for r in batch] == [0] * len(HOSTILE)


def test_non_utf8_bytes_in_a_command(either: trainlab.Session) -> None:
    command = "printf '%s' '\udcff\udcfe caf\udce9' | od -An -tx1"
    r = either.run(command)
    assert r.stdout.split() == ["ff", "fe", "20", "63", "61", "66", "e9"]


def test_a_forged_marker_is_just_output(either: trainlab.Session) -> None:
    fake = framing.new_nonce().decode()
    text = f"\\n{fake} E 0 0 Z 1\\n{fake} E 0 Z 1\\n"
    for results in (
        [either.run(f"printf '{text}'; printf '{text}' >&2; echo tail")],
        either.run_many([f"printf '{text}'; printf '{text}' >&2", "echo tail"]),
    ):
        assert f"{fake} E 0 0 Z 1" in results[0].stdout
        assert f"{fake} E 0 Z 1" in results[0].stderr
    assert results[-1].stdout == "tail\n"


# --------------------------------------------------------------- the POSIX host itself


def test_commands_that_read_stdin_get_end_of_file(posix: trainlab.Session) -> None:
    command = 'cat; read -r line; echo "read=$? line=[$line]"'
    assert posix.run(command, timeout=20).stdout == "read=1 line=[]\n"
    assert posix.run_many([command, "echo next"], timeout=20)[1].stdout == "next\n"


def test_exit_inside_a_batch(posix: trainlab.Session) -> None:
    posix.run("true")
    pid = host_pid(posix)
    batch = posix.run_many(["echo a", "exit 3", "echo b"], timeout=20)
    assert [(r.stdout, r.exit_status) for r in batch] == [("a\n", 0), ("", 3), ("b\n", 0)]
    stopped = posix.run_many(["true", "exit 3", "echo never"], stop_on_error=True)
    assert [r.exit_status for r in stopped] == [0, 3]
    assert posix.run("exit 4").exit_status == 4
    assert host_pid(posix) == pid


def test_cd_stays_in_its_command(posix: trainlab.Session, tmp_path: Path) -> None:
    start = posix.run("pwd").stdout
    assert posix.run(f"cd {tmp_path} && pwd").stdout == f"{tmp_path}\n"
    assert posix.run("pwd").stdout == start
    batch = posix.run_many([f"cd {tmp_path}", "pwd", f"cd {tmp_path}; pwd", "pwd"])
    assert [r.stdout for r in batch] == ["", start, f"{tmp_path}\n", start]


MUTATIONS = [
    "cd /",
    "chdir /",
    "export TL_LEAK=1",
    "TL_LEAK=1",
    "umask 077",
    "set -u",
    "set -e; false",
    "trap 'echo trapped' EXIT",
    "alias ls=false",
    "f() { echo f; }",
    "integer TL_N=5",
    "[ TL_N=5 -eq 5 ]",
    "test 'TL_N=6' -gt 1",
    ": >/nonexistent/tl",
    "| ls",
    "ls |",
    "echo a ;; echo b",
    "true &>/dev/null",  # sh: a background job (in the subshell), then a redirection
    "echo >&tl_fd",
    "exit 7",
    "exec true",
    "exec 2>&-; exit 1",
    "echo 'unterminated",
    "-o",
    "hash -p /bin/false ls",
]
CHECK = 'pwd; umask; echo "[${TL_LEAK-}] [${TL_N-}] [$!]"; ls -d /; false; echo $nope; echo end >&2'


@pytest.mark.parametrize("batch", [False, True], ids=["run", "run_many"])
def test_no_command_changes_the_host(posix: trainlab.Session, batch: bool) -> None:
    expected = posix.run(CHECK)
    pid = host_pid(posix)
    for mutation in MUTATIONS:
        if batch:
            after = posix.run_many([mutation, CHECK], timeout=10)[1]
        else:
            posix.run(mutation, timeout=10)
            after = posix.run(CHECK, timeout=10)
        assert (after.stdout, after.stderr) == (expected.stdout, expected.stderr), mutation
    assert host_pid(posix) == pid  # no mutation ended the host
    assert posix.run('echo "$#:$1:$*"').stdout == "0::\n"


def test_syntax_errors_are_results(posix: trainlab.Session) -> None:
    posix.run("true")
    pid = host_pid(posix)
    for command in ("echo 'unterminated", "| ls", "if then fi"):
        r = posix.run(command)
        assert r.exit_status != 0, command
        assert r.stderr, command
    assert host_pid(posix) == pid


def test_command_lookups_are_not_remembered(posix: trainlab.Session, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    (first / "tl-tool").write_text("#!/bin/sh\necho from-first\n")
    (first / "tl-tool").chmod(0o755)
    path = f"{second}:{first}:{os.environ['PATH']}"
    assert posix.run(f"PATH={path}; export PATH; tl-tool").stdout == "from-first\n"
    shell = posix.transport._shell  # type: ignore[attr-defined]
    s = trainlab.connect("local://?mode=shell", shell=shell[0], env={"PATH": path}, reuse=False)
    assert s.run("tl-tool").stdout == "from-first\n"
    (second / "tl-tool").write_text("#!/bin/sh\necho from-second\n")
    (second / "tl-tool").chmod(0o755)
    assert s.run("tl-tool").stdout == "from-second\n"
    s.close()


def test_timeout_kills_and_the_next_call_starts_a_new_host(posix: trainlab.Session) -> None:
    posix.run("true")
    old = host_pid(posix)
    with pytest.raises(trainlab.CommandTimeout) as info:
        posix.run("sleep 300 & echo $!; wait", timeout=1)
    child = int(info.value.stdout.decode().strip())
    with reaped([child]):
        assert wait_gone(child)
    assert wait_gone(old)
    assert posix.run("echo usable").stdout == "usable\n"
    assert host_pid(posix) != old


def test_batch_timeout_keeps_the_finished_results(posix: trainlab.Session) -> None:
    with pytest.raises(trainlab.CommandTimeout) as info:
        posix.run_many(["echo a", "echo b >&2", "sleep 30", "echo never"], timeout=1)
    partial = info.value.partial
    assert partial is not None
    assert [(r.stdout, r.stderr) for r in partial] == [("a\n", ""), ("", "b\n")]
    assert info.value.command == "sleep 30"


def test_dead_host_is_replaced_on_the_next_call(posix: trainlab.Session) -> None:
    posix.run("true")
    old = host_pid(posix)
    os.kill(old, signal.SIGKILL)
    assert wait_gone(old)
    assert posix.run("echo back").stdout == "back\n"
    assert host_pid(posix) != old
    assert posix.metrics["reconnected"].tolist()[-1]


def test_host_killed_during_a_command_fails_it_once(
    posix: trainlab.Session, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(trainlab.TransportError, match="not re-run"):
        posix.run_many([f"echo x >> {marker}", "kill -9 $$", "echo never"], timeout=20)
    assert posix.run("echo fine").stdout == "fine\n"
    assert marker.read_text() == "x\n"


@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_markers_survive_a_concurrent_writer(posix: trainlab.Session) -> None:
    r = posix.run("(i=0; while [ $i -lt 3000 ]; do echo noise; i=$((i+1)); done) & echo $! >&2")
    writer = int(r.stderr)
    with reaped([writer]):
        for n in range(30):
            batch = posix.run_many([f"echo a{n}", f"echo b{n} >&2", "true"], timeout=20)
            assert [res.exit_status for res in batch] == [0, 0, 0]
            assert f"a{n}\n" in batch[0].stdout
            assert f"b{n}\n" in batch[1].stderr


def test_large_output_and_a_long_command(posix: trainlab.Session) -> None:
    r = posix.run("head -c 5000000 /dev/zero | tr '\\0' y; echo done >&2", timeout=60)
    assert len(r.stdout_bytes) == 5_000_000
    assert r.stderr == "done\n"
    payload = "x" * 300_000
    # echo: mksh's printf is /usr/bin/printf, and Linux caps one argument at 128 KiB
    assert posix.run(f"echo {payload} | wc -c").stdout.strip() == "300001"


def test_batch_commands_are_timed_by_the_client(posix: trainlab.Session) -> None:
    t0 = time.perf_counter()
    batch = posix.run_many(["sleep 0.3", "true", "sleep 0.2"], timeout=20)
    wall = time.perf_counter() - t0
    durations = [r.duration for r in batch]
    assert durations[0] >= 0.3
    # The last marker left the host after both sleeps. How the time splits between
    # commands 1 and 2 depends on when the client read marker 1: not asserted.
    assert sum(durations) >= 0.5
    assert all(d >= 0 for d in durations)
    assert sum(durations) <= wall


@pytest.mark.parametrize("shell", list(SHELLS))
def test_a_cold_start_carries_its_first_request(shell: str, links: Path) -> None:
    """What an SSH start does: the first request in the argv, the rest on stdin."""
    argv = [shell_path(shell, links)]
    first = framing.POSIX.build_request(["pwd", "cd /; echo 'a b'"])
    second = framing.POSIX.build_request(['pwd; echo "$#"'])
    done = subprocess.run(
        framing.POSIX.start_argv(argv, first),
        input=framing.POSIX.preamble + second.wire,
        capture_output=True,
        cwd="/tmp",
        timeout=20,
        check=True,
    )
    cut_out = done.stdout.index(b" Z 2\n") + 5
    cut_err = done.stderr.index(b" Z 2\n") + 5
    parsed = framing.parse_response(done.stdout[:cut_out], done.stderr[:cut_err], first)
    assert [(p.stdout, p.stderr) for p in parsed] == [(b"/tmp\n", b""), (b"a b\n", b"")]
    rest = framing.parse_response(done.stdout[cut_out:], done.stderr[cut_err:], second)
    assert [(p.stdout, p.exit_status) for p in rest] == [(b"/tmp\n0\n", 0)]


def test_exec_mode_runs_sh_and_batches_on_a_posix_host() -> None:
    s = trainlab.connect("local://?shell=sh", reuse=False)
    assert s.run("echo $0").stdout == "/bin/sh\n"
    batch = s.run_many(["echo $0", "exit 3", "echo 'it'\\''s'"], timeout=20)
    assert [(r.stdout, r.exit_status) for r in batch] == [
        ("/bin/sh\n", 0),
        ("", 3),
        ("it's\n", 0),
    ]
    long = "x" * 150_000  # too long for argv: it travels on a one-off host's stdin
    assert s.run(f"echo {long} | wc -c").stdout.strip() == "150001"
    s.close()
