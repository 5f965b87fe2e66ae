"""How PowerShell streams become results: markers, exit statuses, other streams."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from trainlab import framing, powershell
from trainlab.capture import CommandCapture
from trainlab.framing import FramedOutput
from trainlab.transports import psrp
from trainlab.transports.psrp import PipelineOutput
from trainlab.uri import parse_target


def mark(request: psrp.Request, index: int, code: int = 0, failed: int = 0) -> tuple[str, str]:
    return ("information", f"{request.nonce} {index} {code} {failed}")


def fed(
    request: psrp.Request,
    items: Sequence[tuple[str, str]],
    *,
    finished: bool = False,
    failure: str | None = None,
    max_output: int | None = None,
) -> PipelineOutput:
    """A pipeline's messages fed, in order, to a ``PipelineOutput`` (unbounded captures)."""
    output = PipelineOutput(request, lambda _index: CommandCapture(max_output))
    for stream, text in items:
        output.add(stream, text)
    output.finished, output.failure = finished, failure
    return output


def outcomes(output: PipelineOutput) -> list[FramedOutput]:
    output.end()
    return output.done


def test_each_command_ends_at_its_marker() -> None:
    request = psrp.build_request(["Get-Date", "cmd /c exit 3", "Get-Item nope"])
    events = fed(
        request,
        [
            ("output", "Monday"),
            ("output", "12:00"),
            mark(request, 0),
            ("error", "native noise"),
            mark(request, 1, code=3),
            ("error", "Cannot find path 'nope'"),
            mark(request, 2, failed=1),
        ],
        finished=True,
    )
    results = psrp.results(events, "pwsh://", datetime.now(UTC), 0.3)
    assert [(r.stdout, r.stderr, r.exit_status) for r in results] == [
        ("Monday\n12:00", "", 0),
        ("", "native noise", 3),
        ("", "Cannot find path 'nope'", 1),
    ]


def test_other_streams_go_to_stderr_with_their_prefix_and_to_extra() -> None:
    request = psrp.build_request(["x"])
    events = fed(
        request,
        [
            ("warning", "disk low"),
            ("verbose", "reading"),
            ("information", "Write-Host text"),
            mark(request, 0),
        ],
    )
    (result,) = psrp.results(events, "pwsh://", datetime.now(UTC), 0.1)
    assert result.stderr == "WARNING: disk low\nVERBOSE: reading"
    assert result.stdout == "Write-Host text"
    assert result.extra == {
        "warning": ["disk low"],
        "verbose": ["reading"],
        "information": ["Write-Host text"],
    }


def test_terminating_error_fails_the_command_and_ends_the_batch() -> None:
    request = psrp.build_request(["ok", "throw 'boom'", "never"])
    events = fed(request, [mark(request, 0)], finished=True, failure="boom")
    outputs = outcomes(events)
    assert [(o.stderr, o.exit_status) for o in outputs] == [(b"", 0), (b"boom", 1)]


def test_the_stop_on_error_throw_is_not_a_result() -> None:
    request = psrp.build_request(["ok", "false", "never"], stop_on_error=True)
    events = fed(
        request,
        [mark(request, 0), mark(request, 1, failed=1)],
        finished=True,
        failure=f"{request.nonce} stop",
    )
    outputs = outcomes(events)
    assert [o.exit_status for o in outputs] == [0, 1]


def test_a_marker_of_another_request_is_just_output() -> None:
    request = psrp.build_request(["x"])
    other = psrp.build_request(["y"])
    events = fed(request, [mark(other, 0), mark(request, 0)])
    outputs = outcomes(events)
    assert outputs[0].stdout == f"{other.nonce} 0 0 0".encode()


def test_scripts_round_trip_through_the_test_server_parsers() -> None:
    request = psrp.build_request(["a", "b"], stop_on_error=True)
    first = request.scripts[0].splitlines()
    assert first[0] == psrp.RESET
    assert psrp.parse_mark(first[-1]) == (request.nonce, 0, True)
    last = request.scripts[1].splitlines()
    assert psrp.parse_mark(last[-1]) == (request.nonce, 1, False)
    wrapped = psrp.as_json_script("Get-Process | Select Name", 3)
    assert psrp.unwrap_json_script(wrapped) == "Get-Process | Select Name"
    assert psrp.unwrap_json_script("Get-Process") is None


def test_nul_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        psrp.build_request(["a\0b"])


def test_packets_are_one_line_of_xml() -> None:
    assert psrp.packet("CommandAck", None) == (
        b"<CommandAck PSGuid='00000000-0000-0000-0000-000000000000' />\n"
    )


def test_a_command_that_exits_the_pipeline_still_has_its_result() -> None:
    request = psrp.build_request(["ok", "exit 5", "after"])
    quiet = fed(request, [mark(request, 0), ("output", "bye")], finished=True)
    outputs = outcomes(quiet)
    assert [(o.stdout, o.exit_status) for o in outputs] == [(b"", 0), (b"bye", 0)]
    # Should later statements still run, the markers' indexes keep results apart.
    later = fed(request, [mark(request, 0), ("error", "oops"), mark(request, 2)], finished=True)
    outputs = outcomes(later)
    assert [(o.stderr, o.exit_status) for o in outputs] == [(b"", 0), (b"oops", 1), (b"", 0)]


class _Scripted(psrp.PowerShellTransport):
    """Answers every pipeline with the same messages (Write-Host text, then the JSON)."""

    scheme = "pwsh"

    def open(self) -> None: ...

    def alive(self) -> bool:
        return True

    def close(self) -> None: ...

    def _invoke(self, request: psrp.Request, timeout: float | None, output: PipelineOutput) -> None:
        for stream, text in [("information", "Checking..."), ("output", '[{"Name":"a"}]')]:
            output.add(stream, text)
        output.add(*mark(request, 0))
        output.finished = True


def test_run_ps_objects_are_not_mixed_with_write_host_text() -> None:
    session = powershell.PowerShellSession(_Scripted(parse_target("pwsh://"), {}))
    assert session.run_ps("Write-Host 'Checking...'; Get-Item a") == [{"Name": "a"}]
    assert session.run("Write-Host 'Checking...'; 'x'").stdout.startswith("Checking...")


def test_each_message_reaches_its_commands_callback_as_it_is_added() -> None:
    request = psrp.build_request(["a", "b"])
    seen: list[tuple[int, str, str]] = []

    def capture_for(index: int) -> CommandCapture:
        return CommandCapture(on_output=lambda stream, text: seen.append((index, stream, text)))

    output = PipelineOutput(request, capture_for)
    output.add("output", "one")
    assert seen == [(0, "stdout", "one")]  # before anything else arrived
    output.add("warning", "careful")
    output.add("output", "two")
    output.add(*mark(request, 0))
    output.add("error", "oops")
    output.add(*mark(request, 1, code=2))
    output.finished = True
    results = psrp.results(output, "pwsh://", datetime.now(UTC), 0.1)
    assert seen == [
        (0, "stdout", "one"),
        (0, "stderr", "WARNING: careful"),
        (0, "stdout", "\ntwo"),  # the newline between two lines comes with the second
        (1, "stderr", "oops"),
    ]
    assert [(r.stdout, r.stderr, r.exit_status) for r in results] == [
        ("one\ntwo", "WARNING: careful", 0),
        ("", "oops", 2),
    ]


def test_a_flood_of_records_keeps_head_and_tail_and_bounded_extras() -> None:
    request = psrp.build_request(["flood"])
    lines = [f"line {n:05d}" for n in range(10_000)]  # 10 bytes each
    items = [("output", line) for line in lines] + [("information", "x" * 40)] * 100
    output = fed(request, [*items, mark(request, 0)], finished=True, max_output=1000)
    (result,) = psrp.results(output, "pwsh://", datetime.now(UTC), 0.1)
    whole = "\n".join(lines + ["x" * 40] * 100).encode()
    assert result.truncated
    assert len(result.stdout_bytes) == 1000
    assert result.stdout_bytes == whole[:500] + whole[-500:]
    assert result.stdout_dropped == len(whole) - 1000
    assert result.extra["information"] == ["x" * 40] * 25  # 1000 characters kept
    assert result.extra["information_dropped"] == 75


def test_streamed_bytes_equal_the_joined_text_with_lone_surrogates() -> None:
    request = psrp.build_request(["x"])
    texts = ["", "h\u00e9", "\ud800 lone", ""]
    output = fed(request, [*[("output", t) for t in texts], mark(request, 0)], finished=True)
    (result,) = psrp.results(output, "pwsh://", datetime.now(UTC), 0.1)
    assert result.stdout_bytes == "\n".join(texts).encode("utf-8", "replace")


def test_a_timeout_keeps_the_finished_commands_and_the_running_ones_output() -> None:
    request = psrp.build_request(["first", "flood", "never"])
    items = [("output", "done"), mark(request, 0)] + [("output", "y" * 1000)] * 3000
    output = fed(request, items)
    error = psrp.timeout_error(output, "pwsh://", 1.0, "stopped")
    assert error.command == "flood"
    assert error.partial is not None
    assert [r.stdout for r in error.partial] == ["done"]
    assert error.stdout.startswith(b"y" * 1000 + b"\ny")
    assert len(error.stdout) == framing.PARTIAL_LIMIT  # head and tail of 3 MB
