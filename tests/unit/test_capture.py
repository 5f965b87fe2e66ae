"""Bounded capture, the incremental frame reader, and the session's output arguments (mock)."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab
from trainlab.capture import CallOutput, CommandCapture, StreamCapture, resolve_max_output
from trainlab.errors import InvalidCommand, TransportError
from trainlab.framed_reader import FrameReader
from trainlab.framing import build_request

from .test_session import mock_session

NONCE = b"__tl_0123456789abcdef01234567"


def test_stream_keeps_everything_under_the_limit() -> None:
    stream = StreamCapture(10)
    for piece in (b"abc", b"def", b"ghij"):
        stream.write(piece)
    assert (stream.value(), stream.dropped, stream.total) == (b"abcdefghij", 0, 10)


def test_stream_keeps_head_and_tail_and_counts_the_middle() -> None:
    stream = StreamCapture(10)
    data = bytes(range(100))
    for start in range(0, 100, 7):  # chunks that straddle the head, the middle and the tail
        stream.write(data[start : start + 7])
    assert stream.value() == data[:5] + data[-5:]
    assert (stream.dropped, stream.total) == (90, 100)


def test_stream_value_is_stable_and_writes_after_it_still_count() -> None:
    stream = StreamCapture(6)
    stream.write(b"abcdefgh")
    assert stream.value() is stream.value()
    assert stream.value() == b"abcfgh"
    stream.write(b"XYZ")
    assert (stream.value(), stream.dropped) == (b"abcXYZ", 5)
    stream.write(b"123")
    assert (stream.value(), stream.dropped) == (b"abc123", 8)


def test_stream_first_chunk_larger_than_the_limit() -> None:
    stream = StreamCapture(7)
    stream.write(b"0123456789")
    assert (stream.value(), stream.dropped) == (b"012" + b"6789", 3)


def test_stream_without_limit_keeps_all_and_clips_for_errors() -> None:
    stream = StreamCapture(None)
    for _ in range(1000):
        stream.write(b"x" * 100)
    assert (len(stream.value()), stream.dropped) == (100_000, 0)
    assert stream.clipped(10) == b"x" * 10


def test_clipped_takes_head_and_tail_of_what_was_kept() -> None:
    stream = StreamCapture(20)
    data = bytes(range(60))
    for start in range(0, 60, 3):
        stream.write(data[start : start + 3])
    assert stream.value() == data[:10] + data[-10:]
    assert stream.clipped(8) == data[:4] + data[-4:]
    assert stream.clipped(40) == data[:10] + data[-10:]


def test_max_output_none_and_zero_mean_no_bound() -> None:
    assert resolve_max_output(None) is None
    assert resolve_max_output(0) is None
    assert resolve_max_output(5) == 5
    with pytest.raises(InvalidCommand, match="max_output"):
        resolve_max_output(-1)


def test_on_output_gets_whole_characters_in_order() -> None:
    seen: list[tuple[str, str]] = []
    capture = CommandCapture(on_output=lambda stream, text: seen.append((stream, text)))
    data = "héllo wörld €\n".encode()
    for byte in data:  # every multi-byte character split across chunks
        capture.write("stdout", bytes([byte]))
    capture.write("stderr", b"\xff")
    capture.close()
    assert "".join(text for stream, text in seen if stream == "stdout") == data.decode()
    assert [text for stream, text in seen if stream == "stderr"] == ["\ufffd"]
    assert all("\ufffd" not in text for stream, text in seen if stream == "stdout")


def test_output_file_gets_every_byte_while_the_capture_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "out"
    capture = CommandCapture(4, output_file=path)
    capture.write("stdout", b"0123456789")
    capture.write("stderr", b"\xffbad")
    capture.close()
    assert path.read_bytes() == b"0123456789"
    assert (tmp_path / "out.stderr").read_bytes() == b"\xffbad"
    assert (capture.stdout.value(), capture.truncated) == (b"0189", True)


def answer(commands: list[str], outputs: list[tuple[bytes, bytes, int]]) -> tuple[bytes, bytes]:
    """What the bash host writes for ``commands`` (each ``(stdout, stderr, status)``)."""
    out = err = b""
    last = len(outputs) - 1
    for index, (stdout, stderr, status) in enumerate(outputs):
        z = b" Z %d" % len(outputs) if index == last else b""
        out += stdout + NONCE + b" E %d %d 1.0 1.5%s\n" % (index, status, z)
        err += stderr + NONCE + b" E %d%s\n" % (index, z)
    return out, err


def test_reader_splits_a_batch_fed_a_byte_at_a_time() -> None:
    commands = ["a", "b", "c"]
    request = build_request(commands, nonce=NONCE)
    outputs = [(b"one\n", b"", 0), (b"two", b"e2\n", 3), (b"", b"", 0)]
    out, err = answer(commands, outputs)
    reader = FrameReader(request, lambda _i: CommandCapture())
    for index in range(max(len(out), len(err))):
        reader.feed("stderr", err[index : index + 1])
        reader.feed("stdout", out[index : index + 1])
    assert reader.done
    got = reader.outputs()
    assert [(o.stdout, o.stderr, o.exit_status) for o in got] == outputs
    assert [o.duration for o in got] == [pytest.approx(0.5)] * 3


def test_reader_finds_markers_after_a_flood_and_keeps_boundaries_under_a_cap() -> None:
    commands = ["flood", "small"]
    request = build_request(commands, nonce=NONCE)
    flood = b"y\n" * 500_000
    out, err = answer(commands, [(flood, b"w" * 5000, 0), (b"tail\n", b"", 1)])
    output = CallOutput(16)
    reader = FrameReader(request, output.for_command)
    for start in range(0, len(out), 65536):
        reader.feed("stdout", out[start : start + 65536])
    reader.feed("stderr", err)
    first, second = reader.outputs()
    assert (first.stdout, first.stdout_dropped) == (b"y\n" * 4 + b"y\n" * 4, len(flood) - 16)
    assert (first.stderr, first.stderr_dropped) == (b"w" * 16, 5000 - 16)
    assert (second.stdout, second.stdout_dropped, second.exit_status) == (b"tail\n", 0, 1)


def test_reader_timeout_error_keeps_a_partial_marker_as_output() -> None:
    request = build_request(["a", "b"], nonce=NONCE)
    reader = FrameReader(request, lambda _i: CommandCapture())
    reader.feed("stdout", b"done\n" + NONCE + b" E 0 0 1 2\n")
    reader.feed("stderr", NONCE + b" E 0\n")
    reader.feed("stdout", b"running __tl_01")  # may begin a marker: held back until now
    error = reader.timeout_error("local://", 1.0, aftermath="killed")
    assert error.command == "b"
    assert error.stdout == b"running __tl_01"
    assert error.partial is not None
    assert [r.stdout for r in error.partial] == ["done\n"]


def test_reader_rejects_markers_out_of_step() -> None:
    request = build_request(["a", "b"], nonce=NONCE)
    reader = FrameReader(request, lambda _i: CommandCapture())
    with pytest.raises(TransportError, match="out of step"):
        reader.feed("stdout", NONCE + b" E 1 0\n")


def test_session_caps_a_transport_that_cannot_stream_and_says_so() -> None:
    session = mock_session(responses={"big": "x" * 100, "small": "ok\n"}, max_output=10)
    seen: list[tuple[str, str]] = []
    result = session.run("big", ttl=60, on_output=lambda s, t: seen.append((s, t)))
    assert (result.stdout, result.truncated, result.stdout_dropped) == ("x" * 10, True, 90)
    assert "truncated (90 bytes dropped)" in repr(result)
    assert seen == [("stdout", "x" * 100)]  # the whole output, when the command ended
    assert session.metrics["detail"].iloc[-1].startswith("output streamed and capped")
    again = session.run("big", ttl=60)
    assert not again.cached  # a truncated result is not cached
    whole = session.run("big", ttl=60, max_output=None)
    assert (whole.stdout, whole.truncated) == ("x" * 100, False)
    assert session.run("big", ttl=60, max_output=None).cached


def test_session_cache_hit_feeds_its_output_to_the_call() -> None:
    session = mock_session(responses={"small": "ok\n"})
    session.run("small", ttl=60)
    seen: list[str] = []
    hit = session.run("small", ttl=60, on_output=lambda _s, text: seen.append(text))
    assert (hit.cached, seen) == (True, ["ok\n"])


def test_run_many_on_output_gets_each_commands_index(capsys: pytest.CaptureFixture[str]) -> None:
    session = mock_session(responses={"a": "A\n", "b": ("B\n", "eb\n", 0), "c": "C\n"})
    session.run("b", ttl=60)
    seen: list[tuple[int, str, str]] = []
    batch = session.run_many(
        ["a", "b", "c"], ttl=60, on_output=lambda *args: seen.append(args), stream=True
    )
    assert [r.stdout for r in batch] == ["A\n", "B\n", "C\n"]
    assert sorted(seen) == [
        (0, "stdout", "A\n"),
        (1, "stderr", "eb\n"),
        (1, "stdout", "B\n"),
        (2, "stdout", "C\n"),
    ]
    printed = capsys.readouterr()
    assert sorted(printed.out.splitlines()) == ["A", "B", "C"]
    assert printed.err == "eb\n"


def test_session_option_max_output_reaches_the_session() -> None:
    with trainlab.connect("mock://m", max_output=0, reuse=False) as unbounded:
        assert unbounded.max_output is None
    with trainlab.connect("mock://m?max_output=4096", reuse=False) as bounded:
        assert bounded.max_output == 4096


def test_which_transports_stream_output() -> None:
    # SSM hands output over once the invocation has finished and a REST command's
    # output is a response body: neither can stream. The PowerShell transports do.
    from trainlab.transports.pwsh import PwshTransport
    from trainlab.transports.rest import HTTPTransport, RESTTransport
    from trainlab.transports.ssm import SSMTransport
    from trainlab.transports.winrm import WinRMSTransport, WinRMTransport

    assert not any(t.supports_output for t in (SSMTransport, RESTTransport, HTTPTransport))
    assert all(t.supports_output for t in (PwshTransport, WinRMTransport, WinRMSTransport))
