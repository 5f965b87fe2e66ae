"""``ssm://INSTANCE_ID``: commands through AWS Systems Manager Run Command.

Each command is a ``SendCommand`` of ``AWS-RunShellScript`` (``AWS-RunPowerShellScript``
on Windows instances), awaited with botocore's ``command_executed`` waiter, which
also rides out the ``InvocationDoesNotExist`` that follows a send (boto3 #2701),
and which here also stops at an ``Undeliverable`` invocation: SSM's word for an
agent that did not take the command, raised as ``ConnectError``.
A batch is one document: the framing's bash host reads the framed request from a
here-document, so every command keeps its own output and exit status. SSM cuts
output at 24,000 characters; the result says so, and with ``output_s3_bucket=``
the whole output is read from S3.

Output cannot stream here (``supports_output`` stays False): SSM hands a command's
output over only once the invocation has finished, so ``on_output`` and the
``max_output`` cap get it then.
"""

from __future__ import annotations

import base64
import copy
import functools
import math
import shlex
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlparse

from trainlab import framing
from trainlab.aws.clients import (
    SSM_STDERR_LIMIT,
    SSM_STDOUT_LIMIT,
    aws_client,
    credentials_identity,
    map_aws_errors,
    session,
)
from trainlab.errors import (
    CommandTimeout,
    ConnectError,
    FileError,
    FileMissing,
    TargetError,
    TransportError,
)
from trainlab.options import Option
from trainlab.result import STAT_FORMAT, CommandResult, FileStat
from trainlab.transports.base import Transport

__all__ = ["SSMTransport"]

_DONE = ("Success", "Failed", "Cancelled", "TimedOut", "Cancelling", "Undeliverable")
#: ``StatusDetails`` of an invocation no agent took: SSM never ran the command.
_NOT_DELIVERED = ("Undeliverable", "Delivery Timed Out")


@functools.cache
def _command_executed() -> Any:
    """botocore's ``CommandExecuted`` waiter model, with an end at ``Undeliverable``.

    SSM reports an undelivered invocation as ``Failed`` with ``StatusDetails``
    ``Undeliverable`` (which the waiter's own rules end on); an answer whose
    ``Status`` itself says ``Undeliverable`` would match none of them and wait out
    the deadline, so both are failures here.
    """
    import botocore.session
    from botocore.waiter import WaiterModel

    loader = botocore.session.get_session().get_component("data_loader")
    config = copy.deepcopy(loader.load_service_model("ssm", "waiters-2"))
    config["waiters"]["CommandExecuted"]["acceptors"] += [
        {"state": "failure", "matcher": "path", "argument": argument, "expected": "Undeliverable"}
        for argument in ("Status", "StatusDetails")
    ]
    return WaiterModel(config)


class SSMTransport(Transport):
    """One EC2 instance through SSM Run Command; no connection to keep, one client reused."""

    scheme: ClassVar[str] = "ssm"
    options: ClassVar[Mapping[str, Option]] = {
        "region": Option(str, None, "the instance's region (default: the profile's)"),
        "profile": Option(str, None, "AWS profile (default: the environment's credentials)"),
        "endpoint_url": Option(str, None, "another endpoint (moto, LocalStack)"),
        "poll_interval": Option(
            float, 1.0, "seconds between status checks", minimum=0.01, maximum=3_600
        ),
        "output_s3_bucket": Option(str, None, "bucket for whole outputs past SSM's 24,000 chars"),
        "output_s3_prefix": Option(str, "trainlab", "key prefix in that bucket"),
        "working_directory": Option(
            str, None, "directory the commands run in", affects_result=True
        ),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        instance = target.host
        if not instance.startswith(("i-", "mi-")):
            raise TargetError(
                f"ssm:// takes an instance id such as ssm://i-0123456789abcdef0, got {instance!r}"
            )
        self.instance_id = instance
        if not self.settings.get("region"):
            self.settings["region"] = session(self.settings.get("profile")).region_name
        if not self.settings.get("region"):
            raise TargetError(f"ssm://{instance} needs a region: ?region=eu-west-1")
        from trainlab.aws.inventory import check_regions

        check_regions([self.settings["region"]], self.settings.get("profile"))
        self.info: dict[str, Any] | None = None

    # ------------------------------------------------------------ identity
    def identity(self) -> tuple[Any, ...]:
        return (
            "ssm",
            credentials_identity(self.settings.get("profile")),
            self.settings["region"],
            self.instance_id,
        )

    @property
    def mode(self) -> str:
        return "api"

    @property
    def concurrent(self) -> bool:
        return True

    @property
    def supports_batch(self) -> bool:
        return not self.windows  # a framed batch needs bash; Windows goes one by one

    @property
    def windows(self) -> bool:
        """Whether SSM reports the instance as Windows (its commands then run as PowerShell)."""
        return bool(self.info and self.info.get("PlatformType") == "Windows")

    def _client(self, service: str = "ssm") -> Any:
        return aws_client(
            service,
            region=self.settings["region"],
            profile=self.settings.get("profile"),
            endpoint_url=self.settings.get("endpoint_url"),
        )

    # ----------------------------------------------------------- lifecycle
    def open(self) -> None:
        where = f"{self.instance_id} in {self.settings['region']}"
        with map_aws_errors(f"describe_instance_information for {where}"):
            answer = self._client().describe_instance_information(
                Filters=[{"Key": "InstanceIds", "Values": [self.instance_id]}]
            )
        found = answer.get("InstanceInformationList", [])
        if not found:
            raise ConnectError(self._not_managed())
        self.info = found[0]

    def _not_managed(self) -> str:
        where = f"{self.instance_id} in {self.settings['region']}"
        try:
            with map_aws_errors(f"describe_instances for {where}"):
                self._client("ec2").describe_instances(InstanceIds=[self.instance_id])
        except Exception:
            return (
                f"instance {where} does not exist (or these credentials cannot see it); "
                "check the id and the region"
            )
        return (
            f"instance {where} is not managed by SSM: it is stopped, or its SSM agent is "
            "not running or lacks the AmazonSSMManagedInstanceCore role"
        )

    def alive(self) -> bool:
        return self.info is not None

    def close(self) -> None:
        self.info = None

    def platform_facts(self) -> dict[str, str] | None:
        if self.info is None:
            return None
        windows = self.windows
        return {
            "kernel": "Windows" if windows else "Linux",
            "id": "windows"
            if windows
            else str(self.info.get("PlatformName", "linux"))
            .lower()
            .replace("amazon linux", "amzn")
            .replace(" ", "-"),
            "release": str(self.info.get("PlatformVersion", "")),
            "arch": "",
            "pretty_name": " ".join(
                str(self.info.get(key, "")) for key in ("PlatformName", "PlatformVersion")
            ).strip(),
        }

    # ------------------------------------------------------------ commands
    def run(self, command: str, timeout: float | None) -> CommandResult:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        stdout, stderr, status, truncated = self._send([command], timeout, command)
        return self.result(
            command, stdout, stderr, status, started=started, since=t0, truncated=truncated
        )

    def run_many(
        self, commands: Sequence[str], timeout: float | None, stop_on_error: bool
    ) -> list[CommandResult]:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        request = framing.build_request(commands, stop_on_error=stop_on_error)
        script = (
            f"bash --noprofile --norc -c {shlex.quote(framing.HOST_SCRIPT)} <<'__TL_EOF__'\n"
            f"{request.wire.decode()}\n__TL_EOF__"
        )
        stdout, stderr, _, truncated = self._send([script], timeout, f"{len(commands)} commands")
        if truncated:
            raise TransportError(
                "the batch's output passed SSM's 24,000-character limit; pass "
                "output_s3_bucket= to read it whole from S3, or send fewer commands per batch"
            )
        outputs = framing.parse_response(stdout, stderr, request)
        wall = time.perf_counter() - t0
        return framing.framed_results(commands, outputs, self.target.address, started, wall)

    def _send(
        self, lines: list[str], timeout: float | None, label: str
    ) -> tuple[bytes, bytes, int, bool]:
        from botocore.exceptions import WaiterError

        client = self._client()
        limit = timeout if timeout is not None else 3600.0
        parameters: dict[str, list[str]] = {
            "commands": lines,
            # The client's deadline decides; the agent's own limit is a backstop.
            "executionTimeout": [str(math.ceil(limit) + 5)],
        }
        if self.settings.get("working_directory"):
            parameters["workingDirectory"] = [self.settings["working_directory"]]
        request: dict[str, Any] = {
            "InstanceIds": [self.instance_id],
            "DocumentName": "AWS-RunPowerShellScript" if self.windows else "AWS-RunShellScript",
            "Parameters": parameters,
            "TimeoutSeconds": max(30, min(2_592_000, math.ceil(limit))),
            "Comment": f"trainlab: {label[:80]}",
        }
        bucket = self.settings.get("output_s3_bucket")
        if bucket:
            request["OutputS3BucketName"] = bucket
            request["OutputS3KeyPrefix"] = self.settings["output_s3_prefix"]
        where = f"{self.instance_id} in {self.settings['region']}"
        with map_aws_errors(f"send_command to {where}"):
            try:
                command_id = client.send_command(**request)["Command"]["CommandId"]
            except client.exceptions.InvalidInstanceId as exc:
                raise ConnectError(self._not_managed()) from exc
        delay = float(self.settings["poll_interval"])
        attempts = max(2, math.ceil(limit / delay) + 2)
        from botocore.waiter import create_waiter_with_client

        waiter = create_waiter_with_client("CommandExecuted", _command_executed(), client)
        try:
            with map_aws_errors(f"waiting for the command on {where}"):
                waiter.wait(
                    CommandId=command_id,
                    InstanceId=self.instance_id,
                    WaiterConfig={"Delay": delay, "MaxAttempts": attempts},
                )
        except WaiterError as exc:
            status = (exc.last_response or {}).get("Status")
            if status not in _DONE:  # the client's deadline passed first
                with map_aws_errors(f"cancel_command on {where}"):
                    client.cancel_command(CommandId=command_id, InstanceIds=[self.instance_id])
                raise CommandTimeout(
                    f"command {label!r} ran past its {limit:g} s deadline on {where}; "
                    "SSM was told to cancel it",
                    command=label,
                    timeout=timeout,
                ) from None
        with map_aws_errors(f"get_command_invocation on {where}"):
            invocation = client.get_command_invocation(
                CommandId=command_id, InstanceId=self.instance_id
            )
        status = invocation.get("Status")
        details = invocation.get("StatusDetails")
        if status == "Undeliverable" or details in _NOT_DELIVERED:
            message = self._undelivered(str(details or status))
            self.info = None  # the next command asks SSM about the instance again
            error = ConnectError(message)
            error.failure = "undeliverable"
            raise error
        if status == "TimedOut":
            raise CommandTimeout(
                f"command {label!r} ran past its {limit:g} s executionTimeout on {where}",
                command=label,
                timeout=timeout,
                stdout=invocation.get("StandardOutputContent", "").encode(),
                stderr=invocation.get("StandardErrorContent", "").encode(),
            )
        if status in ("Cancelled", "Cancelling"):
            raise TransportError(f"the command on {where} was cancelled outside this session")
        if status == "Failed" and details not in (None, "", "Failed"):
            # SSM's own failure before the command ran (Access Denied, InvalidPlatform,
            # Terminated): its ResponseCode of -1 is no exit status.
            raise TransportError(f"SSM did not run the command on {where}: {details}")
        stdout = invocation.get("StandardOutputContent", "") or ""
        stderr = invocation.get("StandardErrorContent", "") or ""
        truncated = len(stdout) >= SSM_STDOUT_LIMIT or len(stderr) >= SSM_STDERR_LIMIT
        out_bytes, err_bytes = stdout.encode(), stderr.encode()
        if truncated and bucket:
            out_bytes = self._from_s3(invocation.get("StandardOutputUrl", ""), out_bytes)
            err_bytes = self._from_s3(invocation.get("StandardErrorUrl", ""), err_bytes)
            truncated = False
        code = int(invocation.get("ResponseCode", -1))
        return out_bytes, err_bytes, code, truncated

    def _undelivered(self, details: str) -> str:
        where = f"{self.instance_id} in {self.settings['region']}"
        seen = ""
        ping = (self.info or {}).get("PingStatus")
        if ping and ping != "Online":
            last = (self.info or {}).get("LastPingDateTime")
            since = f", last ping {last:%Y-%m-%d %H:%M:%S %Z}" if isinstance(last, datetime) else ""
            seen = f"; SSM already listed its agent as {ping}{since} when the session opened"
        return (
            f"the SSM agent on {where} did not take the command ({details}){seen}. Check that "
            "the instance is running, that it is registered with SSM (aws ssm "
            f"describe-instance-information --filters Key=InstanceIds,Values={self.instance_id}) "
            "with its agent Online, and that its IAM role allows SSM "
            "(AmazonSSMManagedInstanceCore)"
        )

    def _from_s3(self, url: str, fallback: bytes) -> bytes:
        if not url:
            return fallback
        parsed = urlparse(url)
        bucket, _, key = parsed.path.lstrip("/").partition("/")
        with map_aws_errors(f"reading {url}"):
            try:
                body = self._client("s3").get_object(Bucket=bucket, Key=key)["Body"]
            except self._client("s3").exceptions.NoSuchKey:
                return b""
            data: bytes = body.read()
            return data

    # --------------------------------------------------------------- files
    def read_file(self, path: str) -> bytes:
        result = self.run(f"base64 -w0 -- {shlex.quote(path)}", None)
        if result.exit_status != 0:
            text = result.stderr.strip()
            if "No such file" in text:
                raise FileMissing(2, f"{path}: no such file on {self.instance_id}")
            raise FileError(5, f"{path} on {self.instance_id}: {text or 'failed'}")
        if result.truncated:
            raise FileError(27, f"{path} is larger than SSM returns inline; pass output_s3_bucket=")
        return base64.b64decode(result.stdout_bytes)

    def stat(self, path: str) -> FileStat:
        result = self.run(f"stat -L -c '{STAT_FORMAT}' -- {shlex.quote(path)}", None)
        if result.exit_status != 0:
            if "No such file" in result.stderr:
                raise FileMissing(2, f"{path}: no such file on {self.instance_id}")
            raise FileError(5, f"{path} on {self.instance_id}: {result.stderr.strip()}")
        return FileStat.from_stat_line(path, result.stdout)
