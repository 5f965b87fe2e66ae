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

    # A batch goes through each instance's ssm:// session instead.
    batch = fleet.run_many(["echo a", "echo b"], progress=False)
    assert [o.stdout for o in batch.ok] == ["a\n", "b\n"]
    assert len(batch.errors) == 2  # both commands of the unmanaged instance
    assert {o.error_type for o in batch.errors} == {"ConnectError"}
    assert "not managed by SSM" in batch.errors[0].error
