"""EC2 inventories and AWS clients against moto's server on loopback."""

from __future__ import annotations

import socket
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber

import trainlab
from trainlab.aws import INVENTORY_COLUMNS, aws_client, clients, ec2_inventory
from trainlab.aws import inventory as inventory_module
from trainlab.sandbox.aws import FLEET_REGIONS

pytestmark = pytest.mark.aws


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    inventory_module.clear_cache()


def raw_instances(
    endpoint: str, region: str, filters: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
    found = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=filters or []):
        for reservation in page["Reservations"]:
            found += reservation["Instances"]
    return found


def test_inventory_of_every_region(moto_server: Any) -> None:
    inv = ec2_inventory(regions="all", endpoint_url=moto_server.endpoint_url)
    expected = sum(len(ids) for ids in moto_server.fleet.values())
    assert len(inv) >= expected
    seeded = {i for ids in moto_server.fleet.values() for i in ids}
    assert seeded <= set(inv["instance_id"])
    assert list(inv.columns)[: len(INVENTORY_COLUMNS)] == list(INVENTORY_COLUMNS)
    assert {"tag:role", "tag:team", "tag:env", "tag:Name"} <= set(inv.columns)
    assert str(inv["launch_time"].dtype) == "datetime64[ns, UTC]"
    assert (inv["name"] == inv["tag:Name"]).all()
    assert set(inv["region"]) >= set(FLEET_REGIONS)
    assert set(inv["state"]) <= {"running", "stopped", "pending", "stopping"}
    assert "stopped" in set(inv["state"])


def test_filters_match_the_raw_api(moto_server: Any) -> None:
    region = FLEET_REGIONS[0]
    web = ec2_inventory(
        regions=[region], filters={"tag:role": "web"}, endpoint_url=moto_server.endpoint_url
    )
    raw = raw_instances(moto_server.endpoint_url, region, [{"Name": "tag:role", "Values": ["web"]}])
    assert sorted(web["instance_id"]) == sorted(i["InstanceId"] for i in raw)
    assert set(web["tag:role"]) == {"web"}


def test_instance_ids_in_chunks(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_module, "_ID_CHUNK", 7)  # several requests for 30 ids
    region = FLEET_REGIONS[1]
    wanted = moto_server.fleet[region][:30]
    inv = ec2_inventory(regions=region, instance_ids=wanted, endpoint_url=moto_server.endpoint_url)
    assert sorted(inv["instance_id"]) == sorted(wanted)


def test_empty_answer_keeps_the_columns(moto_server: Any) -> None:
    inv = ec2_inventory(
        regions=[FLEET_REGIONS[0]],
        filters={"tag:role": "no-such-role"},
        endpoint_url=moto_server.endpoint_url,
    )
    assert inv.empty
    assert list(inv.columns) == list(INVENTORY_COLUMNS)
    assert str(inv["launch_time"].dtype) == "datetime64[ns, UTC]"


def test_cached_until_refreshed(moto_server: Any) -> None:
    region = FLEET_REGIONS[2]
    first = ec2_inventory(regions=[region], endpoint_url=moto_server.endpoint_url, ttl=600)
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=moto_server.endpoint_url)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    new = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    try:
        cached = ec2_inventory(regions=[region], endpoint_url=moto_server.endpoint_url, ttl=600)
        assert new not in set(cached["instance_id"])
        pd.testing.assert_frame_equal(cached, first)
        cached.loc[0, "name"] = "mutated"  # the caller's copy, not the cache's
        again = ec2_inventory(regions=[region], endpoint_url=moto_server.endpoint_url, ttl=600)
        assert again.loc[0, "name"] != "mutated"
        fresh = ec2_inventory(
            regions=[region], endpoint_url=moto_server.endpoint_url, ttl=600, refresh=True
        )
        assert new in set(fresh["instance_id"])
    finally:
        ec2.terminate_instances(InstanceIds=[new])


def test_clients_are_reused_per_region_and_identity(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = aws_client("ec2", region="eu-west-1", endpoint_url=moto_server.endpoint_url)
    assert aws_client("ec2", region="eu-west-1", endpoint_url=moto_server.endpoint_url) is a
    assert aws_client("ec2", region="us-east-1", endpoint_url=moto_server.endpoint_url) is not a
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOTHERIDENTITY000")
    clients._sessions.clear()
    assert aws_client("ec2", region="eu-west-1", endpoint_url=moto_server.endpoint_url) is not a


def test_aws_endpoint_url_from_the_environment(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    inv = ec2_inventory(regions=[FLEET_REGIONS[0]])
    assert set(moto_server.fleet[FLEET_REGIONS[0]]) <= set(inv["instance_id"])


def test_unknown_region_is_named(moto_server: Any) -> None:
    with pytest.raises(trainlab.TargetError, match=r"unknown AWS region 'eu-west-9'"):
        ec2_inventory(regions=["eu-west-9"], endpoint_url=moto_server.endpoint_url)
    with pytest.raises(trainlab.TargetError, match=r"did you mean 'us-east-1'"):
        ec2_inventory(regions="us-east1", endpoint_url=moto_server.endpoint_url)


def test_missing_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    clients.clear_clients()
    try:
        with pytest.raises(trainlab.ConnectError, match="no AWS credentials"):
            ec2_inventory(regions=["eu-west-1"], endpoint_url="http://127.0.0.1:9")
    finally:
        clients.clear_clients()


def test_unreachable_endpoint(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "DEFAULT_ATTEMPTS", 1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(trainlab.ConnectError, match="cannot reach AWS"):
        ec2_inventory(regions=["eu-west-1"], endpoint_url=f"http://127.0.0.1:{closed}")


def test_unknown_profile(moto_server: Any) -> None:
    with pytest.raises(trainlab.TargetError, match="profile 'nope' is not in"):
        ec2_inventory(regions=["eu-west-1"], profile="nope")


def test_a_failed_region_keeps_the_others(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = inventory_module._fetch_region

    def flaky(region: str, *args: Any) -> Any:
        if region == FLEET_REGIONS[1]:
            raise trainlab.ConnectError("region down")
        return real(region, *args)

    monkeypatch.setattr(inventory_module, "_fetch_region", flaky)
    with pytest.raises(trainlab.FleetError, match="1 of 3 regions failed") as info:
        ec2_inventory(regions=list(FLEET_REGIONS), endpoint_url=moto_server.endpoint_url)
    partial = info.value.results
    assert set(partial["region"]) == {FLEET_REGIONS[0], FLEET_REGIONS[2]}
    with pytest.warns(inventory_module.PartialInventoryWarning, match="region down"):
        kept = ec2_inventory(
            regions=list(FLEET_REGIONS), endpoint_url=moto_server.endpoint_url, errors="warn"
        )
    assert kept.attrs["errors"] == {FLEET_REGIONS[1]: "region down"}


def test_instance_level_paging_with_a_stub(moto_server: Any) -> None:
    # moto pages by reservation; EC2 pages by instance. The stub plays EC2.
    client = aws_client("ec2", region="eu-west-1", endpoint_url="https://ec2.stub.invalid")
    page = [
        {"Instances": [{"InstanceId": f"i-{n:017x}", "State": {"Name": "running"}}]}
        for n in range(3)
    ]
    with Stubber(client) as stub:
        stub.add_response(
            "describe_instances",
            {"Reservations": page[:2], "NextToken": "t1"},
            {"Filters": [], "MaxResults": 5},
        )
        stub.add_response(
            "describe_instances",
            {"Reservations": page[2:]},
            {"Filters": [], "MaxResults": 5, "NextToken": "t1"},
        )
        inv = ec2_inventory(
            regions=["eu-west-1"], endpoint_url="https://ec2.stub.invalid", page_size=5
        )
        stub.assert_no_pending_responses()
    assert list(inv["instance_id"]) == [f"i-{n:017x}" for n in range(3)]


def test_account_session(moto_server: Any) -> None:
    account = trainlab.connect("aws://?region=eu-west-1", endpoint_url=moto_server.endpoint_url)
    inv = account.ec2_inventory(filters={"tag:env": "prod"})
    assert set(inv["region"]) == {"eu-west-1"}
    assert set(inv["tag:env"]) == {"prod"}
    assert account.transport.account == "123456789012"
    assert account.metrics["operation"].tolist() == ["connect", "inventory"]
    with pytest.raises(trainlab.TargetError, match="ssm://"):
        account.run("uptime")
    with pytest.raises(trainlab.TargetError, match="aws:// takes no host"):
        trainlab.connect("aws://i-0123")


def test_bad_arguments(moto_server: Any) -> None:
    with pytest.raises(trainlab.TargetError, match="page_size"):
        ec2_inventory(regions=["eu-west-1"], page_size=2000)
    with pytest.raises(trainlab.TargetError, match="regions is empty"):
        ec2_inventory(regions=[], endpoint_url=moto_server.endpoint_url)
    with pytest.raises(trainlab.TargetError, match="no values"):
        ec2_inventory(regions=["eu-west-1"], filters={"tag:x": []})


@pytest.mark.parametrize(
    ("code", "error", "fragment"),
    [
        ("ExpiredToken", trainlab.ConnectError, "have expired"),
        ("AuthFailure", trainlab.ConnectError, "rejected the credentials"),
        ("RequestLimitExceeded", trainlab.TransportError, "throttled"),
        ("UnauthorizedOperation", clients.AWSError, "AWS refused"),
    ],
)
def test_aws_errors_are_named(
    moto_server: Any, code: str, error: type[Exception], fragment: str
) -> None:
    client = aws_client("ec2", region="us-west-2", endpoint_url="https://ec2.errors.invalid")
    with Stubber(client) as stub:
        stub.add_client_error("describe_instances", service_error_code=code, service_message="nope")
        with pytest.raises(error, match=fragment):
            ec2_inventory(
                regions=["us-west-2"], endpoint_url="https://ec2.errors.invalid", page_size=5
            )


def test_cached_inventory_cells_cannot_be_edited_in_place(moto_server: Any) -> None:
    first = ec2_inventory(regions=[FLEET_REGIONS[0]], endpoint_url=moto_server.endpoint_url)
    groups = first["security_groups"].iloc[0]
    assert isinstance(groups, tuple)
    with pytest.raises(AttributeError):
        groups.append("mutated")  # type: ignore[attr-defined]
