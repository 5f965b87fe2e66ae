"""EC2 inventories as DataFrames: one row per instance, typed columns, one per tag key.

Regions are fetched in parallel threads, pages of up to 1,000 instances at a time,
and the answer is cached (per credentials, regions, filters and ids) for ``ttl``
seconds. A region that fails does not discard the others: the error carries them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from trainlab.aws.clients import aws_client, credentials_identity, map_aws_errors, session
from trainlab.cache import ResultCache
from trainlab.errors import FleetError, TargetError, TrainlabError, TrainlabWarning

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "INVENTORY_COLUMNS",
    "PartialInventoryWarning",
    "ec2_inventory",
    "flatten",
    "parse_query",
]

#: The columns of ``ec2_inventory``'s answer and their dtypes, before the ``tag:<Key>`` columns.
INVENTORY_COLUMNS: dict[str, str] = {
    "region": "string",
    "instance_id": "string",
    "name": "string",
    "state": "string",
    "instance_type": "string",
    "availability_zone": "string",
    "private_ip": "string",
    "public_ip": "string",
    "launch_time": "datetime64[ns, UTC]",
    "platform": "string",
    "architecture": "string",
    "vpc_id": "string",
    "subnet_id": "string",
    "image_id": "string",
    "key_name": "string",
    "iam_profile": "string",
    "security_groups": "object",
}
# describe_instances takes at most 200 values per filter.
_ID_CHUNK = 200

_cache = ResultCache(max_entries=64, max_bytes=256 * 1024 * 1024)


class PartialInventoryWarning(TrainlabWarning):
    """Some regions failed; the inventory holds the others (``frame.attrs['errors']``)."""


def parse_query(regions: Sequence[str], filters: Sequence[str]) -> tuple[Any, dict[str, list[str]]]:
    """``--region`` and ``--filter NAME=VALUE`` words as ``ec2_inventory`` takes them.

    >>> parse_query(["all"], ["tag:role=web", "tag:role=db"])
    ('all', {'tag:role': ['web', 'db']})
    """
    parsed: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise TargetError(f"filter {item!r} is not NAME=VALUE (tag:role=web)")
        parsed.setdefault(key, []).append(value)
    chosen: Any = list(regions) or None
    return ("all" if chosen == ["all"] else chosen), parsed


def ec2_inventory(
    regions: Sequence[str] | str | None = None,
    filters: Mapping[str, str | Iterable[str]] | None = None,
    *,
    profile: str | None = None,
    instance_ids: Sequence[str] | None = None,
    page_size: int = 1000,
    ttl: float = 300,
    refresh: bool = False,
    endpoint_url: str | None = None,
    errors: str = "raise",
    max_workers: int = 16,
) -> pd.DataFrame:
    """Every EC2 instance of the given regions, one row each.

    Columns: region, instance_id, name, state, instance_type, availability_zone,
    private_ip, public_ip, launch_time (UTC), platform, architecture, vpc_id,
    subnet_id, image_id, key_name, iam_profile, security_groups, then one
    ``tag:<Key>`` column per tag key.

    Parameters
    ----------
    regions
        Region names, one region, ``"all"`` (every enabled region, from
        ``describe_regions``), or ``None`` for the profile's default region.
    filters
        EC2 filters, e.g. ``{"tag:role": "web", "instance-state-name": ["running"]}``.
    instance_ids
        Only these instances (fetched in chunks the API accepts).
    page_size
        ``MaxResults`` per page (5 to 1,000).
    ttl, refresh
        Cache the answer this many seconds; ``refresh=True`` asks AWS anyway.
    errors
        ``"raise"``: a failed region raises ``FleetError`` whose ``results`` is the
        inventory of the regions that answered; ``"warn"``: return those with a
        ``PartialInventoryWarning`` and ``frame.attrs["errors"]``.
    """
    if errors not in ("raise", "warn"):
        raise TargetError("errors= is 'raise' or 'warn'")
    if not 5 <= page_size <= 1000:
        raise TargetError(f"page_size must be between 5 and 1000 (EC2's limits), got {page_size}")
    filter_list = _filters(filters)
    ids = list(dict.fromkeys(instance_ids)) if instance_ids is not None else None
    wanted = regions if isinstance(regions, str) or regions is None else tuple(regions)
    key = (
        credentials_identity(profile),
        endpoint_url,
        wanted if wanted is not None else session(profile).region_name,
        tuple((f["Name"], tuple(f["Values"])) for f in filter_list),
        tuple(ids) if ids is not None else None,
        page_size,
    )
    if not refresh and ttl > 0:
        hit: pd.DataFrame | None = _cache.get(key)
        if hit is not None:
            return hit.copy()
    names = _regions(regions, profile, endpoint_url)
    rows: dict[str, list[dict[str, Any]]] = {}
    failures: dict[str, TrainlabError] = {}

    def fetch(region: str) -> None:
        try:
            rows[region] = _fetch_region(region, filter_list, ids, page_size, profile, endpoint_url)
        except TrainlabError as exc:
            failures[region] = exc

    if len(names) == 1:
        fetch(names[0])
    else:
        with ThreadPoolExecutor(max_workers=min(max_workers, len(names))) as pool:
            list(pool.map(fetch, names))
    frame = frame_from_rows([row for region in names for row in rows.get(region, [])])
    if failures:
        frame.attrs["errors"] = {region: str(exc) for region, exc in failures.items()}
        summary = "; ".join(f"{region}: {exc}" for region, exc in sorted(failures.items()))
        if len(failures) == len(names) and len(names) == 1:
            raise next(iter(failures.values()))
        if errors == "raise":
            raise FleetError(
                f"{len(failures)} of {len(names)} regions failed ({summary}); "
                "the others' instances are in .results",
                results=frame,
            )
        warnings.warn(
            f"inventory without {len(failures)} region(s): {summary}",
            PartialInventoryWarning,
            stacklevel=2,
        )
        return frame
    if ttl > 0:
        _cache.put(key, frame, ttl=ttl)
    return frame.copy()


def clear_cache() -> None:
    """Forget cached inventories."""
    _cache.clear()


def _regions(
    regions: Sequence[str] | str | None, profile: str | None, endpoint_url: str | None
) -> list[str]:
    if regions is None:
        default = session(profile).region_name
        if not default:
            raise TargetError(
                "no AWS region: pass regions=[...] (or 'all'), or set AWS_DEFAULT_REGION"
            )
        return [default]
    if isinstance(regions, str):
        if regions != "all":
            check_regions([regions], profile)
            return [regions]
        home = session(profile).region_name or "us-east-1"
        client = aws_client("ec2", region=home, profile=profile, endpoint_url=endpoint_url)
        with map_aws_errors(f"describe_regions in {home}"):
            answer = client.describe_regions(AllRegions=False)
        return sorted(r["RegionName"] for r in answer["Regions"])
    names = list(dict.fromkeys(regions))
    if not names:
        raise TargetError("regions is empty; name at least one, or 'all'")
    check_regions(names, profile)
    return names


def check_regions(names: list[str], profile: str | None) -> None:
    """Refuse a region name botocore knows in no partition (a typo, usually)."""
    boto = session(profile)
    known: set[str] = set()
    for partition in boto.get_available_partitions():
        known.update(boto.get_available_regions("ec2", partition_name=partition))
    unknown = [name for name in names if name not in known]
    if unknown:
        import difflib

        hints = [difflib.get_close_matches(name, sorted(known), n=1) for name in unknown]
        hint = "; ".join(
            f"{name!r} (did you mean {match[0]!r}?)" if match else repr(name)
            for name, match in zip(unknown, hints, strict=True)
        )
        raise TargetError(f"unknown AWS region {hint}; regions='all' asks AWS for the list")


def _filters(filters: Mapping[str, str | Iterable[str]] | None) -> list[dict[str, Any]]:
    out = []
    for name, values in (filters or {}).items():
        listed = [values] if isinstance(values, str) else [str(v) for v in values]
        if not listed:
            raise TargetError(f"filter {name!r} has no values")
        out.append({"Name": str(name), "Values": listed})
    return out


def _fetch_region(  # noqa: PLR0917 - called positionally from one place, in a thread
    region: str,
    filters: list[dict[str, Any]],
    ids: list[str] | None,
    page_size: int,
    profile: str | None,
    endpoint_url: str | None,
) -> list[dict[str, Any]]:
    client = aws_client("ec2", region=region, profile=profile, endpoint_url=endpoint_url)
    paginator = client.get_paginator("describe_instances")
    requests: list[list[dict[str, Any]]] = []
    if ids is None:
        requests.append(filters)
    else:
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            requests.append([*filters, {"Name": "instance-id", "Values": chunk}])
    rows: list[dict[str, Any]] = []
    for request in requests:
        with map_aws_errors(f"describe_instances in {region}"):
            pages = paginator.paginate(Filters=request, PaginationConfig={"PageSize": page_size})
            for page in pages:
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        rows.append(flatten(instance, region))
    return rows


def flatten(instance: Mapping[str, Any], region: str) -> dict[str, Any]:
    """One describe_instances instance as a flat row."""
    tags = {t["Key"]: t.get("Value", "") for t in instance.get("Tags", []) or []}
    placement = instance.get("Placement") or {}
    profile = instance.get("IamInstanceProfile") or {}
    row: dict[str, Any] = {
        "region": region,
        "instance_id": instance.get("InstanceId"),
        "name": tags.get("Name"),
        "state": (instance.get("State") or {}).get("Name"),
        "instance_type": instance.get("InstanceType"),
        "availability_zone": placement.get("AvailabilityZone"),
        "private_ip": instance.get("PrivateIpAddress"),
        "public_ip": instance.get("PublicIpAddress"),
        "launch_time": instance.get("LaunchTime"),
        "platform": instance.get("PlatformDetails") or instance.get("Platform") or "Linux/UNIX",
        "architecture": instance.get("Architecture"),
        "vpc_id": instance.get("VpcId"),
        "subnet_id": instance.get("SubnetId"),
        "image_id": instance.get("ImageId"),
        "key_name": instance.get("KeyName"),
        "iam_profile": profile.get("Arn"),
        # A tuple, not a list: a caller's edit must not reach the cached inventory.
        "security_groups": tuple(
            g.get("GroupName") or g.get("GroupId") for g in instance.get("SecurityGroups", [])
        ),
    }
    for key, value in tags.items():
        row[f"tag:{key}"] = value
    return row


def frame_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows to the inventory's typed frame; no rows gives the same columns, empty."""
    import pandas as pd

    tag_columns = sorted({key for row in rows for key in row if key.startswith("tag:")})
    frame = pd.DataFrame(rows, columns=[*INVENTORY_COLUMNS, *tag_columns])
    dtypes = dict(INVENTORY_COLUMNS)
    dtypes.pop("launch_time")
    frame = frame.astype({**dtypes, **dict.fromkeys(tag_columns, "string")})
    frame["launch_time"] = pd.to_datetime(frame["launch_time"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    return frame
