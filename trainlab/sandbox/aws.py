"""moto's AWS server on a loopback port, and a realistic fleet to explore in it.

>>> with MotoServer() as aws:                      # doctest: +SKIP
...     seed_fleet(aws.endpoint_url, per_region=100)
...     trainlab.aws.ec2_inventory(regions="all", endpoint_url=aws.endpoint_url)
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from trainlab.errors import TrainlabError
from trainlab.sandbox._base import Background

__all__ = ["FLEET_REGIONS", "MotoServer", "fake_credentials", "seed_fleet"]

FLEET_REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")


class MotoServer(Background):
    """moto's ThreadedMotoServer on 127.0.0.1 (a free port), in this process.

    Real HTTP, real request signing and real botocore retries; the state lives in
    moto's in-memory backends, which ``reset()`` empties.
    """

    def __init__(self) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise TrainlabError(
                "moto's server is not installed: pip install 'trainlab[sandbox]'"
            ) from exc
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> MotoServer:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        """Empty every moto backend (as moto's /moto-api/reset does)."""
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._server.stop()


@contextlib.contextmanager
def fake_credentials() -> Iterator[dict[str, str]]:
    """Per-run throwaway AWS credentials in the environment (never real ones)."""
    values = {
        "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "AWS_DEFAULT_REGION": FLEET_REGIONS[0],
    }
    saved = {key: os.environ.get(key) for key in [*values, "AWS_SESSION_TOKEN", "AWS_PROFILE"]}
    os.environ.update(values)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield values
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


ROLES = ("web", "api", "db", "cache", "worker", "bastion")
TEAMS = ("payments", "search", "platform", "data")
ENVIRONMENTS = ("prod", "staging", "dev")
TYPES = ("t3.micro", "t3.large", "m5.large", "m5.xlarge", "c5.2xlarge", "r5.large")


def seed_fleet(
    endpoint_url: str,
    *,
    regions: Sequence[str] = FLEET_REGIONS,
    per_region: int = 120,
    seed: int = 7,
) -> dict[str, list[str]]:
    """Launch a mixed fleet: roles, teams, environments as tags; some stopped.

    Returns the instance ids per region.
    """
    import boto3

    rng = random.Random(seed)  # noqa: S311 - a reproducible fleet, not a secret
    launched: dict[str, list[str]] = {}
    for region in regions:
        ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint_url)
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ids: list[str] = []
        remaining = per_region
        while remaining > 0:
            role = rng.choice(ROLES)
            count = min(remaining, rng.randint(1, 12))
            tags: list[dict[str, Any]] = [
                {"Key": "role", "Value": role},
                {"Key": "team", "Value": rng.choice(TEAMS)},
                {"Key": "env", "Value": rng.choice(ENVIRONMENTS)},
            ]
            answer = ec2.run_instances(
                ImageId=image,
                MinCount=count,
                MaxCount=count,
                InstanceType=rng.choice(TYPES),
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
            )
            batch = [i["InstanceId"] for i in answer["Instances"]]
            for index, instance in enumerate(batch):
                ec2.create_tags(
                    Resources=[instance],
                    Tags=[{"Key": "Name", "Value": f"{role}-{region}-{len(ids) + index:03d}"}],
                )
            ids += batch
            remaining -= count
        stopped = [i for i in ids if rng.random() < 0.15]
        if stopped:
            ec2.stop_instances(InstanceIds=stopped)
        launched[region] = ids
    return launched
