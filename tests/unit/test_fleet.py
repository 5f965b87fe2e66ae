"""Fleet logic against the scripted mock transport: rows, failures, reuse, limits, Ctrl-C."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

import trainlab
from trainlab import fleet as fleet_module
from trainlab.errors import ConnectError, FleetError, TargetError
from trainlab.fleet import FLEET_COLUMNS, Fleet, FleetResult, FleetWarning, Outcome
from trainlab.fleet import fleet as facade_module
from trainlab.fleet import targets as targets_module
from trainlab.fleet import threads as threads_module


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event blocked answers wait on (boundedly); set at the end so no thread lingers."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads_module, "GRACE", 0.05)
    monkeypatch.setattr(threads_module, "_TICK", 0.02)


def blocked(gate: threading.Event) -> Any:
    def answer(_command: str) -> str:
        gate.wait(10)
        return "late\n"

    return answer


def test_one_row_per_target_in_order_with_the_result_columns() -> None:
    uris = [f"mock://web{i}" for i in range(12)]
    fleet = Fleet(uris, responses={"hostname": "web\n"}, max_workers=4)
    result = fleet.run("hostname", progress=False)
    frame = result.frame
    assert list(frame.columns) == list(FLEET_COLUMNS)
    assert list(frame["target"]) == uris
    assert frame["ok"].all()
    assert str(frame["exit_status"].dtype) == "Int64"
    assert result.all_ok
    assert len(result.ok) == 12
    assert not result.failed
    assert result.targets == uris
    assert [r.stdout for r in result.results] == ["web\n"] * 12


def test_failures_are_rows_and_check_raises_with_every_outcome() -> None:
    # Sessions with their own script: one cannot connect, one exits 3.
    bad = trainlab.connect("mock://bad", responses={"uptime": ConnectError("refused")})
    exit3 = trainlab.connect("mock://exit3", responses={"uptime": 3})
    mixed = Fleet(["mock://good", bad, exit3], responses={"uptime": "up\n"})
    result = mixed.run("uptime", progress=False)
    assert len(result) == 3
    by_target = {o.target: o for o in result}
    assert by_target["mock://good"].ok
    assert by_target["mock://bad"].error_type == "ConnectError"
    assert by_target["mock://bad"].exit_status is None
    assert "refused" in by_target["mock://bad"].error
    assert by_target["mock://exit3"].exit_status == 3
    assert {o.target for o in result.failed} == {"mock://bad", "mock://exit3"}
    assert [o.target for o in result.errors] == ["mock://bad"]
    frame = result.frame
    assert frame.loc[frame["target"] == "mock://bad", "exit_status"].isna().all()
    with pytest.raises(FleetError) as caught:
        mixed.run("uptime", check=True, progress=False)
    assert isinstance(caught.value.results, FleetResult)
    assert len(caught.value.results) == 3
    assert "2 of 3 targets failed" in str(caught.value)


def test_a_non_zero_exit_is_data_not_an_error() -> None:
    result = Fleet(["mock://a"], responses={"false": 1}).run("false", progress=False)
    [outcome] = result
    assert outcome.exit_status == 1
    assert outcome.error_type == ""
    assert not outcome.ok
    assert not result.errors


def test_second_fan_out_reuses_every_session() -> None:
    uris = [f"mock://r{i}" for i in range(8)]
    fleet = Fleet(uris, responses={"id": "0\n"})
    first = fleet.run("id", progress=False)
    second = fleet.run("id", progress=False)
    assert not any(o.reused for o in first)
    assert all(o.reused for o in second)
    assert all(s.transport.opens == 1 for s in fleet.sessions())  # type: ignore[attr-defined]
    assert fleet.sessions()[0] is trainlab.connect("mock://r0", responses={"id": "0\n"})


def test_run_many_gives_a_row_per_target_and_command_and_keeps_skips() -> None:
    fleet = Fleet(["mock://a", "mock://b"], responses={"one": "1\n", "bad": 2, "three": "3\n"})
    result = fleet.run_many(["one", "bad", "three"], stop_on_error=True, progress=False)
    frame = result.frame
    assert list(frame["command"]) == ["one", "bad", "three"] * 2
    assert list(frame["error_type"]) == ["", "", "Skipped"] * 2
    assert list(frame["exit_status"].fillna(-9)) == [0, 2, -9] * 2


def test_a_target_past_its_timeout_is_a_row_and_the_rest_finish(gate: threading.Event) -> None:
    slow = trainlab.connect("mock://slow", responses={"x": blocked(gate)})
    fleet = Fleet(["mock://fast", slow], responses={"x": "ok\n"}, timeout=0.1)
    result = fleet.run("x", progress=False)
    by_target = {o.target: o for o in result}
    assert by_target["mock://fast"].ok
    assert by_target["mock://slow"].error_type == "Timeout"
    assert "0.1 s" in by_target["mock://slow"].error


def test_the_deadline_bounds_the_whole_fan_out(gate: threading.Event) -> None:
    uris = [f"mock://d{i}" for i in range(4)]
    fleet = Fleet(uris, responses={"x": blocked(gate)}, max_workers=1, deadline=0.1)
    result = fleet.run("x", progress=False)
    assert len(result) == 4
    assert {o.error_type for o in result} == {"Deadline"}
    assert "before it started" in result[-1].error


def test_per_call_timeout_and_deadline_are_checked() -> None:
    fleet = Fleet(["mock://a"])
    with pytest.raises(TargetError):
        fleet.run("x", timeout=0)
    with pytest.raises(TargetError):
        Fleet(["mock://a"], deadline=-1)
    with pytest.raises(TargetError):
        Fleet([])
    with pytest.raises(TargetError):
        Fleet(["mock://a"], max_workers=0)


def test_ctrl_c_keeps_finished_outcomes_and_closes_what_it_opened(gate: threading.Event) -> None:
    stuck = trainlab.connect("mock://stuck", responses={"x": blocked(gate)})
    fleet = Fleet(["mock://quick", stuck], responses={"x": "ok\n"}, max_workers=2)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        fleet.run("x", progress=interrupt)
    partial = caught.value.results  # type: ignore[attr-defined]
    assert partial is fleet.last_result
    assert partial.interrupted
    kinds = {o.target: o.error_type for o in partial}
    assert kinds == {"mock://quick": "", "mock://stuck": "Cancelled"}
    quick = trainlab.connect("mock://quick", responses={"x": "ok\n"})
    assert quick.opened is None  # the interrupted fan-out's session was closed: a new one
    gate.set()


def test_progress_callback_counts_targets() -> None:
    seen: list[tuple[int, int]] = []
    Fleet([f"mock://p{i}" for i in range(3)], responses={"x": 0}).run(
        "x", progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_default_concurrency_is_bounded_by_the_open_file_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(targets_module, "fd_budget", lambda: 40)
    assert fleet_module.default_max_workers(500) == 10
    monkeypatch.setattr(targets_module, "fd_budget", lambda: 1_000_000)
    assert fleet_module.default_max_workers(500) == fleet_module.DEFAULT_MAX_WORKERS
    assert fleet_module.default_max_workers(3) == 3


def test_a_fleet_too_big_for_the_file_limit_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facade_module, "fd_budget", lambda: 10)
    with pytest.warns(FleetWarning, match="open-file limit"):
        Fleet([f"mock://w{i}" for i in range(20)])


def test_real_file_budget_is_positive() -> None:
    assert targets_module.fd_budget() > 0


def test_from_inventory_maps_columns_to_targets() -> None:
    inventory = pd.DataFrame(
        {
            "instance_id": ["i-1", "i-2", "i-3"],
            "region": ["eu-west-1", "eu-west-1", "us-east-1"],
            "private_ip": ["10.0.0.1", None, "10.0.0.3"],
            "login": ["admin", "admin", None],
        }
    )
    with pytest.warns(FleetWarning, match="1 inventory rows"):
        ssh = Fleet.from_inventory(inventory, user="ec2-user", columns={"user": "login"})
    assert ssh.uris == ["ssh://admin@10.0.0.1", "ssh://ec2-user@10.0.0.3"]
    ssm = Fleet.from_inventory(inventory, via="ssm")
    assert ssm.uris == [
        "ssm://i-1?region=eu-west-1",
        "ssm://i-2?region=eu-west-1",
        "ssm://i-3?region=us-east-1",
    ]
    with pytest.raises(TargetError, match="no column"):
        Fleet.from_inventory(inventory, columns={"host": "nope"})
    assert Fleet(inventory, via="ssm").uris == ssm.uris


def test_sessions_as_targets_and_duplicates_run_once() -> None:
    session = trainlab.connect("mock://s1", responses={"x": "s\n"})
    fleet = Fleet([session, "mock://s1", "mock://s2"], responses={"x": "t\n"})
    assert fleet.uris == ["mock://s1", "mock://s2"]
    result = fleet.run("x", progress=False)
    assert [o.stdout for o in result] == ["s\n", "t\n"]
    with pytest.raises(TargetError):
        Fleet([42])  # type: ignore[list-item]


def test_a_bad_uri_is_a_row_not_an_exception() -> None:
    result = Fleet(["mock://ok", "nope://x"], responses={"x": 0}).run("x", progress=False)
    assert [o.error_type for o in result] == ["", "TargetError"]


def test_reprs() -> None:
    fleet = Fleet(["mock://a", "mock://b"], responses={"x": "<b>\n"})
    result = fleet.run("x", progress=False)
    assert "2 targets" in repr(fleet)
    assert repr(result).startswith("<FleetResult 'x' on 2 targets: 2 ok, 0 failed")
    page = result._repr_html_()
    assert "&lt;b&gt;" in page
    assert "mock://b" in page
    assert "exited=0" in repr(result[0])
    failed = Outcome("mock://z", "x", error="refused", error_type="ConnectError")
    assert "ConnectError" in repr(failed)
    assert "ConnectError" in FleetResult([failed])._repr_html_()


def test_fleet_is_exported_lazily() -> None:
    assert trainlab.Fleet is Fleet
    assert "Fleet" in trainlab.__all__


def test_ssh_targets_get_the_per_target_timeout_as_connect_timeout() -> None:
    fleet = Fleet(["ssh://a@h1", "ssh://a@h2?timeout=30"], timeout=3)
    options = [spec.options for spec in fleet._specs]
    assert options[0]["timeout"] == 3
    assert "timeout" not in options[1]
    assert "timeout" not in Fleet(["ssh://a@h1"], timeout=100)._specs[0].options


def test_shell_mode_is_the_default_where_a_transport_has_one() -> None:
    fleet = Fleet(["ssh://a@h1", "ssh://a@h2?mode=exec", "local://", "mock://m"])
    modes = [spec.options.get("mode") for spec in fleet._specs]
    assert modes == ["shell", None, "shell", None]
    assert Fleet(["local://"], mode="exec")._specs[0].options["mode"] == "exec"


def test_a_batch_past_its_deadline_keeps_the_commands_that_finished() -> None:
    from trainlab.errors import CommandTimeout
    from trainlab.result import BatchResult, CommandResult

    done = BatchResult([CommandResult("one", b"1\n", b"", 0, target="mock://t")])

    def late(_command: str) -> str:
        raise CommandTimeout("batch past its deadline", partial=done)

    session = trainlab.connect("mock://t", responses={"one": late}, batch=True)
    result = Fleet([session]).run_many(["one", "two"], progress=False)
    assert [(o.command, o.stdout, o.error_type) for o in result] == [
        ("one", "1\n", ""),
        ("two", "", "CommandTimeout"),
    ]


def test_close_closes_what_the_fleet_made_and_nothing_more() -> None:
    fleet = Fleet(["mock://c1", "mock://c2"], responses={"x": 0})
    fleet.close()  # nothing made yet: nothing to do
    assert trainlab.sessions().empty
    fleet.run("x", progress=False)
    sessions = fleet.sessions()
    fleet.close()
    assert all(s.closed for s in sessions)


def test_ssm_rows_become_outcomes() -> None:
    from trainlab.aws.ssm_executor import SSMExecutor, _ssm_outcome
    from trainlab.fleet.engine import Plan
    from trainlab.fleet.targets import Spec

    plan = Plan(["uptime"], False, False, 60.0, None)
    ssm = [Spec("ssm://i-1", uri="ssm://i-1?region=eu-west-1", options={"poll_interval": 0.1})]
    assert SSMExecutor.takes(ssm, plan)
    assert not SSMExecutor.takes(ssm, Plan(["a", "b"], True, False, 60.0, None))
    assert not SSMExecutor.takes([*ssm, Spec("ssh://h", uri="ssh://h")], plan)
    working = [Spec("ssm://i-2", uri="ssm://i-2", options={"working_directory": "/tmp"})]
    assert not SSMExecutor.takes(working, plan)
    row = {
        "status": "Failed",
        "stdout": "out",
        "stderr": "err",
        "exit_status": 2,
        "truncated": False,
        "command_id": "c-1",
        "error": "",
    }
    failed = _ssm_outcome("ssm://i-1", "uptime", row, 0.5)
    assert (failed.exit_status, failed.stdout, failed.stderr) == (2, "out", "err")
    assert failed.result is not None
    assert failed.result.extra == {"command_id": "c-1"}
    lost = _ssm_outcome("ssm://i-1", "uptime", {**row, "status": "TimedOut", "error": "late"}, 1)
    assert (lost.error_type, lost.error, lost.exit_status) == ("TimedOut", "late", None)
    assert _ssm_outcome("ssm://i-9", "uptime", None, 1).error_type == "Lost"


def test_making_a_fleet_loads_neither_pandas_nor_dask() -> None:
    import subprocess
    import sys

    code = (
        "import sys, trainlab\n"
        "f = trainlab.Fleet(['mock://a', 'mock://b'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'dask', 'distributed'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_what_travels_to_dask_workers_pickles() -> None:
    import pickle

    from trainlab.fleet.engine import Plan

    result = Fleet(["mock://p"], responses={"x": "out\n"}).run("x", progress=False)
    outcome = pickle.loads(pickle.dumps(result[0]))
    assert (outcome.target, outcome.stdout, outcome.exit_status) == ("mock://p", "out\n", 0)
    plan = Plan(["x"], False, False, 5.0, None)
    assert pickle.loads(pickle.dumps(plan)) == plan
    session = trainlab.connect("mock://s", responses={"x": "s\n"})
    label, uri, options = Fleet([session])._specs[0].portable()
    assert (label, uri) == ("mock://s", "mock://s")
    assert options["responses"] == {"x": "s\n"}
    empty = FleetResult([])
    assert list(empty.frame.columns) == list(FLEET_COLUMNS)
    assert empty.all_ok
    assert empty.raise_for_errors() is empty


def test_ssm_query_options_outside_ssm_run_take_the_session_path() -> None:
    from trainlab.aws.ssm_executor import SSMExecutor
    from trainlab.fleet.engine import Plan
    from trainlab.fleet.targets import Spec

    plan = Plan(["pwd"], False, False, 60.0, None)
    uri = "ssm://i-2?working_directory=/srv"
    # ssm_run has no working directory: these targets must go through their sessions.
    assert not SSMExecutor.takes([Spec(uri, uri=uri)], plan)
    assert SSMExecutor.takes(
        [Spec("ssm://i-3?region=eu-west-1", uri="ssm://i-3?region=eu-west-1")], plan
    )


def test_ssm_fan_out_over_regions_keeps_one_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from trainlab.aws import fanout

    given: list[float] = []

    def slow_ssm_run(instances: list[str], command: str, **kwargs: Any) -> pd.DataFrame:
        given.append(kwargs["timeout"])
        time.sleep(kwargs["timeout"])  # every instance runs until SSM's timeout
        rows = [
            {
                "instance_id": i,
                "status": "TimedOut",
                "error": "late",
                "stdout": "",
                "stderr": "",
                "exit_status": None,
                "truncated": False,
                "command_id": "c",
            }
            for i in instances
        ]
        return pd.DataFrame(rows)

    monkeypatch.setattr(fanout, "ssm_run", slow_ssm_run)
    fleet = Fleet(
        ["ssm://i-1?region=eu-west-1", "ssm://i-2?region=us-east-1", "ssm://i-3?region=ap-south-1"]
    )
    started = time.monotonic()
    result = fleet.run("uptime", deadline=0.3, progress=False)
    elapsed = time.monotonic() - started
    assert len(result) == 3
    assert result.targets == fleet.uris
    assert elapsed < 0.3 + 0.25, (elapsed, given)
    assert {o.error_type for o in result} <= {"TimedOut", "Deadline"}


def test_a_password_in_a_target_uri_or_option_shows_nowhere() -> None:
    from trainlab.fleet.targets import Spec

    fleet = Fleet(["ssh://alice:hunter2@web1:22", "mock://a"], password="s3cret", timeout=0.5)
    assert fleet.uris == ["ssh://alice:***@web1:22", "mock://a"]
    shown = [repr(fleet), *map(repr, fleet._specs)]
    result = FleetResult(
        [Outcome(fleet.uris[0], "uptime", error="unreachable", error_type="ConnectError")]
    )
    shown += [repr(result), result._repr_html_(), result.frame.to_string()]
    shown.append(repr(Spec("ssh://h", uri="ssh://h", options={"passphrase": "s3cret"})))
    assert not [text for text in shown if "hunter2" in text or "s3cret" in text]


def test_dask_task_arguments_show_no_secret() -> None:
    pytest.importorskip("distributed")

    class Sent(Exception):
        pass

    class Client:
        """Enough of a dask.distributed.Client to see what a task carries."""

        def __init__(self) -> None:
            self.args: tuple[Any, ...] = ()

        def run_on_scheduler(self, _function: Any) -> Any:
            return ["tcp://127.0.0.1:1"], True

        def submit(self, _function: Any, *args: Any, **_kwargs: Any) -> Any:
            self.args = args
            raise Sent

    client = Client()
    fleet = Fleet(["ssh://alice:hunter2@web1"], passphrase="s3cret")
    with pytest.raises(Sent):
        fleet.run("uptime", executor=client, progress=False)
    # Dask logs a failed task's repr; the worker still gets everything it needs.
    shown = repr(client.args)
    assert "hunter2" not in shown
    assert "s3cret" not in shown
    [(label, uri, options)] = list(client.args[0])
    assert (label, uri, options["passphrase"]) == (
        "ssh://alice:***@web1",
        "ssh://alice:hunter2@web1",
        "s3cret",
    )


def test_the_former_dask_module_path_still_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    from trainlab.fleet import dask_executor

    monkeypatch.delitem(sys.modules, "trainlab._dask", raising=False)
    with pytest.warns(DeprecationWarning, match="trainlab.fleet.dask_executor"):
        former = importlib.import_module("trainlab._dask")
    assert former.SessionPlugin is dask_executor.SessionPlugin  # plugins pickled by that path
    assert former.assign is dask_executor.assign
    assert former.worker_stats is dask_executor.worker_stats


def test_ctrl_c_while_targets_are_still_being_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    submit = ThreadPoolExecutor.submit
    calls = [0]

    def interrupted_submit(self: ThreadPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:  # Ctrl-C lands while the second target is being queued
            raise KeyboardInterrupt
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", interrupted_submit)
    fleet = Fleet(["mock://q1", "mock://q2", "mock://q3"], responses={"x": "ok\n"})
    with pytest.raises(KeyboardInterrupt) as caught:
        fleet.run("x", progress=False)
    partial = caught.value.results  # type: ignore[attr-defined]
    assert partial.targets == fleet.uris
    assert partial.interrupted


def test_the_failure_summary_counts_targets_not_rows() -> None:
    commands = ["a", "b", "c"]
    down = [Outcome("ssh://down", c, error="refused", error_type="ConnectError") for c in commands]
    up = [Outcome("ssh://up", c, trainlab.CommandResult(c, b"", b"", 0)) for c in commands]
    with pytest.raises(FleetError) as caught:
        FleetResult([*down, *up]).raise_for_errors()
    assert "1 of 2 targets failed (1 ConnectError)" in str(caught.value)


def test_a_secret_in_a_target_query_shows_nowhere() -> None:
    fleet = Fleet(["mock://web1?password=hunter2&latency=0", "mock://web2?latency=0"])
    assert fleet.uris == ["mock://web1?password=***&latency=0", "mock://web2?latency=0"]
    result = fleet.run("uptime", progress=False)
    assert "hunter2" not in repr(list(result)) + result.frame.to_string()
