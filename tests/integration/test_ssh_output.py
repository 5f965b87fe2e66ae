"""Output at any size over SSH, exec and shell modes: bounded memory, live chunks, a
spool file, deadlines under floods, and late background output kept out of answers.

The flood and size cases are the local transport's (tests/integration/test_local_output.py),
run here against the suite's OpenSSH server through the ``session`` fixture below.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import trainlab
from tests.integration.test_local_output import (  # the same cases, over SSH
    flood_left_behind,
    many_requests_in_a_row,
    test_batch_flood_keeps_its_deadline,
    test_batch_keeps_each_commands_output_under_a_small_cap,
    test_flood_stops_at_its_deadline_with_bounded_memory,
    test_large_output_that_ends_is_truncated_head_and_tail,
    test_no_bound_keeps_everything,
    test_output_file_gets_fifty_megabytes_byte_exact,
    test_small_output_is_whole_and_on_output_chunks_add_up,
    test_stream_prints_live_and_the_result_is_unchanged,
)
from trainlab.errors import StrayOutputWarning
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh

__all__ = [
    "test_batch_flood_keeps_its_deadline",
    "test_batch_keeps_each_commands_output_under_a_small_cap",
    "test_flood_stops_at_its_deadline_with_bounded_memory",
    "test_large_output_that_ends_is_truncated_head_and_tail",
    "test_no_bound_keeps_everything",
    "test_output_file_gets_fifty_megabytes_byte_exact",
    "test_small_output_is_whole_and_on_output_chunks_add_up",
    "test_stream_prints_live_and_the_result_is_unchanged",
]

MODES = ["exec", "shell", "shell-sh"]


def wait_for(path: Path) -> str:
    """Shell code that waits (at most 20 s) for ``path`` to exist."""
    return f"i=0; while [ ! -e {path} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done"


@pytest.fixture(params=MODES)
def session(
    request: pytest.FixtureRequest, sshd: SSHServer, ssh_options: dict[str, Any]
) -> Iterator[trainlab.Session]:
    mode, _, shell = request.param.partition("-")
    options = {**ssh_options, "mode": mode, "shell": shell or "auto"}
    with trainlab.connect(sshd.uri, reuse=False, **options) as opened:
        opened.run("true")  # connected (and the kept shell up) before anything is measured
        yield opened


def test_on_output_is_live_the_command_waits_for_its_first_chunk(
    session: trainlab.Session, tmp_path: Path
) -> None:
    """The command goes on only once the callback has seen its first line: without
    live chunks it would wait until its deadline."""
    go = tmp_path / "go"
    seen: list[str] = []

    def on_output(stream: str, text: str) -> None:
        seen.append(text)
        if "first" in "".join(seen):
            go.touch()

    command = f"echo first; {wait_for(go)}; [ -e {go} ] && echo second"
    result = session.run(command, on_output=on_output, timeout=60)
    assert result.stdout == "first\nsecond\n"
    assert "".join(seen) == result.stdout


def test_batch_on_output_is_live_per_command(session: trainlab.Session, tmp_path: Path) -> None:
    go = tmp_path / "go"
    seen: list[tuple[int, str]] = []

    def on_output(index: int, stream: str, text: str) -> None:
        seen.append((index, text))
        if index == 0:
            go.touch()

    batch = session.run_many(
        ["echo zero", f"{wait_for(go)}; [ -e {go} ] && echo one"], on_output=on_output, timeout=60
    )
    assert [r.stdout for r in batch] == ["zero\n", "one\n"]
    assert seen == [(0, "zero\n"), (1, "one\n")]


@pytest.mark.parametrize("mode", ["shell", "shell-sh"])
def test_late_background_output_is_stray_not_the_next_answer(
    sshd: SSHServer, ssh_options: dict[str, Any], mode: str
) -> None:
    name, _, shell = mode.partition("-")
    with trainlab.connect(
        sshd.uri, reuse=False, **{**ssh_options, "mode": name, "shell": shell or "auto"}
    ) as s:
        first = s.run("(sleep 0.3; echo LATE; echo LATE-ERR >&2) &")
        assert (first.stdout, first.stderr) == ("", "")
        time.sleep(1.5)  # the job has written; nothing has read it yet
        with pytest.warns(StrayOutputWarning, match="session.stray_output"):
            second = s.run("echo SECOND")
        assert (second.stdout, second.stderr) == ("SECOND\n", "")
        assert (s.stray_output.stdout, s.stray_output.stderr) == (b"LATE\n", b"LATE-ERR\n")
        s.run("(sleep 0.3; echo AGAIN) &")
        time.sleep(1.5)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the warning comes once a session
            assert s.run("echo third").stdout == "third\n"
        assert s.stray_output.stdout == b"LATE\nAGAIN\n"


def test_exec_mode_drops_what_a_background_job_writes_after_its_command(
    sshd: SSHServer, ssh_options: dict[str, Any]
) -> None:
    """Each command has its own channel: a job's late output goes with the closed one."""
    with trainlab.connect(sshd.uri, reuse=False, **{**ssh_options, "mode": "exec"}) as s:
        first = s.run("(sleep 0.3; echo LATE) &")
        second = s.run("sleep 0.8; echo SECOND")
        assert (first.stdout, second.stdout) == ("", "SECOND\n")
        assert s.stray_output.total == 0


def test_exec_mode_batches_keep_late_output_out_of_the_next_batch(
    sshd: SSHServer, ssh_options: dict[str, Any]
) -> None:
    with trainlab.connect(sshd.uri, reuse=False, **{**ssh_options, "mode": "exec"}) as s:
        first = s.run_many(["(sleep 0.3; echo LATE) &", "echo B"])
        assert [r.stdout for r in first] == ["", "B\n"]
        time.sleep(1.5)
        with pytest.warns(StrayOutputWarning):
            later = s.run_many(["echo C", "echo D"])
        assert [r.stdout for r in later] == ["C\n", "D\n"]
        assert s.stray_output.stdout == b"LATE\n"


# -- the output multiplexer: each command of a kept shell on FIFOs of its own ----------


@pytest.mark.parametrize("mode", ["shell", "shell-sh", "exec"])
def test_a_job_writing_during_a_later_command_is_stray_not_that_commands(
    sshd: SSHServer, ssh_options: dict[str, Any], mode: str
) -> None:
    name, _, shell = mode.partition("-")
    with (
        trainlab.connect(
            sshd.uri, reuse=False, **{**ssh_options, "mode": name, "shell": shell or "auto"}
        ) as s,
        warnings.catch_warnings(record=True) as seen,
    ):
        warnings.simplefilter("always")
        batch = s.run_many(
            ["(sleep 0.5; echo LATE; echo LATE-ERR >&2) & echo started", "sleep 1.5; echo B"],
            timeout=20,
        )
        assert [(r.stdout, r.stderr) for r in batch] == [("started\n", ""), ("B\n", "")]
        assert (s.stray_output.stdout, s.stray_output.stderr) == (b"LATE\n", b"LATE-ERR\n")
        if name == "exec":
            return  # its batch shell closed with the batch
        first = s.run("(sleep 0.5; echo LATE2) &")
        second = s.run("sleep 1.5; echo SECOND")  # the job writes meanwhile
        assert (first.stdout, second.stdout, second.stderr) == ("", "SECOND\n", "")
        assert s.stray_output.stdout == b"LATE\nLATE2\n"
        assert s.stray_output.stderr == b"LATE-ERR\n"
        assert [type(w.message) for w in seen] == [StrayOutputWarning]  # once a session


def _mux_dirs() -> set[str]:
    return {path.name for path in Path("/tmp").glob("trainlab-mux-*")}  # the sshd is local


@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_a_flooding_job_left_behind_never_reaches_later_results(
    sshd: SSHServer, ssh_options: dict[str, Any]
) -> None:
    with trainlab.connect(sshd.uri, reuse=False, **{**ssh_options, "mode": "shell"}) as s:
        flood_left_behind(s)


@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_the_multiplexer_cleans_up_after_itself_and_after_a_killed_one(
    sshd: SSHServer, ssh_options: dict[str, Any]
) -> None:
    options = {**ssh_options, "mode": "shell"}
    before = _mux_dirs()
    with trainlab.connect(sshd.uri, reuse=False, **options) as s:
        s.run("true")
        assert s.transport._shell.mux  # type: ignore[attr-defined]
        [first] = _mux_dirs() - before
        r = s.run("sleep 30 & echo $!")  # the job holds slot 0: new FIFOs take its names
        assert [x.stdout for x in s.run_many(["echo a", "echo b"])] == ["a\n", "b\n"]
        s.run(f"kill {int(r.stdout)}")
        with pytest.raises(trainlab.CommandTimeout):
            s.run("sleep 30", timeout=0.5)  # the shell is killed: no time to clean up
        assert first in _mux_dirs()
        s.run("true")  # a new shell, whose multiplexer removes the dead one's directory
        [second] = _mux_dirs() - before
        assert second != first
    until = time.monotonic() + 10  # the channel closed: the host sees EOF, the multiplexer ends
    while second in _mux_dirs() and time.monotonic() < until:
        time.sleep(0.05)
    assert second not in _mux_dirs()


def test_output_that_looks_like_a_stray_record_is_output(
    sshd: SSHServer, ssh_options: dict[str, Any]
) -> None:
    with trainlab.connect(sshd.uri, reuse=False, **{**ssh_options, "mode": "shell"}) as s:
        text = "__tl_0123456789abcdef01234567 o 4c415445\n"
        marker = "__tl_0123456789abcdef01234567 E 0 0 Z 1\n"  # another request's, not this one's
        r = s.run(f"printf '{text}' >&2; printf '{marker}'")
        assert (r.stdout, r.stderr) == (marker, text)
        assert s.stray_output.total == 0


@pytest.mark.parametrize("shell", ["auto", "sh"])
def test_many_requests_in_a_row_through_the_multiplexer(
    sshd: SSHServer, ssh_options: dict[str, Any], shell: str
) -> None:
    with trainlab.connect(
        sshd.uri, reuse=False, **{**ssh_options, "mode": "shell", "shell": shell}
    ) as s:
        many_requests_in_a_row(s)
        assert s.transport._shell.mux  # type: ignore[attr-defined]


def test_a_multiplexer_that_cannot_start_leaves_the_shell_bare(
    tmp_path: Path, ssh_options: dict[str, Any]
) -> None:
    """No writable temporary directory: the shell runs without it, and says so on its
    stderr before it is ready (which the start drops)."""
    config = "SetEnv TMPDIR=/nonexistent-trainlab-tmp\n"
    with SSHServer(tmp_path / "sshd", config=config, private_home=False) as server:
        options = {**server.client_options, "mode": "shell"}
        with trainlab.connect(server.uri, reuse=False, **options) as s:
            assert s.run("echo $TMPDIR; echo err >&2").stdout == "/nonexistent-trainlab-tmp\n"
            assert not s.transport._shell.mux  # type: ignore[attr-defined]
            assert [r.stdout for r in s.run_many(["echo a", "exit 3"])] == ["a\n", ""]


def test_isolate_off_shares_one_channel(sshd: SSHServer, ssh_options: dict[str, Any]) -> None:
    """The documented trade: without the multiplexer a job's late output can land in
    the command that runs while it writes."""
    options = {**ssh_options, "mode": "shell", "isolate": "off"}
    with trainlab.connect(sshd.uri, reuse=False, **options) as s:
        s.run("(sleep 0.3; echo LATE) &", timeout=20)
        later = s.run("sleep 1; echo SECOND", timeout=20)
        assert not s.transport._shell.mux  # type: ignore[attr-defined]
        assert later.stdout == "LATE\nSECOND\n"


@pytest.mark.parametrize("shell", ["auto", "sh"])
def test_a_new_shells_first_answer_is_whole(
    sshd: SSHServer, ssh_options: dict[str, Any], shell: str
) -> None:
    """The first request travels with the shell's start: its output comes after the
    shell's ready line, however the multiplexer's reads fall."""
    options = {**ssh_options, "mode": "shell", "shell": shell}
    for n in range(25):
        with trainlab.connect(sshd.uri, reuse=False, **options) as s:
            r = s.run(f"echo first {n}; echo err {n} >&2", timeout=20)
            assert (r.stdout, r.stderr) == (f"first {n}\n", f"err {n}\n")
