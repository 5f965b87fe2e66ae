"""AWS: client reuse, the inventory against raw paginate-and-flatten, the cached inventory.

Against moto's server on loopback, in one run:
  new client per call     boto3.session.Session().client("ec2") + describe_instances
  reused client           one client, describe_instances (MaxResults=5)
  raw inventory           paginate describe_instances, flatten to a DataFrame by hand
  kit inventory           trainlab.aws.ec2_inventory(refresh=True)
  kit inventory, cached   the same call within its ttl

Targets (issue 4): the kit adds at most 10% to the raw inventory path; a cached
inventory answers in under 1 ms. moto spends most of the time serving the pages.
Run: python benchmarks/bench_aws.py [--instances 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import boto3
import pandas as pd
from _timing import median_ms

from trainlab.aws import ec2_inventory
from trainlab.sandbox.aws import MotoServer, fake_credentials, seed_fleet


def raw_inventory(client: object, region: str) -> pd.DataFrame:
    rows = []
    paginator = client.get_paginator("describe_instances")  # type: ignore[attr-defined]
    for page in paginator.paginate(PaginationConfig={"PageSize": 1000}):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                rows.append(
                    {
                        "instance_id": instance["InstanceId"],
                        "state": instance["State"]["Name"],
                        "instance_type": instance["InstanceType"],
                        "private_ip": instance.get("PrivateIpAddress"),
                        "launch_time": instance["LaunchTime"],
                        **{f"tag:{k}": v for k, v in tags.items()},
                    }
                )
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    region = "eu-west-1"
    figures: dict[str, float] = {}
    with fake_credentials(), MotoServer() as server:
        url = server.endpoint_url
        t0 = time.perf_counter()
        seed_fleet(url, regions=[region], per_region=args.instances)
        print(f"seeded {args.instances} instances in {time.perf_counter() - t0:.1f} s")
        figures["new client per call"] = median_ms(
            lambda: (
                boto3.session.Session()
                .client("ec2", region_name=region, endpoint_url=url)
                .describe_instances(MaxResults=5)
            ),
            10,
        )
        reused = boto3.client("ec2", region_name=region, endpoint_url=url)
        figures["reused client"] = median_ms(lambda: reused.describe_instances(MaxResults=5), 10)
        figures[f"raw inventory ({args.instances})"] = median_ms(
            lambda: raw_inventory(reused, region), args.repeat
        )
        figures[f"kit inventory ({args.instances})"] = median_ms(
            lambda: ec2_inventory(regions=[region], endpoint_url=url, refresh=True), args.repeat
        )
        figures["kit inventory, cached"] = median_ms(
            lambda: ec2_inventory(regions=[region], endpoint_url=url), 50
        )
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:10.2f} ms")
    raw = figures[f"raw inventory ({args.instances})"]
    kit = figures[f"kit inventory ({args.instances})"]
    print(
        f"\nnew client / reused: {figures['new client per call'] / figures['reused client']:.0f}x"
    )
    print(f"kit inventory / raw: {kit / raw:.3f} (target <= 1.10)")
    print(f"cached inventory: {figures['kit inventory, cached']:.3f} ms (target < 1 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
