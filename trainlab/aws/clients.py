"""boto3 clients, created once per (profile, region, endpoint, credentials) and reused.

A new ``boto3.session.Session().client()`` costs a couple of hundred milliseconds
(it loads the service model); a reused client's call costs a few. Every client has
bounded retries (standard mode), timeouts, and a connection pool sized for fan-out.
``endpoint_url=`` and botocore's own ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``
both work.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from trainlab.errors import AWSError, ConnectError, TargetError, TrainlabError, TransportError

__all__ = ["AWSError", "aws_client", "clear_clients", "credentials_identity", "map_aws_errors"]

DEFAULT_ATTEMPTS = 5
POOL_SIZE = 64

# What SSM keeps of a command's output, in characters: GetCommandInvocation's
# StandardOutputContent and StandardErrorContent, and ListCommandInvocations' Output per
# plugin (with Details). Longer output is cut there; the full text is in S3 when the
# command was sent with an output bucket. The transport, the fan-out and the sandbox's
# agent all read these.
SSM_STDOUT_LIMIT = 24_000
SSM_STDERR_LIMIT = 8_000
SSM_DETAIL_OUTPUT_LIMIT = 2_500

_sessions: dict[str | None, Any] = {}
_clients: dict[tuple[Any, ...], Any] = {}
_lock = threading.RLock()


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TargetError(
            "AWS needs boto3, which is not installed: pip install 'trainlab[aws]'"
        ) from exc
    return boto3


def session(profile: str | None = None) -> Any:
    """The boto3 Session for ``profile`` (memoized: building one reads config files)."""
    boto3 = _boto3()
    from botocore.exceptions import ProfileNotFound

    with _lock:
        found = _sessions.get(profile)
        if found is None:
            try:
                found = boto3.session.Session(profile_name=profile)
            except ProfileNotFound as exc:
                raise TargetError(
                    f"AWS profile {profile!r} is not in ~/.aws/config or ~/.aws/credentials; "
                    "run `aws configure --profile NAME` or pass another profile="
                ) from exc
            _sessions[profile] = found
        return found


def credentials_identity(profile: str | None = None) -> str:
    """Who the calls are made as: the access key id and a digest of the secret.

    Part of every client and cache key, so answers never cross identities.
    """
    with map_aws_errors("AWS credentials"):
        credentials = session(profile).get_credentials()
    if credentials is None:
        return "anonymous"
    frozen = credentials.get_frozen_credentials()
    digest = hashlib.sha256(f"{frozen.secret_key}\0{frozen.token}".encode()).hexdigest()[:16]
    return f"{frozen.access_key}:{digest}"


def aws_client(
    service: str,
    *,
    region: str,
    profile: str | None = None,
    endpoint_url: str | None = None,
    max_attempts: int | None = None,
) -> Any:
    """A reused boto3 client for ``service`` in ``region``."""
    from botocore.config import Config

    max_attempts = max_attempts or DEFAULT_ATTEMPTS
    env_endpoint = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}") or os.environ.get(
        "AWS_ENDPOINT_URL"
    )
    key = (
        service,
        region,
        profile,
        endpoint_url or env_endpoint,
        credentials_identity(profile),
        max_attempts,
    )
    with _lock:
        client = _clients.get(key)
        if client is None:
            config = Config(
                region_name=region,
                retries={"mode": "standard", "max_attempts": max_attempts},
                connect_timeout=5,
                read_timeout=30,
                max_pool_connections=POOL_SIZE,
                user_agent_extra="trainlab",
            )
            with map_aws_errors(f"{service} in {region}"):
                client = session(profile).client(
                    service, region_name=region, endpoint_url=endpoint_url, config=config
                )
            _clients[key] = client
        return client


def clear_clients() -> None:
    """Forget every memoized client and session (after credentials change)."""
    with _lock:
        for client in _clients.values():
            with contextlib.suppress(Exception):
                client.close()
        _clients.clear()
        _sessions.clear()


_CREDENTIAL_CODES = {
    "AuthFailure",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}
_EXPIRED_CODES = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_THROTTLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}


@contextlib.contextmanager
def map_aws_errors(what: str) -> Iterator[None]:
    """Translate botocore's exceptions into trainlab errors that name the fix."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    try:
        yield
    except TrainlabError:
        raise
    except bx.NoCredentialsError as exc:
        raise ConnectError(
            f"no AWS credentials for {what}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "run `aws configure`, or pass profile="
        ) from exc
    except bx.ProfileNotFound as exc:
        raise TargetError(f"{exc}; pass an existing profile=") from exc
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError) as exc:
        raise ConnectError(f"cannot reach AWS for {what}: {exc}") from exc
    except bx.NoRegionError as exc:
        raise TargetError(
            f"no AWS region for {what}: pass region= or set AWS_DEFAULT_REGION"
        ) from exc
    except bx.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", ""))
        if code in _EXPIRED_CODES:
            raise ConnectError(
                f"the AWS credentials for {what} have expired ({code}); refresh them "
                "(aws sso login, or new session credentials)"
            ) from exc
        if code in _CREDENTIAL_CODES:
            raise ConnectError(
                f"AWS rejected the credentials for {what}: {code}: {message}"
            ) from exc
        if code in _THROTTLE_CODES:
            raise TransportError(
                f"AWS throttled {what} beyond the retry budget ({code}); retry later or "
                "lower the concurrency"
            ) from exc
        raise AWSError(code, message, what) from exc
    except bx.WaiterError:
        raise  # the caller reads the waiter's last response
    except ResponseParserError as exc:
        raise TransportError(f"AWS's answer for {what} could not be parsed: {exc}") from exc
    except bx.BotoCoreError as exc:
        raise TransportError(f"AWS call for {what} failed: {exc}") from exc
