"""The functions' AWS clients: created once per container, with botocore adaptive retries.

Each client is cached per (service, endpoint, region, access key id), read from
``AWS_ENDPOINT_URL``, ``AWS_REGION``/``AWS_DEFAULT_REGION`` and ``AWS_ACCESS_KEY_ID`` when first
asked for: in Lambda that is once per container; a local run pointed at another endpoint (moto
in server mode) or given other credentials (another principal) gets its own client.
Shared by every function through the layer.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.config import Config

if TYPE_CHECKING:
    from botocore.client import BaseClient

# botocore logs request and response bodies at DEBUG, and an SSM response can hold the decrypted
# agent token: whatever a function's log level, those loggers never go below INFO.
for _library in ("botocore", "boto3"):
    logging.getLogger(_library).setLevel(logging.INFO)

# Short socket timeouts keep every call well inside a function's timeout; adaptive mode retries
# throttling with client-side rate limiting (many stacks share an account's API limits).
CLIENT_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=10,
)


def autoscaling() -> BaseClient:
    """The Auto Scaling client."""
    return _client("autoscaling", *_location())


def dynamodb() -> BaseClient:
    """The DynamoDB client."""
    return _client("dynamodb", *_location())


def ec2() -> BaseClient:
    """The EC2 client."""
    return _client("ec2", *_location())


def ssm() -> BaseClient:
    """The Systems Manager client."""
    return _client("ssm", *_location())


def parameter_store() -> SSMProvider:
    """The Powertools SSM provider: it caches parameter values for this container."""
    return _parameter_store(*_location())


def _location() -> tuple[str | None, str | None, str | None]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return endpoint, region, os.environ.get("AWS_ACCESS_KEY_ID") or None


@cache
def _session(access_key_id: str | None) -> boto3.session.Session:
    # One session per principal (a session keeps the credentials it resolved first); its
    # clients share the service models loaded from disk.
    return boto3.session.Session()


@cache
def _client(
    service: str, endpoint_url: str | None, region: str | None, access_key_id: str | None
) -> BaseClient:
    return _session(access_key_id).client(
        service, endpoint_url=endpoint_url, region_name=region, config=CLIENT_CONFIG
    )


@cache
def _parameter_store(
    endpoint_url: str | None, region: str | None, access_key_id: str | None
) -> SSMProvider:
    return SSMProvider(boto3_client=_client("ssm", endpoint_url, region, access_key_id))
