"""Dead and silent targets in a fleet against a real sshd: a refusal costs one attempt, a
silent host its timeout, and either only once within the fleet's cool-down."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import trainlab
from tests.servers import listening
from trainlab.fleet import Fleet
from trainlab.sandbox.sshd import SSHServer

pytestmark = pytest.mark.ssh


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts every connection and never writes a byte."""
    held: list[socket.socket] = []
    try:
        with listening(held.append) as port:
            yield port
    finally:
        for conn in held:
            conn.close()


@pytest.mark.timeout(60)  # a refusal retried with a minute's backoff would run past it
def test_refused_and_unresolvable_targets_fail_once_then_are_skipped(
    fleet_sshd: SSHServer, fleet_options: dict[str, object], closed_port: int
) -> None:
    good = fleet_sshd.fleet_uris(8)
    refused = f"ssh://{fleet_sshd.user}@127.0.0.1:{closed_port}"
    unknown = "ssh://nobody@no-such-host.invalid"
    fleet = Fleet(
        [*good, refused, unknown],
        timeout=10,
        connect_retries=3,
        retry_backoff=60,
        **fleet_options,
    )
    first = {o.target: o for o in fleet.run("hostname", progress=False)}
    assert all(first[uri].ok for uri in good)
    assert (first[refused].error_type, first[refused].connect_failure) == (
        "ConnectError",
        "refused",
    )
    assert "connection refused (1 attempt, not retried: " in first[refused].error  # not 4
    assert (first[unknown].error_type, first[unknown].connect_failure) == (
        "ConnectError",
        "unresolvable",
    )
    assert (
        "cannot connect to no-such-host.invalid:22: the host name does not resolve"
        in first[unknown].error
    )

    second = fleet.run("hostname", progress=False)
    assert [o.target for o in second] == [*good, refused, unknown]
    assert all(o.reused for o in second.ok)
    assert len(second.ok) == 8
    skipped = {o.target: o for o in second.failed}
    assert {o.error_type for o in skipped.values()} == {"SkippedRecentlyFailed"}
    assert first[refused].error in skipped[refused].error  # why, and when
    assert "s ago (at " in skipped[refused].error
    report = second.report()
    assert report.summary.startswith(
        "10 targets: 8 ok, 1 skipped as recently failed (refused), "
        "1 skipped as recently failed (unresolvable); slowest "
    )
    sessions = {s.uri: s for s in fleet.sessions()}
    assert int((sessions[refused].metrics["operation"] == "connect").sum()) == 1

    third = {o.target: o for o in fleet.run("hostname", progress=False, retry_failed=True)}
    assert third[refused].error_type == third[unknown].error_type == "ConnectError"
    assert int((sessions[refused].metrics["operation"] == "connect").sum()) == 2


def test_a_silent_host_is_a_connect_timeout_row_and_the_others_answer(
    fleet_sshd: SSHServer, fleet_options: dict[str, object], silent_port: int
) -> None:
    good = fleet_sshd.fleet_uris(4)
    silent = f"ssh://{fleet_sshd.user}@127.0.0.1:{silent_port}"
    fleet = Fleet([*good, silent], timeout=2, **fleet_options)
    # It returns at all: a silent host that hung the fan-out would meet the test's timeout.
    result = fleet.run("hostname", progress=False)
    assert [o.target for o in result.ok] == good
    [row] = result.failed
    assert (row.target, row.error_type, row.connect_failure) == (
        silent,
        "ConnectTimeout",
        "timeout",
    )
    assert "within 2 s" in row.error
    frame = result.frame
    assert frame.loc[frame["target"] == silent, "exit_status"].isna().all()
    again = fleet.run("hostname", progress=False)
    assert [o.target for o in again.ok] == good
    assert again[-1].error_type == "SkippedRecentlyFailed"


def test_a_refused_ssh_connect_is_tried_once(
    ssh_options: dict[str, object], closed_port: int
) -> None:
    uri = f"ssh://nobody@127.0.0.1:{closed_port}"
    once = trainlab.connect(uri, reuse=False, connect_retries=3, retry_backoff=0.01, **ssh_options)
    with pytest.raises(trainlab.ConnectError, match=r"connection refused \(1 attempt, not retried"):
        once.open()  # retry_refused=True retries it (tests/integration/test_ssh.py)


@pytest.mark.rest
@pytest.mark.timeout(60)  # urllib3 retrying the refusal with a minute's backoff would not end
def test_a_refused_rest_connect_is_not_retried(closed_port: int) -> None:
    api = trainlab.connect(f"http://127.0.0.1:{closed_port}/", reuse=False, retries=3, backoff=60)
    with pytest.raises(trainlab.ConnectError, match=r"connection refused \(1 attempt, not retried"):
        api.get("/items")
