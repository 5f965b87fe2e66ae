"""trainlab.aws.ssm_run: one row per instance, failures included, against moto's server."""

from __future__ import annotations

from typing import Any

import pytest

import trainlab
from trainlab.aws import SSM_RUN_COLUMNS, ec2_inventory, fanout, ssm_run

pytestmark = pytest.mark.aws


def running_inventory(moto_server: Any) -> Any:
    return ec2_inventory(
        regions=["eu-west-1", "us-east-1"],
        filters={"instance-state-name": "running"},
        endpoint_url=moto_server.endpoint_url,
        refresh=True,
    )


def test_fan_out_over_an_inventory_in_chunks(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "CHUNK", 7)
    inv = running_inventory(moto_server)
    # Instances SSM does not manage, or whose agent is gone (when ssm_target made them).
    unreached = (
        inv[inv["tag:ssm"].isin(["unmanaged", "offline"])] if "tag:ssm" in inv else inv.iloc[:0]
    )
    result = ssm_run(
        inv, "echo hello; echo warn >&2", endpoint_url=moto_server.endpoint_url, poll_interval=0.05
    )
    assert list(result.columns) == list(SSM_RUN_COLUMNS)
    assert sorted(result["instance_id"]) == sorted(inv["instance_id"])  # nothing lost
    ok = result[result["status"] == "Success"]
    assert len(ok) == len(inv) - len(unreached)
    lost = result[result["instance_id"].isin(unreached["instance_id"])]
    assert set(lost["status"]) <= {"Undeliverable"}
    assert set(ok["stdout"]) == {"hello\n"}
    assert set(ok["exit_status"]) == {0}
    assert ok["command_id"].nunique() > 2  # several SendCommand chunks
    assert set(result["region"]) == {"eu-west-1", "us-east-1"}


def test_unreachable_and_failing_instances_are_rows(
    moto_server: Any, ssm_target: dict[str, Any]
) -> None:
    targets = [ssm_target["instance"], ssm_target["unmanaged"], "i-0000000000000dead"]
    result = ssm_run(
        targets,
        "exit 3",
        region="eu-west-1",
        endpoint_url=moto_server.endpoint_url,
        poll_interval=0.05,
    ).set_index("instance_id")
    assert result.loc[ssm_target["instance"], "status"] == "Failed"
    assert result.loc[ssm_target["instance"], "exit_status"] == 3
    for lost in targets[1:]:
        assert result.loc[lost, "status"] == "Undeliverable"
        assert "not managed by SSM" in result.loc[lost, "error"]


def test_tag_targets(moto_server: Any) -> None:
    inv = running_inventory(moto_server)
    web = inv[(inv["region"] == "eu-west-1") & (inv["tag:role"] == "web")]
    result = ssm_run(
        {"tag:role": "web"},
        "echo web",
        region="eu-west-1",
        endpoint_url=moto_server.endpoint_url,
        poll_interval=0.05,
    )
    assert set(web["instance_id"]) <= set(result["instance_id"])
    assert set(result.loc[result["instance_id"].isin(web["instance_id"]), "stdout"]) == {"web\n"}


def test_long_output_is_fetched_whole(moto_server: Any, ssm_target: dict[str, Any]) -> None:
    result = ssm_run(
        [ssm_target["instance"]],
        "head -c 5000 /dev/zero | tr '\\0' y",
        region="eu-west-1",
        endpoint_url=moto_server.endpoint_url,
        poll_interval=0.05,
    )
    assert len(result.loc[0, "stdout"]) == 5000
    assert not result.loc[0, "truncated"]


def test_deadline_cancels_and_reports(moto_server: Any, ssm_target: dict[str, Any]) -> None:
    result = ssm_run(
        [ssm_target["instance"]],
        "sleep 30",
        region="eu-west-1",
        timeout=1,
        endpoint_url=moto_server.endpoint_url,
        poll_interval=0.05,
    )
    assert result.loc[0, "status"] == "TimedOut"
    assert "deadline" in result.loc[0, "error"]


def test_bad_arguments(moto_server: Any) -> None:
    with pytest.raises(trainlab.TargetError, match="one command"):
        ssm_run(["i-1"], "", region="eu-west-1")
    with pytest.raises(trainlab.TargetError, match="no targets"):
        ssm_run([], "true", region="eu-west-1")


def test_tag_targets_matching_nothing_are_a_row(moto_server: Any) -> None:
    result = ssm_run(
        {"tag:role": "no-such-role"},
        "true",
        region="eu-west-1",
        timeout=30,
        endpoint_url=moto_server.endpoint_url,
        poll_interval=0.05,
    )
    assert result["status"].tolist() == ["NoTargets"]
    assert "matched" in result.loc[0, "error"]


def test_stderr_and_duplicates(moto_server: Any, ssm_target: dict[str, Any]) -> None:
    import pandas as pd

    inv = pd.DataFrame({"instance_id": [ssm_target["instance"]] * 3, "region": ["eu-west-1"] * 3})
    result = ssm_run(
        inv,
        "echo out; echo err >&2; exit 4",
        endpoint_url=moto_server.endpoint_url,
        poll_interval=0.05,
    )
    assert len(result) == 1
    assert (result.loc[0, "stdout"], result.loc[0, "stderr"]) == ("out\n", "err\n")
    assert result.loc[0, "exit_status"] == 4


def test_ssm_region_typo(ssm_target: dict[str, Any]) -> None:
    with pytest.raises(trainlab.TargetError, match="did you mean 'eu-west-1'"):
        trainlab.connect(f"ssm://{ssm_target['instance']}?region=eu-wset-1")
