"""Output at any size on local://, both modes: bounded memory, live chunks, a spool file."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab

MODES = ["exec", "shell", "shell-sh"]
MB = 1_000_000
# A generous allowance for the interpreter's own growth during a flood: the fix keeps
# growth near max_output; before it, a few seconds of ``yes`` grew it by gigabytes.
RSS_BOUND = 200 * MB
# Time allowed past a deadline for killing the command and building the error.
GRACE = 10.0


def vm_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(params=MODES)
def session(request: pytest.FixtureRequest) -> Iterator[trainlab.Session]:
    mode, _, shell = request.param.partition("-")
    uri = f"local://?mode={mode}" + (f"&shell={shell}" if shell else "")
    with trainlab.connect(uri, reuse=False) as opened:
        opened.run("true")  # the host is up before anything is measured
        yield opened


def test_flood_stops_at_its_deadline_with_bounded_memory(session: trainlab.Session) -> None:
    before = vm_rss()
    began = time.monotonic()
    with pytest.raises(trainlab.CommandTimeout) as info:
        session.run("yes flood-line", timeout=3)
    took = time.monotonic() - began
    grown = vm_rss() - before
    assert took < 3 + GRACE
    assert grown < RSS_BOUND, f"RSS grew {grown / MB:.0f} MB"
    head, tail = info.value.stdout[:16], info.value.stdout[-16:]
    assert head.startswith(b"flood-line\n")
    assert tail in b"flood-line\n" * 3  # the flood's own bytes (cut anywhere over a network)
    assert session.run("echo still usable").stdout == "still usable\n"


def test_large_output_that_ends_is_truncated_head_and_tail(session: trainlab.Session) -> None:
    before = vm_rss()
    total = 400 * MB
    result = session.run(
        f"head -c {total} /dev/zero | tr '\\0' y; echo end", timeout=120, max_output=MB
    )
    assert vm_rss() - before < RSS_BOUND
    assert result.truncated
    assert len(result.stdout_bytes) == MB
    assert result.stdout_dropped == total + 4 - MB
    assert result.stdout_bytes == b"y" * (MB // 2) + b"y" * (MB // 2 - 4) + b"end\n"
    assert result.stderr_dropped == 0


def test_small_output_is_whole_and_on_output_chunks_add_up(session: trainlab.Session) -> None:
    seen: list[tuple[str, str]] = []
    command = "printf 'h\\303\\251llo '; printf 'w\\303\\266rld\\n'; echo warn >&2; seq 1 2000"
    result = session.run(command, on_output=lambda stream, text: seen.append((stream, text)))
    assert not result.truncated
    assert (result.stdout_dropped, result.stderr_dropped) == (0, 0)
    assert "".join(t for s, t in seen if s == "stdout") == result.stdout
    assert "".join(t for s, t in seen if s == "stderr") == result.stderr == "warn\n"
    assert result.stdout.startswith("héllo wörld\n1\n")


def test_output_file_gets_fifty_megabytes_byte_exact(
    session: trainlab.Session, tmp_path: Path
) -> None:
    path = tmp_path / "out.bin"
    count = 7_000_000
    result = session.run(
        f"seq 1 {count}; echo done >&2", timeout=120, output_file=path, max_output=64 * 1024
    )
    expected = hashlib.sha256()
    for start in range(1, count + 1, 100_000):
        stop = min(start + 100_000, count + 1)
        expected.update("".join(f"{n}\n" for n in range(start, stop)).encode())
    assert path.stat().st_size > 50 * MB
    with open(path, "rb") as spooled:
        assert hashlib.file_digest(spooled, "sha256").hexdigest() == expected.hexdigest()
    assert (tmp_path / "out.bin.stderr").read_bytes() == b"done\n"
    assert result.truncated
    assert len(result.stdout_bytes) == 64 * 1024
    assert result.stdout.startswith("1\n2\n3\n")
    assert result.stdout.endswith(f"{count}\n")


def test_batch_keeps_each_commands_output_under_a_small_cap(session: trainlab.Session) -> None:
    seen: dict[tuple[int, str], list[str]] = {}
    batch = session.run_many(
        ["head -c 3000000 /dev/zero | tr '\\0' a; echo", "echo two; echo e2 >&2", "exit 4"],
        max_output=100,
        on_output=lambda index, stream, text: seen.setdefault((index, stream), []).append(text),
    )
    first, second, third = batch
    assert (first.truncated, first.stdout_dropped) == (True, 3_000_001 - 100)
    assert first.stdout == "a" * 50 + "a" * 49 + "\n"  # head 50 bytes, tail 50 bytes
    assert (second.stdout, second.stderr, second.truncated) == ("two\n", "e2\n", False)
    assert (third.exit_status, third.stdout) == (4, "")
    assert ("".join(seen[1, "stdout"]), "".join(seen[1, "stderr"])) == ("two\n", "e2\n")
    assert "".join(seen[0, "stdout"]) == "a" * 3_000_000 + "\n"
    assert (2, "stdout") not in seen


def test_batch_flood_keeps_its_deadline(session: trainlab.Session) -> None:
    before = vm_rss()
    began = time.monotonic()
    with pytest.raises(trainlab.CommandTimeout) as info:
        session.run_many(["echo first", "yes", "echo never"], timeout=3)
    assert time.monotonic() - began < 3 + GRACE
    assert vm_rss() - before < RSS_BOUND
    assert info.value.command == "yes"
    assert info.value.partial is not None
    assert [r.stdout for r in info.value.partial] == ["first\n"]


def test_stream_prints_live_and_the_result_is_unchanged(
    session: trainlab.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    streamed = session.run("echo out; echo err >&2", stream=True)
    printed = capsys.readouterr()
    plain = session.run("echo out; echo err >&2")
    assert (printed.out, printed.err) == ("out\n", "err\n")
    assert (streamed.stdout, streamed.stderr) == (plain.stdout, plain.stderr)


def test_no_bound_keeps_everything(session: trainlab.Session) -> None:
    result = session.run("head -c 3000000 /dev/zero", max_output=None)
    assert (len(result.stdout_bytes), result.truncated) == (3_000_000, False)


# -- whose output is it: each command of a kept shell writes to FIFOs of its own ---------


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_a_job_writing_during_a_later_command_is_stray_not_that_commands(shell: str) -> None:
    with trainlab.connect(f"local://?mode=shell&shell={shell}", reuse=False) as s:
        first = s.run("(sleep 0.5; echo LATE; echo LATE-ERR >&2) &")
        assert (first.stdout, first.stderr) == ("", "")
        with pytest.warns(trainlab.errors.StrayOutputWarning, match="session.stray_output"):
            second = s.run("sleep 1.5; echo SECOND")  # the job writes meanwhile
        assert (second.stdout, second.stderr) == ("SECOND\n", "")
        assert (s.stray_output.stdout, s.stray_output.stderr) == (b"LATE\n", b"LATE-ERR\n")


@pytest.mark.parametrize("uri", ["local://?mode=shell", "local://?mode=shell&shell=sh", "local://"])
@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_a_batch_neighbour_never_gets_an_earlier_commands_job_output(uri: str) -> None:
    """Exec mode's batches run on a kept shell too; its late output is dropped there."""
    with trainlab.connect(uri, reuse=False) as s:
        batch = s.run_many(
            ["(sleep 0.3; echo LATE; echo LATE-ERR >&2) & echo started", "sleep 1; echo B"],
            timeout=20,
        )
        assert [(r.stdout, r.stderr) for r in batch] == [("started\n", ""), ("B\n", "")]
        expected = b"LATE\n" if "shell" in uri else b""  # exec mode's host closed with the batch
        assert s.stray_output.stdout == expected


def flood_left_behind(s: trainlab.Session) -> None:
    """A job left flooding stdout never reaches a later result; the stray output has it."""
    r = s.run("yes noise & echo $! >&2", timeout=20)
    writer = int(r.stderr)
    try:
        until = time.monotonic() + 2
        for n in range(300):  # bounded: 2 s or 300 batches while the job floods
            batch = s.run_many([f"echo a{n}", f"echo b{n} >&2"], timeout=20)
            assert [(x.stdout, x.stderr) for x in batch] == [(f"a{n}\n", ""), ("", f"b{n}\n")]
            if time.monotonic() > until:
                break
    finally:
        s.run(f"kill {writer}", timeout=20)
    assert s.stray_output.stdout.endswith(b"noise\n")
    assert s.stray_output.total > 100_000  # read all along, so the job never blocked


@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_a_flooding_job_left_behind_never_reaches_later_results() -> None:
    with trainlab.connect("local://?mode=shell", reuse=False) as s:
        flood_left_behind(s)


def test_output_before_its_command_ends_is_that_commands() -> None:
    """A job's bytes written while its own command still runs are its command's."""
    with trainlab.connect("local://?mode=shell", reuse=False) as s:
        r = s.run("(echo from-job) & wait; echo done", timeout=20)
        assert r.stdout == "from-job\ndone\n"
        assert s.stray_output.total == 0


@pytest.mark.filterwarnings("ignore::trainlab.errors.StrayOutputWarning")
def test_the_fifos_are_reused_and_removed_with_the_session() -> None:
    with trainlab.connect("local://?mode=shell", reuse=False) as s:
        s.run_many(["echo a", "echo b", "echo c"])
        fifos = s.transport._host.fifos  # type: ignore[attr-defined]
        directory = Path(fifos.dir)
        assert sorted(p.name for p in directory.iterdir()) == [
            "0.e",
            "0.o",
            "1.e",
            "1.o",
            "2.e",
            "2.o",
        ]
        assert oct(directory.stat().st_mode & 0o777) == "0o700"
        made = {p.name: p.stat().st_ino for p in directory.iterdir()}
        s.run("echo again")
        assert (directory / "0.o").stat().st_ino == made["0.o"]  # the same FIFO, used again
        r = s.run("sleep 30 & echo $!")  # the job holds slot 0's FIFOs
        try:
            s.run("echo next")
            assert (directory / "0.o").stat().st_ino != made["0.o"]
        finally:
            os.kill(int(r.stdout), signal.SIGKILL)
    assert not directory.exists()


def many_requests_in_a_row(s: trainlab.Session) -> None:
    """Single commands and batches, one after another: every FIFO is ready in time
    (a descriptor number reused between a poll and its answer once hung the host)."""
    for n in range(60):
        if n % 3 == 0:
            batch = s.run_many([f"echo {i}" for i in range(40)], timeout=20)  # past the window
            assert [r.stdout for r in batch] == [f"{i}\n" for i in range(40)]
        else:
            r = s.run(f"echo {n}; echo {n} >&2", timeout=20)
            assert (r.stdout, r.stderr) == (f"{n}\n", f"{n}\n")


@pytest.mark.parametrize("uri", ["local://?mode=shell", "local://?mode=shell&shell=sh", "local://"])
def test_many_requests_in_a_row(uri: str) -> None:
    with trainlab.connect(uri, reuse=False) as s:
        many_requests_in_a_row(s)


def test_no_place_for_the_fifos_is_a_transport_error_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full or read-only temporary directory (mocked: root here writes anywhere)."""

    def full(*_args: object, **_kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/trainlab-out-x")

    monkeypatch.setattr("trainlab.transports.command_fifos.tempfile.mkdtemp", full)
    s = trainlab.connect("local://?mode=shell", reuse=False)
    with pytest.raises(trainlab.TransportError, match="No space left") as info:
        s.run("true")
    assert "set TMPDIR to a writable directory" in str(info.value)
    s.close()
