"""Fleets on a real Dask cluster (LocalCluster: a scheduler and two worker processes)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from trainlab.fleet import Fleet
from trainlab.sandbox.sshd import SSHServer

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=40,
        ) as cluster,
        Client(cluster, timeout=60) as dask_client,
    ):
        dask_client.wait_for_workers(2, timeout=60)
        yield dask_client


def test_targets_split_across_workers_and_sessions_kept_on_each(
    client: Any, fleet_sshd: SSHServer, fleet_options: dict[str, object], closed_port: int
) -> None:
    from trainlab.fleet.dask_executor import worker_stats

    good = fleet_sshd.fleet_uris(20)
    closed = f"ssh://{fleet_sshd.user}@127.0.0.1:{closed_port}"
    fleet = Fleet([*good, closed], timeout=10, connect_retries=0, **fleet_options)

    first = fleet.run("hostname", executor=client, progress=False)
    assert first.targets == [*good, closed]
    assert [o.target for o in first.ok] == good
    assert not any(o.reused for o in first)
    assert first.failed[0].error_type == "ConnectError"
    assert first.failed[0].connect_failure == "refused"

    second = fleet.run_many(["hostname", "id -u"], executor=client, progress=False)
    assert len(second) == 2 * 21
    assert all(o.reused for o in second.ok)
    assert len(second.ok) == 40
    # As with threads: the target that failed to connect is skipped, not sent to a worker.
    assert [o.error_type for o in second.failed] == ["SkippedRecentlyFailed"] * 2
    assert "connection refused" in second.failed[0].error

    stats = worker_stats(client)
    assert len(stats) == 2
    assert all(s["fanouts"] == 2 for s in stats.values())  # every worker got targets
    assert sum(s["sessions"] for s in stats.values()) == 20
    assert sum(s["connects"] for s in stats.values()) == 20  # none reopened
    assert sum(s["targets"] for s in stats.values()) == 21 + 20


def test_assignment_is_stable_when_a_worker_joins() -> None:
    from trainlab.fleet.dask_executor import assign

    labels = [f"ssh://web{i}" for i in range(300)]
    before = assign(labels, ["tcp://a:1", "tcp://b:1"])
    after = assign(labels, ["tcp://a:1", "tcp://b:1", "tcp://c:1"])
    where_before = {i: w for w, indexes in before.items() for i in indexes}
    where_after = {i: w for w, indexes in after.items() for i in indexes}
    moved = [i for i in where_before if where_before[i] != where_after[i]]
    assert all(where_after[i] == "tcp://c:1" for i in moved)  # only to the new worker
    assert 50 < len(moved) < 150
    assert assign(labels, ["tcp://b:1", "tcp://a:1"]) == before


def test_the_deadline_holds_on_the_workers(client: Any, fleet_sshd: SSHServer) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        targets = [
            f"ssh://{user}{name}:{port}"
            for user in ("", f"{fleet_sshd.user}@")
            for name in ("127.0.0.1", "localhost")
        ]
        fleet = Fleet(targets, timeout=1.5, deadline=0.3, **fleet_sshd.client_options)
        result = fleet.run("hostname", executor=client, progress=False)
    assert result.targets == targets
    assert {o.error_type for o in result} == {"Deadline"}
