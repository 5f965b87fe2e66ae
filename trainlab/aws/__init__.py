"""AWS: memoized boto3 clients and EC2 inventories as DataFrames.

>>> import trainlab
>>> inv = trainlab.aws.ec2_inventory(  # doctest: +SKIP
...     regions=["eu-west-1"], filters={"tag:role": "web"})
"""

from __future__ import annotations

from trainlab.aws.clients import aws_client, clear_clients
from trainlab.aws.inventory import INVENTORY_COLUMNS, ec2_inventory

__all__ = ["INVENTORY_COLUMNS", "aws_client", "clear_clients", "ec2_inventory"]
