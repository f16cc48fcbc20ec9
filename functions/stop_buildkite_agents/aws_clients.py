"""AWS clients for this function: created once per container, with botocore adaptive retries."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from botocore.client import BaseClient

# Short socket timeouts keep every call well inside the function's timeout; adaptive mode
# retries throttling with client-side rate limiting.
CLIENT_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=15,
)


@cache
def autoscaling() -> BaseClient:
    """The Auto Scaling client, created on first use and reused by later invocations."""
    return boto3.client("autoscaling", config=CLIENT_CONFIG)


@cache
def ssm() -> BaseClient:
    """The Systems Manager client, created on first use and reused by later invocations."""
    return boto3.client("ssm", config=CLIENT_CONFIG)
