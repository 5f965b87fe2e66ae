"""How PowerShell streams become results: markers, exit statuses, other streams."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from trainlab import powershell
from trainlab.result import CommandResult
from trainlab.transports import psrp
from trainlab.transports.psrp import Events
from trainlab.uri import parse_target


def mark(request: psrp.Request, index: int, code: int = 0, failed: int = 0) -> tuple[str, str]:
    return ("information", f"{request.nonce} {index} {code} {failed}")


def test_each_command_ends_at_its_marker() -> None:
    request = psrp.build_request(["Get-Date", "cmd /c exit 3", "Get-Item nope"])
    events = Events(
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
    results = psrp.results(request, events, "pwsh://", datetime.now(UTC), 0.3)
    assert [(r.stdout, r.stderr, r.exit_status) for r in results] == [
        ("Monday\n12:00", "", 0),
        ("", "native noise", 3),
        ("", "Cannot find path 'nope'", 1),
    ]


def test_other_streams_go_to_stderr_with_their_prefix_and_to_extra() -> None:
    request = psrp.build_request(["x"])
    events = Events(
        [
            ("warning", "disk low"),
            ("verbose", "reading"),
            ("information", "Write-Host text"),
            mark(request, 0),
        ]
    )
    (result,) = psrp.results(request, events, "pwsh://", datetime.now(UTC), 0.1)
    assert result.stderr == "WARNING: disk low\nVERBOSE: reading"
    assert result.stdout == "Write-Host text"
    assert result.extra == {
        "warning": ["disk low"],
        "verbose": ["reading"],
        "information": ["Write-Host text"],
    }


def test_terminating_error_fails_the_command_and_ends_the_batch() -> None:
    request = psrp.build_request(["ok", "throw 'boom'", "never"])
    events = Events([mark(request, 0)], finished=True, failure="boom")
    outputs, _ = psrp.outcomes(request, events)
    assert [(o.stderr, o.exit_status) for o in outputs] == [(b"", 0), (b"boom", 1)]


def test_the_stop_on_error_throw_is_not_a_result() -> None:
    request = psrp.build_request(["ok", "false", "never"], stop_on_error=True)
    events = Events(
        [mark(request, 0), mark(request, 1, failed=1)],
        finished=True,
        failure=f"{request.nonce} stop",
    )
    outputs, _ = psrp.outcomes(request, events)
    assert [o.exit_status for o in outputs] == [0, 1]


def test_a_marker_of_another_request_is_just_output() -> None:
    request = psrp.build_request(["x"])
    other = psrp.build_request(["y"])
    events = Events([mark(other, 0), mark(request, 0)])
    outputs, _ = psrp.outcomes(request, events)
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
    quiet = Events([mark(request, 0), ("output", "bye")], finished=True)
    outputs, _ = psrp.outcomes(request, quiet)
    assert [(o.stdout, o.exit_status) for o in outputs] == [(b"", 0), (b"bye", 0)]
    # Should later statements still run, the markers' indexes keep results apart.
    later = Events([mark(request, 0), ("error", "oops"), mark(request, 2)], finished=True)
    outputs, _ = psrp.outcomes(request, later)
    assert [(o.stderr, o.exit_status) for o in outputs] == [(b"", 0), (b"oops", 1), (b"", 0)]


class _Scripted(psrp.PowerShellTransport):
    """Answers every pipeline with the same messages (Write-Host text, then the JSON)."""

    scheme = "pwsh"

    def open(self) -> None: ...

    def alive(self) -> bool:
        return True

    def close(self) -> None: ...

    def run_many(
        self, commands: Sequence[str], timeout: float | None, stop_on_error: bool
    ) -> list[CommandResult]:
        request = psrp.build_request(commands)
        events = Events(
            [("information", "Checking..."), ("output", '[{"Name":"a"}]'), mark(request, 0)],
            finished=True,
        )
        return psrp.results(request, events, "pwsh://", datetime.now(UTC), 0.1)


def test_run_ps_objects_are_not_mixed_with_write_host_text() -> None:
    session = powershell.PowerShellSession(_Scripted(parse_target("pwsh://"), {}))
    assert session.run_ps("Write-Host 'Checking...'; Get-Item a") == [{"Name": "a"}]
    assert session.run("Write-Host 'Checking...'; 'x'").stdout.startswith("Checking...")
