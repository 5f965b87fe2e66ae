"""Failures cost once: the connect retry policy, the fleet's cool-down on an injected
clock, and the fan-out report; mock sessions whose connect fails as a dead host's does."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import trainlab
from trainlab.errors import CommandTimeout, ConnectError, SkippedRecentlyFailed, TargetError
from trainlab.fleet import Fleet, FleetResult, Outcome
from trainlab.fleet import threads as threads_module
from trainlab.fleet.cooldown import Cooldown
from trainlab.fleet.report import FleetReport
from trainlab.result import CommandResult
from trainlab.transports.retry import DEFINITE, ConnectRetry, connect_failure


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Host:
    """A mock session whose connect fails, as a dead host's does, while ``down``."""

    def __init__(self, uri: str, error: BaseException | None = None) -> None:
        self.session = trainlab.connect(uri, reuse=False, responses={"uptime": "up\n"})
        self.error = error if error is not None else refused(uri)
        self.down = True
        self.attempts = 0
        real_open = self.session.transport.open

        def open_or_fail() -> None:
            self.attempts += 1
            if self.down:
                raise self.error
            real_open()

        self.session.transport.open = open_or_fail  # type: ignore[method-assign]


def refused(uri: str) -> ConnectError:
    error = ConnectError(f"cannot connect to {uri}: Connection refused")
    error.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    return error


@pytest.fixture
def clock() -> Clock:
    return Clock()


# ------------------------------------------------------------- retry policy


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "unresolvable"),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), "timeout"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
        (TimeoutError("timed out"), "timeout"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "reset"),
        (ValueError("no socket here"), ""),
    ],
)
def test_connect_failures_are_named(exc: BaseException, kind: str) -> None:
    assert connect_failure(exc) == kind


def test_a_refusal_is_found_inside_requests_and_urllib3_wrappers() -> None:
    requests = pytest.importorskip("requests")
    from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

    try:
        try:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        except OSError as cause:
            raise NewConnectionError(None, "Failed to establish a new connection") from cause
    except NewConnectionError as new:
        wrapped = requests.exceptions.ConnectionError(MaxRetryError(None, "/x", new))
    outer = ConnectError("cannot reach http://h/")
    outer.__cause__ = wrapped
    assert connect_failure(outer) == "refused"
    unresolved = NameResolutionError("h", None, socket.gaierror(-2, "Name or service not known"))
    assert connect_failure(unresolved) == "unresolvable"


def test_a_hang_up_is_found_inside_urllib3s_protocol_error() -> None:
    from http.client import RemoteDisconnected

    from urllib3.exceptions import MaxRetryError, ProtocolError

    # urllib3 keeps the socket's error as the second argument, with no __cause__.
    aborted = ProtocolError("Connection aborted.", RemoteDisconnected("closed without response"))
    assert connect_failure(MaxRetryError(None, "/x", aborted)) == "reset"


def test_the_policy_retries_timeouts_and_resets_only_with_bounded_backoff() -> None:
    policy = ConnectRetry(retries=3, backoff=0.5, max_pause=1.5)
    timeout, refusal = TimeoutError("timed out"), ConnectionRefusedError(111, "refused")
    assert [policy.retries_after(timeout, n) for n in range(4)] == [True, True, True, False]
    assert not policy.retries_after(refusal, 0)
    assert [policy.pause(n) for n in range(4)] == [0.5, 1.0, 1.5, 1.5]
    eager = ConnectRetry(retries=1, definite=True)
    assert eager.retries_after(refusal, 0)
    assert not eager.retries_after(refusal, 1)
    assert {"refused", "unresolvable", "unreachable"} == DEFINITE
    with pytest.raises(ValueError, match="never negative"):
        ConnectRetry(retries=-1)


# ------------------------------------------------------------------ cool-down


def test_a_target_that_failed_to_connect_is_skipped_until_the_cooldown_passes(
    clock: Clock,
) -> None:
    dead = Host("mock://dead")
    fleet = Fleet(
        ["mock://up", dead.session],
        cooldown=Cooldown(30, clock=clock),
        responses={"uptime": "up\n"},
    )
    first = fleet.run("uptime", progress=False)
    row = first[1]
    assert (row.error_type, row.connect_failure) == ("ConnectError", "refused")
    assert dead.attempts == 1

    clock.now += 12
    second = fleet.run("uptime", progress=False)
    assert second.targets == ["mock://up", "mock://dead"]  # the fleet's order holds
    assert second[0].ok
    skipped = second[1]
    assert skipped.error_type == "SkippedRecentlyFailed" == SkippedRecentlyFailed.__name__
    assert skipped.connect_failure == "refused"
    assert "failed to connect 12 s ago" in skipped.error
    assert "ConnectError: cannot connect to mock://dead: Connection refused" in skipped.error
    assert "retry_failed=True" in skipped.error
    assert dead.attempts == 1  # not tried
    assert list(fleet.cooldown.failing) == ["mock://dead"]

    clock.now += 19  # 31 s after the failure: tried again
    third = fleet.run("uptime", progress=False)
    assert third[1].error_type == "ConnectError"
    assert dead.attempts == 2


def test_retry_failed_tries_at_once_and_a_recovered_target_is_forgotten(clock: Clock) -> None:
    dead = Host("mock://dead")
    fleet = Fleet([dead.session], cooldown=Cooldown(30, clock=clock))
    fleet.run_many(["uptime", "uptime"], progress=False)
    again = fleet.run_many(["uptime", "uptime"], progress=False)
    assert [o.error_type for o in again] == ["SkippedRecentlyFailed"] * 2  # a row per command
    dead.down = False
    back = fleet.run_many(["uptime", "uptime"], progress=False, retry_failed=True)
    assert back.all_ok
    assert dead.attempts == 2
    dead.down = True
    dead.session.transport.kill()  # type: ignore[attr-defined]
    assert fleet.run("uptime", progress=False)[0].connect_failure == "refused"
    assert fleet.run("uptime", progress=False)[0].error_type == "SkippedRecentlyFailed"
    fleet.close()  # closing forgets: the next fan-out tries every target
    assert not fleet.cooldown.failing


def test_command_failures_never_start_a_cooldown(clock: Clock) -> None:
    timeout = CommandTimeout("ran past its deadline", command="uptime", timeout=1)
    lost = ConnectError("the command's connection broke")  # raised by a command, not a connect
    sessions = [
        trainlab.connect("mock://exit3", reuse=False, responses={"uptime": 3}),
        trainlab.connect("mock://slow", reuse=False, responses={"uptime": timeout}),
        trainlab.connect("mock://lost", reuse=False, responses={"uptime": lost}),
    ]
    fleet = Fleet(sessions, cooldown=Cooldown(30, clock=clock))
    first = fleet.run("uptime", progress=False)
    assert [o.error_type for o in first] == ["", "CommandTimeout", "ConnectError"]
    assert not [o for o in first if o.connect_failure]
    second = fleet.run("uptime", progress=False)
    assert [o.error_type for o in second] == ["", "CommandTimeout", "ConnectError"]
    assert not fleet.cooldown.failing


def test_cooldown_zero_tries_every_time_and_bad_values_are_named() -> None:
    dead = Host("mock://dead")
    fleet = Fleet([dead.session], cooldown=0)
    for _ in range(3):
        assert fleet.run("uptime", progress=False)[0].error_type == "ConnectError"
    assert dead.attempts == 3
    for bad in (-1, True, "30", 10**6):
        with pytest.raises(TargetError, match="cooldown is seconds"):
            Fleet(["mock://a"], cooldown=bad)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_a_connect_past_the_timeout_is_a_connect_timeout_and_cools_down(
    monkeypatch: pytest.MonkeyPatch, gate: threading.Event, clock: Clock
) -> None:
    monkeypatch.setattr(threads_module, "GRACE", 0.05)
    monkeypatch.setattr(threads_module, "_TICK", 0.02)
    hung = Host("mock://hung")
    hung.session.transport.open = lambda: gate.wait(10)  # type: ignore[method-assign]
    fleet = Fleet(["mock://up", hung.session], timeout=0.2, cooldown=Cooldown(30, clock=clock))
    first = fleet.run("uptime", progress=False)
    assert first[1].error_type == "ConnectTimeout"
    assert first[1].connect_failure == "timeout"
    assert "while connecting" in first[1].error
    assert fleet.run("uptime", progress=False)[1].error_type == "SkippedRecentlyFailed"


# --------------------------------------------------------------------- report


def outcome(target: str, *, connect: float, run: float, **kw: Any) -> Outcome:
    result = CommandResult("id", b"0\n", b"", 0, duration=run) if not kw else None
    return Outcome(target, "id", result, connect_s=connect, duration=run, **kw)


def test_the_report_groups_failures_and_names_the_slowest() -> None:
    rows = [outcome(f"ssh://web{i}", connect=0.1, run=0.01 * i) for i in range(6)]
    rows[4] = outcome("ssh://web4", connect=2.0, run=0.1)
    rows += [
        outcome(
            f"ssh://dead{i}",
            connect=0.001,
            run=0.0,
            error=f"cannot connect to dead{i}:22: Connection refused",
            error_type="ConnectError",
            connect_failure="refused",
        )
        for i in range(3)
    ]
    rows.append(
        outcome(
            "ssh://gone",
            connect=0,
            run=0,
            error="skipped: failed to connect 3 s ago",
            error_type="SkippedRecentlyFailed",
            connect_failure="unresolvable",
        )
    )
    rows.append(Outcome("ssh://bad", "id", CommandResult("id", b"", b"nope\n", 2), connect_s=0.1))
    result = FleetResult(rows)
    report = result.report(slowest=2)
    assert report.summary == (
        "11 targets: 6 ok, 3 ConnectError (refused), 1 exit 2, "
        "1 skipped as recently failed (unresolvable); slowest ssh://web4 2.1 s"
    )
    groups = report.groups.set_index("outcome")
    assert groups.loc["ConnectError", "targets"] == 3
    assert groups.loc["ConnectError", "example_targets"] == "ssh://dead0, ssh://dead1, ssh://dead2"
    assert "Connection refused" in groups.loc["ConnectError", "example_error"]
    assert groups.loc["exit 2", "example_error"] == "nope"
    assert list(report.slowest["target"]) == ["ssh://web4", "ssh://web5"]
    assert report.slowest.loc[0, "connect_s"] == 2.0
    assert len(report.targets) == 11
    assert report.summary in repr(report)
    page = report._repr_html_()
    assert "ConnectError" in page
    assert "ssh://web4" in page
    assert report.summary in result._repr_html_()
    frame = result.frame
    assert frame.loc[frame["target"] == "ssh://web4", "connect_s"].item() == 2.0
    assert set(frame["connect_failure"]) == {"", "refused", "unresolvable"}


def test_a_fleet_run_records_connect_time_apart_from_run_time() -> None:
    fleet = Fleet(["mock://a", "mock://b"], responses={"uptime": "up\n"})
    first = fleet.run("uptime", progress=False)
    second = fleet.run("uptime", progress=False)
    assert all(o.connect_s > 0 and not o.reused for o in first)
    assert all(o.reused for o in second)
    assert isinstance(second.report(), FleetReport)
    assert second.report().summary.startswith("2 targets: 2 ok; slowest mock://")
