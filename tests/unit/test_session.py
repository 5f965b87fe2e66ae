"""Session policy over the mock transport, with an injected clock: no sleeps."""

from __future__ import annotations

from typing import Any

import pytest

import trainlab
from tests.conftest import FakeClock
from trainlab.session import Session
from trainlab.transports.mock import MockTransport
from trainlab.uri import parse_target


def mock_session(clock: FakeClock | None = None, **options: Any) -> Session:
    """A session built by hand so the clock can be injected."""
    session_keys = set(trainlab.SESSION_OPTIONS)
    transport_options = {k: v for k, v in options.items() if k not in session_keys}
    declared = MockTransport.options
    full = {name: transport_options.get(name, opt.default) for name, opt in declared.items()}
    transport = MockTransport(parse_target("mock://box"), full)
    return Session(
        transport,
        options={k: v for k, v in options.items() if k in session_keys},
        clock=clock or FakeClock(),
    )


def calls(session: Session) -> list[str]:
    transport = session.transport
    assert isinstance(transport, MockTransport)
    return transport.calls


def test_open_is_lazy_and_happens_once() -> None:
    s = trainlab.connect("mock://lazy", responses={"a": "1"})
    transport = s.transport
    assert isinstance(transport, MockTransport)
    assert transport.opens == 0
    assert s.opened is None
    s.run("a")
    s.run("a")
    assert transport.opens == 1
    assert s.opened is not None


def test_ttl_cache_with_injected_clock(clock: FakeClock) -> None:
    s = mock_session(clock, responses={"date": ["Mon\n", "Tue\n"]})
    assert s.run("date", ttl=60).stdout == "Mon\n"
    clock.tick(59)
    hit = s.run("date", ttl=60)
    assert (hit.stdout, hit.cached) == ("Mon\n", True)
    clock.tick(2)
    assert s.run("date", ttl=60).stdout == "Tue\n"
    assert calls(s) == ["date", "date"]
    assert s.cache.stats.hits == 1


def test_session_default_ttl_and_per_call_override(clock: FakeClock) -> None:
    s = mock_session(clock, ttl=30, responses={"x": "1"})
    s.run("x")
    assert s.run("x").cached
    assert not s.run("x", ttl=0).cached
    assert calls(s) == ["x", "x"]


def test_refresh_runs_and_stores_the_new_answer(clock: FakeClock) -> None:
    s = mock_session(clock, responses={"v": ["1", "2", "3"]})
    s.run("v", ttl=60)
    assert s.run("v", ttl=60, refresh=True).stdout == "2"
    assert s.run("v", ttl=60).stdout == "2"


def test_failures_are_not_cached_unless_asked(clock: FakeClock) -> None:
    s = mock_session(clock, responses={"bad": 2})
    s.run("bad", ttl=60)
    s.run("bad", ttl=60)
    assert len(calls(s)) == 2
    t = mock_session(clock, cache_failures=True, responses={"bad": 2})
    t.run("bad", ttl=60)
    assert t.run("bad", ttl=60).cached


def test_cache_keys_hold_identity_and_result_options() -> None:
    a = trainlab.connect("local://", ttl=60)
    b = trainlab.connect("local://", ttl=60, env={"X": "1"})
    assert a is not b
    assert a._key("run", "echo $X") != b._key("run", "echo $X")
    import getpass
    import os

    assert a._key("run", "ls")[0] == ("local", getpass.getuser(), os.uname().nodename)


def test_invalidate_one_command_or_all(clock: FakeClock) -> None:
    s = mock_session(clock, responses={"a": "1", "b": "2"})
    s.run("a", ttl=60)
    s.run("b", ttl=60)
    assert s.invalidate("a") == 1
    assert not s.run("a", ttl=60).cached
    assert s.run("b", ttl=60).cached
    assert s.invalidate() == 2


def test_list_commands_are_quoted_safely() -> None:
    s = mock_session()
    s.run(["ls", "-l", "/tmp/a b", "$(reboot)"])
    assert calls(s) == ["ls -l '/tmp/a b' '$(reboot)'"]


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        ("echo \0", "NUL"),
        ("", "empty string"),
        ("   ", "empty string"),
        ([], "empty argument list"),
        (b"ls", "got bytes"),
        (["ls", None], "got NoneType"),
        (42, "got int"),
    ],
)
def test_bad_commands_are_refused_before_sending(command: Any, fragment: str) -> None:
    s = mock_session()
    with pytest.raises(trainlab.InvalidCommand, match=fragment):
        s.run(command)
    assert calls(s) == []


def test_bad_arguments_are_refused() -> None:
    s = mock_session()
    with pytest.raises(trainlab.InvalidCommand, match="timeout"):
        s.run("x", timeout=0)
    for endless in (float("nan"), float("inf")):  # no deadline at all: refused, not ignored
        with pytest.raises(trainlab.InvalidCommand, match="timeout"):
            s.run("x", timeout=endless)
    with pytest.raises(trainlab.InvalidCommand, match="ttl"):
        s.run("x", ttl=-1)
    with pytest.raises(trainlab.InvalidCommand, match="list of commands"):
        s.run_many("ls")  # type: ignore[arg-type]
    with pytest.raises(trainlab.InvalidCommand, match="path"):
        s.read_bytes("")


def test_check_raises_and_keeps_the_result() -> None:
    s = mock_session(responses={"bad": ("", "oops\n", 4)})
    with pytest.raises(trainlab.CommandFailed, match="oops") as info:
        s.run("bad", check=True)
    assert info.value.result.exit_status == 4


def test_batch_takes_cached_answers_and_sends_only_the_rest(clock: FakeClock) -> None:
    s = mock_session(clock, responses={"a": "1", "b": "2", "c": "3"})
    s.run("b", ttl=60)
    batch = s.run_many(["a", "b", "c"], ttl=60)
    assert [r.stdout for r in batch] == ["1", "2", "3"]
    assert [r.cached for r in batch] == [False, True, False]
    transport = s.transport
    assert isinstance(transport, MockTransport)
    assert transport.batches == [["a", "c"]]
    assert batch.round_trips == 1
    again = s.run_many(["a", "b", "c"], ttl=60)
    assert again.round_trips == 0
    assert all(r.cached for r in again)


def test_batch_stop_on_error_with_a_cached_failure(clock: FakeClock) -> None:
    s = mock_session(clock, cache_failures=True, responses={"a": "1", "bad": 1, "c": "3"})
    s.run("bad", ttl=60)
    batch = s.run_many(["a", "bad", "c"], ttl=60, stop_on_error=True)
    assert [r.command for r in batch] == ["a", "bad"]
    assert batch.skipped == ("c",)
    transport = s.transport
    assert isinstance(transport, MockTransport)
    assert transport.batches == [["a"]]


def test_fallback_batching_is_reported() -> None:
    s = mock_session(batch=False, responses={"a": "1", "b": "2"})
    batch = s.run_many(["a", "b"])
    assert batch.round_trips == 2
    assert [r.stdout for r in batch] == ["1", "2"]
    frame = s.metrics
    [detail] = frame.loc[frame["operation"] == "batch", "detail"].tolist()
    assert detail == "fallback: 2 commands, 2 round trips"
    assert frame["operation"].tolist().count("run") == 2


def test_empty_batch_is_empty() -> None:
    batch = mock_session().run_many([])
    assert len(batch) == 0
    assert batch.round_trips == 0


def test_dropped_connection_reconnects_on_next_call_and_is_marked() -> None:
    s = mock_session(responses={"a": "1"})
    s.run("a")
    transport = s.transport
    assert isinstance(transport, MockTransport)
    transport.kill()
    assert not s.alive
    s.run("a")
    assert transport.opens == 2
    assert s.reconnects == 1
    frame = s.metrics
    connects = frame[frame["operation"] == "connect"]
    assert connects["detail"].tolist() == ["open", "reconnect"]
    runs = frame[frame["operation"] == "run"]
    assert runs["reconnected"].tolist() == [False, True]


def test_failed_call_is_raised_recorded_and_never_rerun() -> None:
    s = mock_session(responses={"flaky": [trainlab.TransportError("link down"), "ok"]})
    with pytest.raises(trainlab.TransportError, match="link down"):
        s.run("flaky")
    assert calls(s) == ["flaky"]
    assert s.run("flaky").stdout == "ok"
    frame = s.metrics
    runs = frame[frame["operation"] == "run"]
    assert runs["ok"].tolist() == [False, True]
    assert runs["error"].tolist() == ["TransportError", ""]


def test_stray_oserror_becomes_a_transport_error() -> None:
    s = mock_session(responses={"x": ConnectionResetError("reset by peer")})
    with pytest.raises(trainlab.TransportError, match="reset by peer"):
        s.run("x")


def test_file_reads_cache_with_ttl(clock: FakeClock) -> None:
    s = mock_session(clock, files={"/etc/motd": "hi"})
    assert s.read_text("/etc/motd", ttl=10) == "hi"
    transport = s.transport
    assert isinstance(transport, MockTransport)
    transport.settings["files"] = {"/etc/motd": "changed"}
    assert s.read_text("/etc/motd", ttl=10) == "hi"
    clock.tick(11)
    assert s.read_text("/etc/motd", ttl=10) == "changed"


def test_secrets_never_show() -> None:
    s = trainlab.connect("mock://vault", password="hunter2", responses={"id": "0"})
    s.run("id")
    exposed = [
        repr(s),
        s._repr_html_(),
        s.metrics.to_csv(),
        trainlab.sessions().to_csv(),
        repr(s.transport),
        repr(s.cache.stats),
    ]
    assert not any("hunter2" in text for text in exposed)
    s.close()
    assert s.transport.settings["password"] is None


def test_close_releases_and_context_manager_closes() -> None:
    with trainlab.connect("mock://ctx", responses={"a": "1"}) as s:
        s.run("a")
        transport = s.transport
        assert isinstance(transport, MockTransport)
    assert s.closed
    assert transport.closes == 1
    with pytest.raises(trainlab.SessionClosed):
        s.run("a")


def test_html_repr_shows_state() -> None:
    s = mock_session(responses={"a": "1"})
    fresh = s._repr_html_()  # connected lazily: it says what the first use will do
    assert "not open yet: opens on first use" in fresh
    assert "<td>not yet</td>" in fresh
    assert "opens on first use" in repr(s)
    s.run("a")
    page = s._repr_html_()
    assert "mock://box" in page
    assert "alive" in page


# ------------------------------------------------------------------ registry


def test_same_target_and_options_give_the_same_live_session() -> None:
    a = trainlab.connect("local://?mode=shell")
    assert trainlab.connect("local://", mode="shell") is a
    assert trainlab.connect("LOCAL://?mode=shell") is a
    assert trainlab.connect("local://") is not a
    assert trainlab.connect("local://?mode=shell", ttl=5) is not a
    assert trainlab.connect("local://?mode=shell", reuse=False) is not a


def test_closed_or_dead_sessions_are_replaced() -> None:
    a = trainlab.connect("mock://r", responses={"x": "1"})
    a.run("x")
    a.close()
    b = trainlab.connect("mock://r", responses={"x": "1"})
    assert b is not a
    b.run("x")
    transport = b.transport
    assert isinstance(transport, MockTransport)
    transport.kill()
    c = trainlab.connect("mock://r", responses={"x": "1"})
    assert c is not b
    assert b.closed


def test_sessions_frame_and_close_all() -> None:
    took = trainlab.CommandResult("x", b"1", b"", 0, duration=0.25)
    a = trainlab.connect("mock://one", responses={"x": took})
    a.run("x")
    a.run("x", ttl=9)
    a.run("x", ttl=9)
    trainlab.connect("mock://two")
    frame = trainlab.sessions()
    assert list(frame.columns) == [
        "target",
        "transport",
        "mode",
        "opened",
        "commands",
        "cache_hits",
        "cache_misses",
        "cache_hit_rate",
        "cache_saved_s",
        "alive",
        "state",
    ]
    row = frame.set_index("target").loc["mock://one"]
    assert (row["commands"], row["cache_hits"], row["alive"]) == (2, 1, True)
    assert row["state"] == "alive"
    assert frame.set_index("target").loc["mock://two", "state"] == (
        "not open yet: opens on first use"
    )
    assert row["cache_hit_rate"] == 0.5  # one hit in two lookups
    assert row["cache_saved_s"] == 0.25  # the hit saved the one call's duration
    assert trainlab.close_all() == 2
    assert trainlab.sessions().empty


def test_a_secret_in_a_registry_key_is_keyed_per_process() -> None:
    import hashlib

    from trainlab.options import Option, frozen_items

    declared = {"password": Option(str, None, "a secret", secret=True)}
    one = frozen_items(declared, {"password": "hunter2"})
    assert one == frozen_items(declared, {"password": "hunter2"})  # stable within a process
    assert one != frozen_items(declared, {"password": "hunter3"})
    digest = one[0][1]
    assert "hunter2" not in digest
    plain = hashlib.sha256(b"trainlab\0hunter2").hexdigest()
    assert plain not in digest  # not a fixed-salt hash one could test guesses against
