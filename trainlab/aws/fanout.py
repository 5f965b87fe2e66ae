"""One command on many instances through SSM: a DataFrame with one row per instance.

Instances are sent in chunks of 50 (SSM's limit per ``SendCommand``) or as tag
targets, with ``MaxConcurrency`` and ``MaxErrors``; results come from
``ListCommandInvocations`` (with details) and, where that output is cut, from
``GetCommandInvocation``. Instances SSM cannot reach, that fail, or that run past
the deadline are rows too: nothing is lost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from trainlab.aws.clients import SSM_STDOUT_LIMIT, aws_client, map_aws_errors, session
from trainlab.errors import TargetError, TrainlabError
from trainlab.progress import failures, progress_bar

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SSM_RUN_COLUMNS", "ssm_run"]

CHUNK = 50  # instance ids per SendCommand
#: The columns of ``ssm_run``'s answer, one row per instance, in this order.
SSM_RUN_COLUMNS = (
    "region",
    "instance_id",
    "command_id",
    "status",
    "exit_status",
    "stdout",
    "stderr",
    "truncated",
    "error",
)
_STATUS_ERRORS = {
    "Undeliverable": "SSM's agent on it did not take the command (Undeliverable): is it "
    "running, registered with SSM with its agent Online, its IAM role allowing SSM?",
}
_TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "Undeliverable", "Terminated"}


def ssm_run(
    targets: Any,
    command: str,
    *,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    timeout: float = 600,
    max_concurrency: str = "50",
    max_errors: str = "100%",
    poll_interval: float = 1.0,
    output_s3_bucket: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Run ``command`` on many instances through SSM; one row per instance.

    Parameters
    ----------
    targets
        An inventory DataFrame (its ``instance_id`` and ``region`` columns), a list
        of instance ids (in ``region``), or tag targets such as
        ``{"tag:role": "web"}`` (in ``region``).
    timeout
        The whole fan-out's deadline; instances still running then are cancelled
        and reported ``TimedOut``.
    max_concurrency, max_errors
        Passed to SSM (``"50"``, ``"10%"``).
    """
    if not isinstance(command, str) or not command.strip():
        raise TargetError("give ssm_run one command line")
    plan = _plan(targets, region, profile)
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    counted = [w for wanted in plan.values() for w in wanted if not isinstance(w, Mapping)]
    bar = progress_bar(
        progress, total=len(counted) or None, desc=f"ssm_run {command[:30]}", unit="instance"
    )
    outcome = ""
    try:
        for where, wanted in plan.items():
            rows += _run_region(
                where,
                wanted,
                command,
                profile=profile,
                endpoint_url=endpoint_url,
                deadline=deadline,
                max_concurrency=max_concurrency,
                max_errors=max_errors,
                poll_interval=poll_interval,
                output_s3_bucket=output_s3_bucket,
                bar=bar,
            )
        outcome = failures(row["status"] == "Success" for row in rows)
    finally:
        bar.close(outcome)
    return _frame(rows)


def _plan(targets: Any, region: str | None, profile: str | None) -> dict[str, Any]:
    """region -> list of instance ids, or -> a tag-target list."""
    default = region or session(profile).region_name
    if hasattr(targets, "columns"):  # an inventory DataFrame
        if "instance_id" not in targets.columns:
            raise TargetError("an inventory for ssm_run needs an instance_id column")
        plan: dict[str, Any] = {}
        for _, row in targets.iterrows():
            where = row["region"] if "region" in targets.columns else default
            if not where:
                raise TargetError("no region for some instances: add a region column or region=")
            ids = plan.setdefault(str(where), [])
            if str(row["instance_id"]) not in ids:
                ids.append(str(row["instance_id"]))
        return plan
    if not default:
        raise TargetError("ssm_run needs region= (or AWS_DEFAULT_REGION)")
    if isinstance(targets, Mapping):
        tag_targets = []
        for key, values in targets.items():
            listed = [values] if isinstance(values, str) else [str(v) for v in values]
            tag_targets.append({"Key": str(key), "Values": listed})
        return {default: tag_targets}
    if isinstance(targets, str):
        targets = [targets]
    ids = [str(t) for t in targets] if isinstance(targets, Iterable) else []
    if not ids:
        raise TargetError("no targets: give instance ids, tag targets or an inventory")
    return {default: list(dict.fromkeys(ids))}


def _run_region(
    region: str,
    wanted: Sequence[Any],
    command: str,
    *,
    profile: str | None,
    endpoint_url: str | None,
    deadline: float,
    max_concurrency: str,
    max_errors: str,
    poll_interval: float,
    output_s3_bucket: str | None,
    bar: Any,
) -> list[dict[str, Any]]:
    ssm = aws_client("ssm", region=region, profile=profile, endpoint_url=endpoint_url)
    rows: list[dict[str, Any]] = []
    sends: list[dict[str, Any]] = []
    if wanted and isinstance(wanted[0], dict):
        sends.append({"Targets": list(wanted)})
    else:
        managed = _managed(ssm, list(wanted), region)
        for instance in wanted:
            if instance not in managed:
                rows.append(
                    _row(
                        region,
                        instance,
                        status="Undeliverable",
                        error=("not managed by SSM (stopped, no agent, or no instance profile)"),
                    )
                )
                bar.update(1)
        ready = [i for i in wanted if i in managed]
        for start in range(0, len(ready), CHUNK):
            sends.append({"InstanceIds": ready[start : start + CHUNK]})
    remaining = max(1.0, deadline - time.monotonic())
    commands: list[str] = []
    for send in sends:
        request: dict[str, Any] = {
            **send,
            "DocumentName": "AWS-RunShellScript",
            "Parameters": {
                "commands": [command],
                "executionTimeout": [str(math.ceil(remaining) + 5)],
            },
            "MaxConcurrency": max_concurrency,
            "MaxErrors": max_errors,
            "TimeoutSeconds": max(30, math.ceil(remaining)),
            "Comment": f"trainlab fan-out: {command[:60]}",
        }
        if output_s3_bucket:
            request["OutputS3BucketName"] = output_s3_bucket
        try:
            with map_aws_errors(f"send_command in {region}"):
                commands.append(ssm.send_command(**request)["Command"]["CommandId"])
        except TrainlabError as exc:
            for instance in send.get("InstanceIds", []):
                rows.append(_row(region, instance, status="Undeliverable", error=str(exc)))
                bar.update(1)
            if "Targets" in send:
                rows.append(_row(region, "", status="Undeliverable", error=str(exc)))
    rows += _collect(ssm, commands, region, deadline, poll_interval, bar=bar)
    return rows


def _managed(ssm: Any, ids: list[str], region: str) -> set[str]:
    managed: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with map_aws_errors(f"describe_instance_information in {region}"):
            answer = ssm.describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": chunk}]
            )
        managed.update(i["InstanceId"] for i in answer.get("InstanceInformationList", []))
    return managed


def _collect(
    ssm: Any, commands: list[str], region: str, deadline: float, poll_interval: float, *, bar: Any
) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    pending = list(commands)
    shown = 0
    while pending:
        still = []
        for command_id in pending:
            invocations = _invocations(ssm, command_id, region)
            for item in invocations:
                latest[(command_id, item["InstanceId"])] = item
            if not invocations and _matched_nothing(ssm, command_id, region):
                latest[(command_id, "")] = {
                    "InstanceId": "",
                    "Status": "NoTargets",
                    "trainlab_error": "no managed instance matched the targets",
                }
                continue
            if not invocations or any(i["Status"] not in _TERMINAL for i in invocations):
                still.append(command_id)
        pending = still
        finished = sum(1 for k, i in latest.items() if k[1] and i["Status"] in _TERMINAL)
        bar.update(finished - shown)
        shown = finished
        if not pending:
            break
        if time.monotonic() >= deadline:
            for command_id in pending:
                with map_aws_errors(f"cancel_command in {region}"):
                    ssm.cancel_command(CommandId=command_id)
                for key, item in latest.items():
                    if key[0] == command_id and item["Status"] not in _TERMINAL:
                        item["Status"] = "TimedOut"
                        item["trainlab_error"] = "past the fan-out's deadline; cancelled"
            break
        time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
    rows = [_invocation_row(region, command_id, item) for (command_id, _), item in latest.items()]
    # ListCommandInvocations' details carry 2,500 characters and no stderr: each
    # finished instance's whole answer comes from GetCommandInvocation.
    done = [row for row in rows if row.pop("_done")]
    if done:
        with ThreadPoolExecutor(max_workers=min(16, len(done))) as pool:
            list(pool.map(lambda row: _full_output(ssm, row, region), done))
    return rows


def _matched_nothing(ssm: Any, command_id: str, region: str) -> bool:
    with map_aws_errors(f"list_commands in {region}"):
        commands = ssm.list_commands(CommandId=command_id).get("Commands", [])
    return (
        bool(commands)
        and commands[0].get("TargetCount") == 0
        and (commands[0].get("Status") in _TERMINAL | {"Success"})
    )


def _invocations(ssm: Any, command_id: str, region: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"CommandId": command_id, "Details": True}
        if token:
            kwargs["NextToken"] = token
        with map_aws_errors(f"list_command_invocations in {region}"):
            answer = ssm.list_command_invocations(**kwargs)
        found += answer.get("CommandInvocations", [])
        token = answer.get("NextToken")
        if not token:
            return found


def _invocation_row(region: str, command_id: str, item: dict[str, Any]) -> dict[str, Any]:
    plugins = item.get("CommandPlugins") or [{}]
    output = plugins[0].get("Output", "") or ""
    status = item.get("Status", "")
    if item.get("StatusDetails") == "Undeliverable":
        status = "Undeliverable"  # SSM's Failed with ResponseCode -1: the command never ran
    code = plugins[0].get("ResponseCode")
    row = _row(
        region,
        item["InstanceId"],
        command_id=command_id,
        status=status,
        exit_status=code if status in ("Success", "Failed") else None,
        stdout=output,
        error=item.get("trainlab_error", "")
        or ("" if status in ("Success", "Failed") else _STATUS_ERRORS.get(status, status)),
    )
    row["_done"] = status in ("Success", "Failed")
    return row


def _full_output(ssm: Any, row: dict[str, Any], region: str) -> None:
    with map_aws_errors(f"get_command_invocation in {region}"):
        answer = ssm.get_command_invocation(
            CommandId=row["command_id"], InstanceId=row["instance_id"]
        )
    row["stdout"] = answer.get("StandardOutputContent", "")
    row["stderr"] = answer.get("StandardErrorContent", "")
    row["truncated"] = len(row["stdout"]) >= SSM_STDOUT_LIMIT


def _row(region: str, instance: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SSM_RUN_COLUMNS, None)
    row.update(
        {
            "region": region,
            "instance_id": instance,
            "stdout": "",
            "stderr": "",
            "truncated": False,
            "error": "",
            "command_id": "",
        }
    )
    row.update(values)
    return row


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    from trainlab.tables import Table

    frame = Table(rows, columns=list(SSM_RUN_COLUMNS))
    frame = frame.astype({"exit_status": "Int64", "truncated": "bool"})
    return frame.sort_values(["region", "instance_id"], ignore_index=True)
