"""Fleets against a real sshd: 50 distinct targets, a closed port, a host that never
answers, a refused login; nothing lost, every failure a row, every wait bounded."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import trainlab
from trainlab.fleet import Fleet
from trainlab.sandbox.sshd import SSHServer
from trainlab.session import live_sessions

pytestmark = pytest.mark.ssh


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def test_fifty_targets_a_closed_port_and_a_hanging_host(
    fleet_sshd: SSHServer, fleet_options: dict[str, object], closed_port: int, hanging_port: int
) -> None:
    good = fleet_sshd.fleet_uris(50)
    closed = f"ssh://{fleet_sshd.user}@127.0.0.1:{closed_port}"
    hanging = f"ssh://{fleet_sshd.user}@127.0.0.1:{hanging_port}"
    fleet = Fleet(
        [*good, closed, hanging],
        timeout=4,
        deadline=60,
        connect_retries=0,
        **fleet_options,
    )
    result = fleet.run("hostname", progress=False)
    assert len(result) == 52
    assert result.targets == [*good, closed, hanging]
    assert [o.target for o in result.ok] == good
    assert {o.stdout for o in result.ok} == {socket.gethostname() + "\n"}
    by_target = {o.target: o for o in result}
    assert by_target[closed].error_type == "ConnectError"
    assert "refused" in by_target[closed].error.lower()
    # The hanging host is bounded by the per-target timeout, given to the
    # transport as its connect timeout.
    assert by_target[hanging].error_type == "ConnectTimeout"
    assert "within 4 s" in by_target[hanging].error
    assert not [o for o in result if o.error_type == "Deadline"]
    frame = result.frame
    assert frame["exit_status"].isna().sum() == 2
    assert set(frame.loc[frame["ok"], "target"]) == set(good)

    again = fleet.run("hostname", progress=False)
    assert all(o.reused for o in again.ok)
    assert [o.target for o in again.ok] == good
    sessions = {s.uri: s for s in fleet.sessions()}
    assert len(sessions) == 52
    connects = [int((sessions[uri].metrics["operation"] == "connect").sum()) for uri in good]
    assert connects == [1] * 50  # one connection per target over both fan-outs


def test_a_refused_login_is_a_row(
    fleet_sshd: SSHServer, fleet_options: dict[str, object], tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    [first, second] = fleet_sshd.fleet_uris(2)
    refused = trainlab.connect(second, **{**fleet_options, "key_file": str(stranger)})
    result = Fleet([first, refused], **fleet_options).run_many(["id -u", "true"], progress=False)
    assert [o.target for o in result] == [first, first, second, second]
    assert [o.ok for o in result] == [True, True, False, False]
    assert {o.error_type for o in result.failed} == {"ConnectError"}
    assert "authentication" in result.failed[0].error


def test_the_deadline_ends_a_fan_out_over_hosts_that_never_answer(
    fleet_sshd: SSHServer, fleet_options: dict[str, object], hanging_port: int
) -> None:
    hanging = [
        f"ssh://{user}{name}:{hanging_port}"
        for user in (f"{fleet_sshd.user}@", "")
        for name in ("127.0.0.1", "localhost")
    ]
    fleet = Fleet(hanging, timeout=1.5, deadline=0.3, max_workers=2, **fleet_options)
    result = fleet.run("hostname", progress=False)
    assert len(result) == 4
    assert {o.error_type for o in result} == {"Deadline"}
    assert {o.error.split(" ")[-1] for o in result} <= {"ran", "started"}


def test_ctrl_c_keeps_what_finished_and_closes_what_it_opened(
    fleet_sshd: SSHServer, fleet_options: dict[str, object]
) -> None:
    uris = fleet_sshd.fleet_uris(24)

    def interrupt(done: int, total: int) -> None:
        if done >= 3:
            raise KeyboardInterrupt

    fleet = Fleet(uris, max_workers=3, **fleet_options)
    with pytest.raises(KeyboardInterrupt):
        fleet.run("sleep 0.2; hostname", progress=interrupt)
    partial = fleet.last_result
    assert partial is not None
    assert partial.interrupted
    assert len(partial) == 24  # every target is a row: finished or cancelled
    assert len(partial.ok) >= 3
    assert {o.error_type for o in partial.failed} <= {"Cancelled"}
    assert not [s for s in live_sessions() if s.opened is not None and s.alive]


def test_cli_fleet_prints_a_row_per_target_and_fails_when_one_did() -> None:
    from tests.integration.test_cli import trainlab as run_cli

    out = run_cli("fleet", "local://", "local://?mode=shell", "-c", "echo hi")
    assert out.returncode == 0, out.stderr
    assert sum(line.endswith(" hi") for line in out.stdout.splitlines()) == 2
    out = run_cli("fleet", "local://", "mock://nobody", "-c", "echo hi", "-c", "true")
    assert out.returncode == 1
    assert len(out.stdout.strip().splitlines()) == 5  # a header and 2 x 2 rows
    assert "1 ok, 1 failed" in out.stderr


def test_cli_fleet_markdown_needs_no_optional_package() -> None:
    from tests.integration.test_cli import trainlab as run_cli

    out = run_cli("fleet", "local://", "local://?mode=shell", "-c", "echo hi", "--markdown")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "| target | command | exit_status | duration_s | stdout |"
    assert lines[1] == "|---|---|---|---|---|"
    assert len(lines) == 4
    assert all(line.endswith("| hi |") for line in lines[2:])


def test_kex_preference_reaches_the_transport(
    fleet_sshd: SSHServer, fleet_options: dict[str, object]
) -> None:
    uris = fleet_sshd.fleet_uris(3)
    fleet = Fleet(uris[:2], kex="ecdh-sha2-nistp256", **fleet_options)
    assert fleet.run("true", progress=False).all_ok
    for session in fleet.sessions():
        offered = session.transport._client.get_security_options().kex  # type: ignore[attr-defined]
        assert offered[0] == "ecdh-sha2-nistp256"
        assert "curve25519-sha256@libssh.org" in offered  # the rest stay as fallbacks
    bad = Fleet(uris[2:], kex="no-such-kex", **fleet_options).run("true", progress=False)
    assert bad[0].error_type == "TargetError"
    assert "unsupported kex no-such-kex" in bad[0].error
