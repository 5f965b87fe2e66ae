"""Fleets over ssm:// targets from an inventory: SSM's own fan-out, one row per instance."""

from __future__ import annotations

from typing import Any

import pytest

from trainlab.aws import ec2_inventory
from trainlab.fleet import Fleet

pytestmark = pytest.mark.aws


def test_an_inventory_fleet_over_ssm_keeps_every_instance(
    moto_server: Any, ssm_target: dict[str, Any]
) -> None:
    inventory = ec2_inventory(
        regions=["eu-west-1"],
        instance_ids=[ssm_target["instance"], ssm_target["unmanaged"]],
        endpoint_url=moto_server.endpoint_url,
        refresh=True,
    )
    fleet = Fleet.from_inventory(
        inventory, via="ssm", endpoint_url=moto_server.endpoint_url, poll_interval=0.05
    )
    result = fleet.run("echo hello; exit 4", progress=False)
    by_target = {o.target.split("?")[0]: o for o in result}
    assert len(result) == 2
    managed = by_target[f"ssm://{ssm_target['instance']}"]
    assert (managed.stdout, managed.exit_status) == ("hello\n", 4)
    assert managed.result is not None
    assert managed.result.extra["command_id"]
    unmanaged = by_target[f"ssm://{ssm_target['unmanaged']}"]
    assert unmanaged.error_type == "Undeliverable"
    assert "not managed" in unmanaged.error

    # A batch goes through each instance's ssm:// session instead (retry_failed: the
    # undeliverable instance is cooling down since the fan-out above).
    batch = fleet.run_many(["echo a", "echo b"], progress=False, retry_failed=True)
    assert [o.stdout for o in batch.ok] == ["a\n", "b\n"]
    assert len(batch.errors) == 2  # both commands of the unmanaged instance
    assert {o.error_type for o in batch.errors} == {"ConnectError"}
    assert "not managed by SSM" in batch.errors[0].error


def test_an_undeliverable_instance_cools_down_and_a_failed_command_does_not(
    moto_server: Any, ssm_target: dict[str, Any]
) -> None:
    """SSM's Undeliverable is its failure to connect: the next fan-out skips the instance."""
    managed, unmanaged = (f"ssm://{ssm_target[key]}" for key in ("instance", "unmanaged"))
    fleet = Fleet([managed, unmanaged], progress=False, **ssm_target["options"])

    first = {o.target: o for o in fleet.run("echo first; exit 4")}
    assert (first[unmanaged].error_type, first[unmanaged].connect_failure) == (
        "Undeliverable",
        "undeliverable",
    )
    assert "not managed by SSM" in first[unmanaged].error
    # The managed instance's command failed (exit 4, SSM's Failed): a row, no cool-down.
    assert (first[managed].stdout, first[managed].exit_status) == ("first\n", 4)
    assert first[managed].connect_failure == ""
    assert list(fleet.cooldown.failing) == [unmanaged]

    second = fleet.run("echo second")
    rows = {o.target: o for o in second}
    skipped = rows[unmanaged]
    assert (skipped.error_type, skipped.connect_failure) == (
        "SkippedRecentlyFailed",
        "undeliverable",
    )
    assert skipped.result is None
    assert skipped.error.startswith("skipped: failed to connect ")
    assert "with Undeliverable: not managed by SSM" in skipped.error
    assert (rows[managed].stdout, rows[managed].exit_status) == ("second\n", 0)
    assert rows[managed].result is not None
    assert rows[managed].result.extra["command_id"]  # it went through SSM
    assert second.frame.set_index("target").loc[unmanaged, "connect_failure"] == "undeliverable"

    third = {o.target: o for o in fleet.run("echo third", retry_failed=True)}
    assert third[unmanaged].error_type == "Undeliverable"  # tried again
    assert third[managed].stdout == "third\n"
    assert list(fleet.cooldown.failing) == [unmanaged]


def test_an_instance_whose_agent_is_gone_is_undeliverable_in_the_fan_out(
    ssm_target: dict[str, Any],
) -> None:
    """SSM lists it and takes the command, then answers Failed/Undeliverable (code -1)."""
    managed, offline = (f"ssm://{ssm_target[key]}" for key in ("instance", "offline"))
    fleet = Fleet([managed, offline], progress=False, **ssm_target["options"])
    rows = {o.target: o for o in fleet.run("echo here")}
    assert rows[managed].stdout == "here\n"
    gone = rows[offline]
    assert (gone.error_type, gone.connect_failure, gone.result) == (
        "Undeliverable",
        "undeliverable",
        None,
    )
    assert "did not take the command" in gone.error
    assert list(fleet.cooldown.failing) == [offline]


def test_an_undeliverable_batch_through_a_session_cools_down(
    ssm_target: dict[str, Any],
) -> None:
    """A batch goes through each instance's session: SSM's Undeliverable there is a
    ConnectError raised by the run, not by the open, and still a failure to connect."""
    managed, offline = (f"ssm://{ssm_target[key]}" for key in ("instance", "offline"))
    fleet = Fleet([managed, offline], progress=False, **ssm_target["options"])
    rows = [o for o in fleet.run_many(["echo a", "echo b"]) if o.target == offline]
    assert {(o.error_type, o.connect_failure) for o in rows} == {("ConnectError", "undeliverable")}
    assert list(fleet.cooldown.failing) == [offline]
    again = [o for o in fleet.run_many(["echo a", "echo b"]) if o.target == offline]
    assert {o.error_type for o in again} == {"SkippedRecentlyFailed"}
