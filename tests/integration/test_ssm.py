"""ssm:// against moto's server, whose SSM runs each command for real (sandbox.ssm_agent)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest

import trainlab
from tests.integration.test_local import reaped, wait_gone

pytestmark = pytest.mark.aws


def connect(ssm_target: dict[str, Any], **extra: Any) -> trainlab.Session:
    return trainlab.connect(
        f"ssm://{ssm_target['instance']}", reuse=False, **{**ssm_target["options"], **extra}
    )


def test_output_past_the_limit_is_flagged_or_read_from_s3(ssm_target: dict[str, Any]) -> None:
    command = "head -c 30000 /dev/zero | tr '\\0' x"
    cut = connect(ssm_target).run(command)
    assert cut.truncated
    assert len(cut.stdout) == 24_000
    assert "truncated" in repr(cut)
    whole = connect(ssm_target, output_s3_bucket=ssm_target["bucket"]).run(command)
    assert not whole.truncated
    assert len(whole.stdout_bytes) == 30_000


def test_a_batch_past_the_limit_needs_s3(ssm_target: dict[str, Any]) -> None:
    commands = ["head -c 25000 /dev/zero | tr '\\0' x", "echo second"]
    with pytest.raises(trainlab.TransportError, match="output_s3_bucket="):
        connect(ssm_target).run_many(commands)
    batch = connect(ssm_target, output_s3_bucket=ssm_target["bucket"]).run_many(commands)
    assert len(batch[0].stdout) == 25_000
    assert batch[1].stdout == "second\n"


def test_invocation_is_missing_right_after_the_send(
    ssm_target: dict[str, Any], moto_server: Any
) -> None:
    ssm = boto3.client("ssm", region_name="eu-west-1", endpoint_url=moto_server.endpoint_url)
    command = ssm.send_command(
        InstanceIds=[ssm_target["instance"]],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["true"]},
    )["Command"]["CommandId"]
    with pytest.raises(ssm.exceptions.InvocationDoesNotExist):
        ssm.get_command_invocation(CommandId=command, InstanceId=ssm_target["instance"])
    # ... which the transport's waiter rides out on every command:
    assert connect(ssm_target).run("echo fine").stdout == "fine\n"


def test_timeout_cancels_the_command(ssm_target: dict[str, Any], tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    session = connect(ssm_target)
    with pytest.raises(trainlab.CommandTimeout, match="told to cancel"):
        session.run(f"echo $$ > {pid_file}; exec sleep 300", timeout=1)
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    with reaped([pid]):
        assert wait_gone(pid)
    assert session.run("echo next").stdout == "next\n"


def test_instances_ssm_cannot_reach(ssm_target: dict[str, Any]) -> None:
    options = ssm_target["options"]
    with pytest.raises(trainlab.ConnectError, match="is not managed by SSM"):
        trainlab.connect(f"ssm://{ssm_target['unmanaged']}", reuse=False, **options).run("true")
    with pytest.raises(trainlab.ConnectError, match="does not exist"):
        trainlab.connect("ssm://i-0000000000000dead", reuse=False, **options).run("true")
    with pytest.raises(trainlab.TargetError, match="takes an instance id"):
        trainlab.connect("ssm://web1", **options)


def test_platform_from_instance_information(ssm_target: dict[str, Any]) -> None:
    platform = connect(ssm_target).platform
    assert (platform.name, platform.release, platform.kernel) == ("amzn", "2023", "Linux")
    assert platform.is_a("redhat")


def test_an_undeliverable_command_is_a_connect_error(ssm_target: dict[str, Any]) -> None:
    """SSM lists the instance, but its agent is gone: the invocation ends Undeliverable.

    SSM answers ``Failed`` with ``ResponseCode`` -1 and ``StatusDetails``
    ``Undeliverable``; that is no exit status of the command, which never ran.
    """
    session = connect(ssm_target | {"instance": ssm_target["offline"]})
    # Well within the deadline: the wait ends when SSM gives up on the delivery.
    with pytest.raises(
        trainlab.ConnectError, match=r"did not take the command \(Undeliverable\)"
    ) as error:
        session.run("echo never", timeout=600)
    message = str(error.value)
    assert "already listed its agent as ConnectionLost, last ping " in message
    assert "describe-instance-information" in message
    assert "AmazonSSMManagedInstanceCore" in message
    with pytest.raises(trainlab.ConnectError, match="Undeliverable"):
        session.run_many(["echo a", "echo b"], timeout=600)
