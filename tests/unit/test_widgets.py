"""Widgets: built, driven through their controls, and read back as a user would."""

from __future__ import annotations

import time

import pandas as pd
import pytest

import trainlab
from trainlab.widgets import ANY, Dashboard, InventoryExplorer, filter_inventory


@pytest.fixture(autouse=True)
def _no_sessions_left() -> None:
    trainlab.close_all()
    yield
    trainlab.close_all()


def test_dashboard_shows_sessions_hit_rates_and_operations() -> None:
    board = Dashboard()
    assert "0</b> live sessions" in board.header.value
    assert "no operations yet" in board.operations_view.value
    took = trainlab.CommandResult("uptime", b"up", b"", 0, duration=0.5)
    s = trainlab.connect("mock://web1", responses={"uptime": took, "hostname": "web1\n"})
    s.run("uptime", ttl=60)
    s.run("uptime", ttl=60)  # a hit
    s.run("hostname")
    board.button.click()  # as the user does
    assert "<b>1</b> live session &middot;" in board.header.value  # one: singular
    assert "1</b> hit in 2 lookups (<b>50%</b>)" in board.header.value
    other = trainlab.connect("mock://web2", responses={"x": "1"})
    other.run("x")  # no ttl: no lookup, so it does not dilute the hit rate
    board.refresh()
    assert "<b>2</b> live sessions" in board.header.value
    assert "1</b> hit in 2 lookups (<b>50%</b>)" in board.header.value
    other.close()
    assert "0.500 s</b> saved" in board.header.value
    assert "mock://web1" in board.sessions_view.value
    ops = board.operations
    assert ops["command"].tolist()[:3] == ["hostname", "uptime", "uptime"]  # newest first
    assert "hostname" in board.operations_view.value
    s.close()
    board.refresh()
    assert "0</b> live sessions" in board.header.value


def test_dashboard_never_shows_a_secret() -> None:
    secret = "hunter2-dashboard"
    s = trainlab.connect("mock://db1", responses={"id": "0"}, password=secret)
    s.run("id")
    board = Dashboard()
    text = board.header.value + board.sessions_view.value + board.operations_view.value
    assert "mock://db1" in text
    assert secret not in text


def test_dashboard_auto_refresh_is_bounded_and_stops() -> None:
    board = Dashboard()
    board.auto_refresh(every=0.01, duration=0.05)
    s = trainlab.connect("mock://late", responses={"x": "1"})
    s.run("x")
    deadline = time.monotonic() + 5
    while "mock://late" not in board.sessions_view.value and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "mock://late" in board.sessions_view.value
    board.stop()
    assert board._thread is None
    with pytest.raises(trainlab.TargetError, match="> 0"):
        board.auto_refresh(every=0)


def _inventory() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": ["eu-west-1", "eu-west-1", "us-east-1", "us-east-1"],
            "instance_id": ["i-1", "i-2", "i-3", "i-4"],
            "name": ["web-a", "db-a", "web-b", "cache-b"],
            "state": ["running", "stopped", "running", "running"],
            "tag:role": ["web", "db", "web", None],
            "tag:env": ["prod", "prod", "dev", "dev"],
        }
    )


def test_filter_inventory_combines_criteria() -> None:
    inv = _inventory()
    assert filter_inventory(inv)["instance_id"].tolist() == ["i-1", "i-2", "i-3", "i-4"]
    assert filter_inventory(inv, regions=["us-east-1"], states=["running"])[
        "instance_id"
    ].tolist() == ["i-3", "i-4"]
    assert filter_inventory(inv, tag="tag:role", value=ANY)["instance_id"].tolist() == [
        "i-1",
        "i-2",
        "i-3",
    ]
    assert filter_inventory(inv, tag="env", value="dev", text="CACHE")["instance_id"].tolist() == [
        "i-4"
    ]
    with pytest.raises(trainlab.TargetError, match="tags: role, env"):
        filter_inventory(inv, tag="team", value="x")


def test_inventory_explorer_filters_through_its_controls() -> None:
    explorer = InventoryExplorer(_inventory())
    assert "<b>4</b> of 4" in explorer.count.value
    explorer.regions.value = ("eu-west-1",)
    assert explorer.filtered["instance_id"].tolist() == ["i-1", "i-2"]
    explorer.tag.value = "role"
    assert list(explorer.value.options) == [ANY, "db", "web"]  # values of the chosen tag
    explorer.value.value = "web"
    assert explorer.filtered["instance_id"].tolist() == ["i-1"]
    assert "<b>1</b> of 4" in explorer.count.value
    assert "web-a" in explorer.table.value
    assert "db-a" not in explorer.table.value
    explorer.states.value = ("stopped",)
    assert "no instance matches" in explorer.table.value
    explorer.tag.value = ANY  # resets the value list
    assert list(explorer.value.options) == [ANY]
    assert explorer.filtered["instance_id"].tolist() == ["i-2"]


def test_inventory_explorer_names_a_missing_column() -> None:
    with pytest.raises(trainlab.TargetError, match="'state' column"):
        InventoryExplorer(pd.DataFrame({"instance_id": ["i-1"], "region": ["r"]}))


def test_run_many_progress_counts_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int | None, int]] = []

    class Bar:
        def __init__(self, total: int | None, **_: object) -> None:
            self.total, self.n = total, 0

        def update(self, n: int = 1) -> None:
            self.n += n

        def close(self) -> None:
            seen.append((self.total, self.n))

    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    one_by_one = trainlab.connect("mock://p", responses={"a": "1", "b": "2"}, batch=False)
    one_by_one.run("a", ttl=60)
    one_by_one.run_many(["a", "b", "b"], progress=True, ttl=60)
    one_by_one.run_many(["a"], progress=False)
    assert seen == [(3, 3)]


def test_dashboard_says_a_failed_command_failed() -> None:
    s = trainlab.connect("mock://exit1", responses={"false": 1, "true": 0})
    s.run("false")
    s.run("true")
    board = Dashboard()
    ops = board.operations
    rows = ops[ops["operation"] == "run"].set_index("command")
    assert (rows.loc["false", "ok"], rows.loc["false", "exit_status"]) == (False, 1)
    assert (rows.loc["true", "ok"], rows.loc["true", "exit_status"]) == (True, 0)
    table = board.operations_view.value
    header = table[table.index("<thead>") : table.index("</thead>")]
    assert [h for h in ("exit_status", "ok", "duration_ms") if f"<th>{h}</th>" in header] == [
        "exit_status",
        "ok",
        "duration_ms",
    ]
    assert "<td>false</td>" in table


def test_widget_tables_are_styled_unwrapped_and_scroll_sideways() -> None:
    s = trainlab.connect("mock://styled", responses={"x": "1"})
    board = Dashboard()  # before first use: the session says what will happen
    page = board.sessions_view.value
    assert "<style>" in page
    assert 'class="trainlab-table"' in page
    assert "white-space: nowrap" in page
    assert "overflow-x: auto" in page
    assert "not open yet: opens on first use" in page
    assert "<td>not yet</td>" in page  # opened
    s.run("x")
    board.refresh()
    assert "<td>alive</td>" in board.sessions_view.value


def test_explorer_shows_the_picked_columns() -> None:
    inv = _inventory().assign(
        instance_type="t3.micro", private_ip="10.0.0.1", launch_time=pd.Timestamp(0, tz="UTC")
    )
    explorer = InventoryExplorer(inv)
    defaults = ("instance_id", "name", "state", "instance_type", "region", "private_ip")
    assert explorer.columns.value == tuple(
        c for c in inv.columns if c in (*defaults, "launch_time")
    )
    header = explorer.table.value.split("</thead>")[0]
    assert "<th>tag:role</th>" not in header  # not a default column
    assert "<th>private_ip</th>" in header
    assert "4 columns" not in explorer.count.value
    explorer.columns.value = ("instance_id", "tag:role")
    header = explorer.table.value.split("</thead>")[0]
    assert header.count("<th>") == 2
    assert "<th>tag:role</th>" in header
    assert "2 of 9 columns" in explorer.count.value
    assert list(explorer.filtered.columns) == list(inv.columns)  # the data keep every column
    narrow = InventoryExplorer(inv, shown=["region", "instance_id"])
    assert narrow.columns.value == ("region", "instance_id")
    with pytest.raises(trainlab.TargetError, match="no column 'owner'"):
        InventoryExplorer(inv, shown=["owner"])
