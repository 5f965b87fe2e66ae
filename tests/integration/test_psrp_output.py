"""Output at any size on pwsh://, pwsh+ssh:// and winrm://, live: records reach
``on_output`` while the pipeline runs, a flood keeps head and tail, a batch keeps each
command's own output.

Both test servers run here with ``lines=True``: each line a script writes is its own
output (or error) record, sent as it is written, as PowerShell sends a native
command's lines. They speak PSRP (psrpcore's server classes over a real subprocess's
stdio, over sshd's subsystem channel, and over WSMan on loopback); no PowerShell
runs, so these tests prove how the transports read a pipeline's messages as they
arrive, not PowerShell itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import trainlab

pytestmark = pytest.mark.winrm

# Polls of 10 ms a command may wait for the test's acknowledgement (10 s at most).
WAIT_POLLS = 1000


@pytest.fixture(scope="module")
def line_winrm_server() -> Iterator[Any]:
    from trainlab.sandbox.winrm_server import WinRMServer

    with WinRMServer(lines=True) as server:
        yield server


@pytest.fixture(params=["pwsh", "pwsh+ssh", "winrm"])
def session(request: pytest.FixtureRequest) -> Iterator[trainlab.Session]:
    if request.param == "pwsh+ssh":  # sshd runs the line-mode host as a subsystem
        server = request.getfixturevalue("pwsh_sshd")
        opened = trainlab.connect(
            f"pwsh+ssh://{server.user}@127.0.0.1:{server.port}",
            reuse=False,
            subsystem="powershell-lines",
            **request.getfixturevalue("pwsh_ssh_options"),
        )
    elif request.param == "pwsh":
        from trainlab.sandbox.psrp_stdio import PSRPStdioHost

        opened = trainlab.connect(
            "pwsh://", reuse=False, **PSRPStdioHost(lines=True).start().client_options
        )
    else:
        server = request.getfixturevalue("line_winrm_server")
        opened = trainlab.connect(server.uri, reuse=False, **server.client_options)
    with opened:
        opened.run("true")
        yield opened


def wait_for(path: Path) -> str:
    """sh that waits (bounded) until ``path`` exists, and says so on stderr if it never did."""
    return (
        f"i=0; while [ ! -e {path} ] && [ $i -lt {WAIT_POLLS} ]; do sleep 0.01; i=$((i+1)); done; "
        f"[ -e {path} ] || echo 'never acknowledged: {path.name}' >&2"
    )


def test_each_record_reaches_on_output_while_the_command_waits_for_it(
    session: trainlab.Session, tmp_path: Path
) -> None:
    # Record n is written, then the command waits until the callback has acknowledged
    # it: the command can only finish on time if every record arrived while it ran.
    count = 5
    script = "; ".join(f"echo 'record {n}'; {wait_for(tmp_path / f'ack{n}')}" for n in range(count))
    chunks: list[tuple[str, str]] = []

    def acknowledge(stream: str, text: str) -> None:
        chunks.append((stream, text))
        for number in re.findall(r"record (\d+)", text):
            (tmp_path / f"ack{number}").touch()

    result = session.run(script, timeout=110, on_output=acknowledge)
    assert result.stderr == ""  # no record waited for its acknowledgement in vain
    assert result.stdout == "\n".join(f"record {n}" for n in range(count))
    assert chunks == [("stdout", ("\n" if n else "") + f"record {n}") for n in range(count)]


def test_a_flood_larger_than_max_output_keeps_head_and_tail(session: trainlab.Session) -> None:
    count = 20_000
    whole = "\n".join(str(n) for n in range(1, count + 1)).encode()
    seen: list[str] = []
    result = session.run(
        f"seq 1 {count}", timeout=110, max_output=1000, on_output=lambda _s, t: seen.append(t)
    )
    assert (result.truncated, result.stdout_dropped, result.stderr_dropped) == (
        True,
        len(whole) - 1000,
        0,
    )
    assert result.stdout_bytes == whole[:500] + whole[-500:]
    assert "".join(seen).encode() == whole  # every record went through the callback
    assert len(seen) == count
    assert session.run("echo after").stdout == "after"


def test_a_batch_routes_each_commands_records_to_its_index(session: trainlab.Session) -> None:
    seen: dict[tuple[int, str], list[str]] = {}
    batch = session.run_many(
        ["seq 1 3000", "echo two; echo e2 >&2", "exit 4", "echo last"],
        max_output=100,
        on_output=lambda index, stream, text: seen.setdefault((index, stream), []).append(text),
    )
    first, second, third, fourth = batch
    whole = "\n".join(str(n) for n in range(1, 3001))
    assert (first.truncated, first.stdout_dropped) == (True, len(whole) - 100)
    assert first.stdout == whole[:50] + whole[-50:]
    assert "".join(seen[0, "stdout"]) == whole
    assert (second.stdout, second.stderr, second.truncated) == ("two", "e2", False)
    assert ("".join(seen[1, "stdout"]), "".join(seen[1, "stderr"])) == ("two", "e2")
    assert (third.exit_status, third.stdout, third.stderr) == (4, "", "")
    assert fourth.stdout == "".join(seen[3, "stdout"]) == "last"
    assert not any(index == 2 for index, _ in seen)


def test_streaming_leaves_the_result_unchanged(session: trainlab.Session) -> None:
    command = "printf 'h\\303\\251llo\\n\\nw\\377rld'; echo warn >&2; echo more >&2; exit 3"
    chunks: list[tuple[str, str]] = []
    streamed = session.run(command, on_output=lambda s, t: chunks.append((s, t)))
    plain = session.run(command, max_output=None)
    assert (streamed.stdout_bytes, streamed.stderr_bytes, streamed.exit_status) == (
        plain.stdout_bytes,
        plain.stderr_bytes,
        plain.exit_status,
    )
    assert streamed.stdout_bytes == "héllo\n\nw\ufffdrld".encode()
    assert (streamed.stderr, streamed.exit_status, streamed.truncated) == ("warn\nmore", 3, False)
    assert "".join(t for s, t in chunks if s == "stdout") == streamed.stdout
    assert "".join(t for s, t in chunks if s == "stderr") == streamed.stderr


def test_a_flood_past_its_deadline_keeps_head_and_tail_and_the_session(
    session: trainlab.Session,
) -> None:
    with pytest.raises(trainlab.CommandTimeout) as info:
        session.run_many(["echo first", "yes flood-line", "echo never"], timeout=2, max_output=1000)
    error = info.value
    assert error.command == "yes flood-line"
    assert error.partial is not None
    assert [r.stdout for r in error.partial] == ["first"]
    assert error.stdout.startswith(b"flood-line\nflood-line")
    assert len(error.stdout) <= 1000  # what the capture kept: head and tail
    assert session.run("echo still usable").stdout == "still usable"


def test_an_on_output_that_raises_stops_the_command_and_the_session_goes_on(
    session: trainlab.Session, tmp_path: Path
) -> None:
    def refuse(stream: str, text: str) -> None:
        raise RuntimeError("the notebook refused the output")

    with pytest.raises(RuntimeError, match="refused"):
        session.run(f"echo hello; {wait_for(tmp_path / 'never')}", timeout=60, on_output=refuse)
    assert session.run("echo next").stdout == "next"
