"""Make moto's SSM run commands for real, as the SSM agent would on each instance.

moto answers every ``SendCommand`` at once with ``Success`` and empty output, and
lacks ``ListCommandInvocations``, ``DescribeInstanceInformation`` and
``CancelCommand``. ``install()`` patches moto (in this process, so the threaded
moto server uses it): each invocation goes Pending, then InProgress, then runs
the document's ``commands`` with bash on this machine and ends Success or Failed
with the real exit code and output, cut to SSM's 24,000 (stdout) and 8,000
(stderr) characters, the full output written to S3 when the command names a
bucket. Instances tagged ``ssm=unmanaged`` (or not running) are not managed.
Instances tagged ``ssm=offline`` are registered but their agent is gone: SSM lists
them with ``PingStatus`` ``ConnectionLost``, accepts commands for them, and ends
each invocation ``Failed`` with ``StatusDetails`` ``Undeliverable`` and
``ResponseCode`` -1, as SSM answers for an agent that stopped polling.

It proves the transport's protocol handling (polling, waiters, truncation, S3,
timeouts, cancellation), not an SSM agent's semantics.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from trainlab.aws.clients import SSM_DETAIL_OUTPUT_LIMIT, SSM_STDERR_LIMIT, SSM_STDOUT_LIMIT

__all__ = ["install"]

PENDING_SECONDS = 0.05  # how long an invocation stays invisible, then Pending
OFFLINE_SINCE = 3600.0  # an offline agent's last ping, this many seconds ago

_installed = False
_lock = threading.Lock()
_processes: dict[tuple[str, str], subprocess.Popen[bytes]] = {}


def install() -> None:
    """Patch moto's SSM backend and responses (idempotent)."""
    global _installed  # noqa: PLW0603 - patch once per process
    with _lock:
        if _installed:
            return
        _patch()
        _installed = True


def _managed(backend: Any, instance_id: str) -> dict[str, Any] | None:
    """The EC2 instance behind ``instance_id`` if the "agent" would know it."""
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[backend.account_id][backend.region_name]
    for reservation in ec2.all_reservations():
        for instance in reservation.instances:
            if instance.id != instance_id:
                continue
            tags = {
                tag["key"]: tag["value"]
                for tag in ec2.describe_tags(filters={"resource-id": [instance.id]})
            }
            if tags.get("ssm") == "unmanaged" or instance.state != "running":
                return None
            offline = tags.get("ssm") == "offline"
            return {
                "InstanceId": instance.id,
                "PingStatus": "ConnectionLost" if offline else "Online",
                "LastPingDateTime": datetime.now(UTC) - timedelta(seconds=OFFLINE_SINCE * offline),
                "AgentVersion": "3.3.0.0",
                "IsLatestVersion": True,
                "PlatformType": "Windows" if tags.get("os") == "windows" else "Linux",
                "PlatformName": "Windows Server" if tags.get("os") == "windows" else "Amazon Linux",
                "PlatformVersion": "2022" if tags.get("os") == "windows" else "2023",
                "ResourceType": "EC2Instance",
                "IPAddress": instance.private_ip,
                "ComputerName": f"{instance.id}.internal",
            }
    return None


def _patch() -> None:
    from moto.core.common_models import BaseModel  # noqa: F401 - moto loaded
    from moto.ssm import models, responses
    from moto.ssm.exceptions import SSMException as RESTError

    backend_class = models.SimpleSystemManagerBackend
    response_class = responses.SimpleSystemManagerResponse
    original_send = backend_class.send_command

    def send_command(self: Any, **kwargs: Any) -> Any:
        instance_ids = list(kwargs.get("instance_ids") or [])
        for instance_id in instance_ids:
            if _managed(self, instance_id) is None:
                raise RESTError(
                    "InvalidInstanceId",
                    f"Instances [[{instance_id}]] not in a valid state for account",
                )
        command = original_send(self, **kwargs)
        # moto adds every instance of the region when no Targets are given, and does
        # not skip unmanaged ones for tag targets; SSM does neither.
        if kwargs.get("targets"):
            chosen = [i for i in command.instance_ids if _managed(self, i) is not None]
        else:
            chosen = list(dict.fromkeys(instance_ids))
        command.instance_ids = chosen
        command.invocations = [i for i in command.invocations if i["InstanceId"] in set(chosen)]
        command.target_count = len(chosen)
        command.status = "InProgress" if chosen else "Success"
        command.completed_count = 0
        parameters = kwargs.get("parameters") or {}
        script = "\n".join(parameters.get("commands", []))
        timeout = int((parameters.get("executionTimeout") or ["3600"])[0])
        visible_after = time.monotonic() + PENDING_SECONDS
        command.trainlab_visible_after = visible_after  # type: ignore[attr-defined]
        for invocation in command.invocations:
            invocation.update(
                {
                    "Status": "Pending",
                    "StatusDetails": "Pending",
                    "ResponseCode": -1,
                    "ExecutionStartDateTime": "",
                    "ExecutionEndDateTime": "",
                }
            )
            info = _managed(self, invocation["InstanceId"])
            online = info is not None and info["PingStatus"] == "Online"
            thread = threading.Thread(
                target=_run if online else _undeliverable,
                args=(self, command, invocation, script, timeout),
                daemon=True,
            )
            thread.start()
        return command

    def get_invocation(self: Any, instance_id: str, plugin_name: str | None) -> Any:
        if time.monotonic() < getattr(self, "trainlab_visible_after", 0):
            # As on AWS right after SendCommand (boto3 #2701).
            raise RESTError(
                "InvocationDoesNotExist",
                "An error occurred (InvocationDoesNotExist) when calling the "
                "GetCommandInvocation operation",
            )
        return original_get_invocation(self, instance_id, plugin_name)

    original_get_invocation = models.Command.get_invocation

    def list_command_invocations_backend(
        self: Any, command_id: str | None, instance_id: str | None
    ) -> list[Any]:
        found = []
        for command in self._commands:
            if command_id and command.command_id != command_id:
                continue
            for invocation in command.invocations:
                if instance_id and invocation["InstanceId"] != instance_id:
                    continue
                found.append((command, invocation))
        return found

    def list_command_invocations(self: Any) -> Any:
        from moto.core.responses import ActionResult

        command_id = self._get_param("CommandId")
        instance_id = self._get_param("InstanceId")
        details = self._get_param("Details", False)
        rows = []
        for command, invocation in self.ssm_backend.trainlab_invocations(command_id, instance_id):
            row = {
                "CommandId": command.command_id,
                "InstanceId": invocation["InstanceId"],
                "InstanceName": invocation["InstanceId"],
                "DocumentName": command.document_name,
                "RequestedDateTime": command.requested_date_time,
                "Status": invocation["Status"],
                "StatusDetails": invocation["StatusDetails"],
                "StandardOutputUrl": invocation.get("StandardOutputUrl", ""),
                "StandardErrorUrl": invocation.get("StandardErrorUrl", ""),
            }
            if details:
                row["CommandPlugins"] = [
                    {
                        "Name": invocation["PluginName"],
                        "Status": invocation["Status"],
                        "StatusDetails": invocation["StatusDetails"],
                        "ResponseCode": invocation["ResponseCode"],
                        "Output": invocation["StandardOutputContent"][:SSM_DETAIL_OUTPUT_LIMIT],
                        "StandardOutputUrl": invocation.get("StandardOutputUrl", ""),
                        "StandardErrorUrl": invocation.get("StandardErrorUrl", ""),
                    }
                ]
            rows.append(row)
        return ActionResult({"CommandInvocations": rows})

    def describe_instance_information(self: Any) -> Any:
        from moto.core.responses import ActionResult
        from moto.ec2.models import ec2_backends

        backend = self.ssm_backend
        wanted: set[str] | None = None
        for item in self._get_param("Filters", []) or []:
            if item.get("Key") in ("InstanceIds", "InstanceId"):
                wanted = set(item.get("Values", []))
        for item in self._get_param("InstanceInformationFilterList", []) or []:
            if item.get("key") == "InstanceIds":
                wanted = set(item.get("valueSet", []))
        ec2 = ec2_backends[backend.account_id][backend.region_name]
        rows = []
        for reservation in ec2.all_reservations():
            for instance in reservation.instances:
                if wanted is not None and instance.id not in wanted:
                    continue
                info = _managed(backend, instance.id)
                if info is not None:
                    rows.append(info)
        return ActionResult({"InstanceInformationList": rows})

    def cancel_command(self: Any) -> Any:
        from moto.core.responses import ActionResult

        command_id = self._get_param("CommandId")
        command = self.ssm_backend.get_command_by_id(command_id)
        for invocation in command.invocations:
            if invocation["Status"] in ("Pending", "InProgress"):
                invocation["Status"] = invocation["StatusDetails"] = "Cancelled"
                process = _processes.get((command_id, invocation["InstanceId"]))
                if process is not None and process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
        command.status = "Cancelled"
        return ActionResult({})

    backend_class.send_command = send_command  # type: ignore[method-assign, assignment]
    backend_class.trainlab_invocations = list_command_invocations_backend  # type: ignore[attr-defined]
    models.Command.get_invocation = get_invocation  # type: ignore[method-assign]
    response_class.list_command_invocations = list_command_invocations  # type: ignore[attr-defined]
    response_class.describe_instance_information = describe_instance_information  # type: ignore[attr-defined]
    response_class.cancel_command = cancel_command  # type: ignore[attr-defined]


def _run(backend: Any, command: Any, invocation: dict[str, Any], script: str, timeout: int) -> None:
    time.sleep(PENDING_SECONDS)
    if invocation["Status"] == "Cancelled":
        return
    started = datetime.now(UTC)
    invocation.update(
        {
            "Status": "InProgress",
            "StatusDetails": "InProgress",
            "ExecutionStartDateTime": started.isoformat(),
        }
    )
    key = (command.command_id, invocation["InstanceId"])
    process = subprocess.Popen(
        ["bash", "-c", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _processes[key] = process
    try:
        out, err = process.communicate(timeout=timeout)
        status = "Success" if process.returncode == 0 else "Failed"
        code = process.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        status, code = "TimedOut", -1
    finally:
        _processes.pop(key, None)
    if invocation["Status"] == "Cancelled":
        return
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    if command.output_s3_bucket_name:
        _to_s3(backend, command, invocation["InstanceId"], out, err)
        prefix = f"https://s3.{backend.region_name}.amazonaws.com/{command.output_s3_bucket_name}"
        base = _s3_prefix(command, invocation["InstanceId"])
        invocation["StandardOutputUrl"] = f"{prefix}/{base}/stdout"
        invocation["StandardErrorUrl"] = f"{prefix}/{base}/stderr"
    invocation.update(
        {
            "Status": status,
            "StatusDetails": status,
            "ResponseCode": code,
            "StandardOutputContent": stdout[:SSM_STDOUT_LIMIT],
            "StandardErrorContent": stderr[:SSM_STDERR_LIMIT],
            "ExecutionEndDateTime": datetime.now(UTC).isoformat(),
        }
    )
    _finish(command)


def _finish(command: Any) -> None:
    finished = [i for i in command.invocations if i["Status"] not in ("Pending", "InProgress")]
    command.completed_count = len(finished)
    if len(finished) == len(command.invocations):
        command.status = "Success" if all(i["Status"] == "Success" for i in finished) else "Failed"


def _undeliverable(
    backend: Any, command: Any, invocation: dict[str, Any], script: str, timeout: int
) -> None:
    """No agent takes the command: it ends as SSM reports an undelivered invocation."""
    time.sleep(PENDING_SECONDS)
    if invocation["Status"] == "Cancelled":
        return
    invocation.update({"Status": "Failed", "StatusDetails": "Undeliverable", "ResponseCode": -1})
    _finish(command)


def _s3_prefix(command: Any, instance_id: str) -> str:
    parts = [command.output_s3_key_prefix.strip("/")] if command.output_s3_key_prefix else []
    parts += [command.command_id, instance_id, "awsrunShellScript", "0.awsrunShellScript"]
    return "/".join(parts)


def _to_s3(backend: Any, command: Any, instance_id: str, out: bytes, err: bytes) -> None:
    from moto.s3.models import s3_backends

    s3 = s3_backends[backend.account_id]["aws"]
    base = _s3_prefix(command, instance_id)
    s3.put_object(command.output_s3_bucket_name, f"{base}/stdout", out)
    if err:
        s3.put_object(command.output_s3_bucket_name, f"{base}/stderr", err)
