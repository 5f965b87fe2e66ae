"""AWS: memoized boto3 clients and EC2 inventories as DataFrames.

>>> import trainlab
>>> inv = trainlab.aws.ec2_inventory(  # doctest: +SKIP
...     regions=["eu-west-1"], filters={"tag:role": "web"})
"""

from __future__ import annotations

from trainlab.aws.clients import aws_client, clear_clients
from trainlab.aws.fanout import SSM_RUN_COLUMNS, ssm_run
from trainlab.aws.inventory import INVENTORY_COLUMNS, ec2_inventory

__all__ = [
    "INVENTORY_COLUMNS",
    "SSM_RUN_COLUMNS",
    "aws_client",
    "clear_clients",
    "ec2_inventory",
    "ssm_run",
]
