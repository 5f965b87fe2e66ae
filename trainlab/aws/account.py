"""``aws://`` sessions: an AWS account (a profile and a region) that answers inventories.

The session policy above ``trainlab.transports.aws``; imported only when an ``aws://``
session is made, never by ``trainlab.aws`` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainlab.metrics import Record
from trainlab.session import Session

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AccountSession"]


class AccountSession(Session):
    """A session on an AWS account: ``ec2_inventory()`` with its profile and region."""

    def ec2_inventory(
        self, regions: Any = None, filters: Any = None, **options: Any
    ) -> pd.DataFrame:
        """``trainlab.aws.ec2_inventory`` with this account's profile, region and endpoint."""
        from trainlab.aws.inventory import ec2_inventory

        settings = self.transport.settings

        def describe(frame: pd.DataFrame, record: Record) -> None:
            record.detail = f"{len(frame)} instances"

        return self._call(
            "inventory",
            "",
            lambda: ec2_inventory(
                regions if regions is not None else [settings["region"]],
                filters,
                profile=settings.get("profile"),
                endpoint_url=settings.get("endpoint_url"),
                **options,
            ),
            lambda frame: int(frame.memory_usage(deep=False).sum()),
            annotate=describe,
        )
