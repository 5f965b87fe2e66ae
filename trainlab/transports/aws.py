"""``aws://``: an AWS account (a profile and a region) as a session, for inventories.

It runs no commands (``ssm://INSTANCE`` does); ``AccountSession.ec2_inventory``
(``trainlab.aws.account``) answers with its profile, region and endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from trainlab.aws.clients import aws_client, map_aws_errors
from trainlab.errors import TargetError
from trainlab.options import Option
from trainlab.result import CommandResult
from trainlab.transports.base import Transport

if TYPE_CHECKING:
    pass

__all__ = ["AWSAccountTransport"]


class AWSAccountTransport(Transport):
    """The account behind a profile, checked with STS GetCallerIdentity on open."""

    scheme: ClassVar[str] = "aws"
    session_class: ClassVar[str | None] = "trainlab.aws.account:AccountSession"
    options: ClassVar[Mapping[str, Option]] = {
        "profile": Option(str, None, "AWS profile (default: the environment's credentials)"),
        "region": Option(str, None, "home region (default: the profile's)"),
        "endpoint_url": Option(str, None, "another endpoint (moto, LocalStack)"),
    }

    def __init__(self, target: Any, options: Mapping[str, Any]) -> None:
        super().__init__(target, options)
        if target.host:
            raise TargetError(
                f"aws:// takes no host (got {target.host!r}): aws://?profile=NAME&region=NAME; "
                f"for an instance use ssm://{target.host}"
            )
        if not self.settings.get("region"):
            from trainlab.aws.clients import session

            self.settings["region"] = session(self.settings.get("profile")).region_name
        if not self.settings.get("region"):
            raise TargetError(
                "aws:// needs a region: aws://?region=eu-west-1 or AWS_DEFAULT_REGION"
            )
        self.account: str | None = None
        self._open = False

    def identity(self) -> tuple[Any, ...]:
        from trainlab.aws.clients import credentials_identity

        return ("aws", credentials_identity(self.settings.get("profile")), self.settings["region"])

    @property
    def mode(self) -> str:
        return "api"

    def open(self) -> None:
        client = aws_client(
            "sts",
            region=self.settings["region"],
            profile=self.settings.get("profile"),
            endpoint_url=self.settings.get("endpoint_url"),
        )
        with map_aws_errors(f"the account in {self.settings['region']}"):
            self.account = client.get_caller_identity()["Account"]
        self._open = True

    def alive(self) -> bool:
        return self._open

    def close(self) -> None:
        self._open = False

    def run(self, command: str, timeout: float | None) -> CommandResult:
        raise TargetError(
            "aws:// is an account, not a host: run commands with ssm://INSTANCE_ID "
            "(or trainlab.aws.ssm_run for many)"
        )

    def read_file(self, path: str) -> bytes:
        raise TargetError("aws:// is an account, not a host: it has no files")
