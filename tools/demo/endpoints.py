"""The two servers the demo talks to over real HTTP: moto (AWS) and the Buildkite API emulator.

Both serve from threads of the demo's own process on 127.0.0.1, on ports the OS picks, so
nothing can outlive the demo: there is no child process to orphan, and leaving the ``with``
block (normally, on an error, or on Ctrl-C) shuts both servers down and closes their sockets.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult
from moto.server import ThreadedMotoServer

from tools.buildkite_emulator import BuildkiteEmulator

AWS_REGION = "us-east-1"
LOOPBACK = "127.0.0.1"
# moto accepts any credentials; these placeholders keep boto3 from looking for real ones.
PLACEHOLDER_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo"}


@dataclass(frozen=True)
class Endpoints:
    """Where the emulated account and the emulated Buildkite API answer."""

    aws_url: str
    emulator: BuildkiteEmulator

    @property
    def aws_port(self) -> int:
        return int(self.aws_url.rsplit(":", 1)[1])

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` pointed at moto."""
        return boto3.session.Session().client(
            service,
            endpoint_url=self.aws_url,
            region_name=AWS_REGION,
            aws_access_key_id=PLACEHOLDER_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=PLACEHOLDER_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def aws_environment(self) -> dict[str, str]:
        """What a Lambda function run locally needs to reach moto (boto3 reads these)."""
        return {
            "AWS_ENDPOINT_URL": self.aws_url,
            "AWS_REGION": AWS_REGION,
            "AWS_DEFAULT_REGION": AWS_REGION,
            **PLACEHOLDER_CREDENTIALS,
        }


@contextmanager
def running_endpoints(token: str) -> Iterator[Endpoints]:
    """Start moto and the emulator (which accepts ``token``); stop both on the way out."""
    _quiet_server_logs()
    moto = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        with BuildkiteEmulator(token=token) as emulator:
            yield Endpoints(aws_url=f"http://{host}:{port}", emulator=emulator)
    finally:
        # Ends moto's serving loop and waits for its thread; werkzeug closes the listening
        # socket as the loop ends, so the port is free when this returns.
        moto.stop()


def _quiet_server_logs() -> None:
    """Keep per-request access lines and moto's parse warnings out of the live table.

    The demo reports what moto could not create itself (``tools.demo.stacks``).
    """
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)


@contextmanager
def warm_pool_instances(
    instances_of: Callable[[str], list[dict[str, Any]]],
) -> Iterator[None]:
    """Make moto's DescribeWarmPool list ``instances_of(group_name)`` as the pool's instances.

    moto answers DescribeWarmPool with the configuration PutWarmPool stored and always
    ``Instances: []``: it never launches an instance into a pool. The demo's fleet plays the
    pool (``tools.demo.warm_pool``); while this block runs, moto (which serves from a thread of
    this process) lists that pool's instances, so the scaler reads them over real HTTP like any
    other answer. The original handler is restored on the way out.
    """
    original = AutoScalingResponse.describe_warm_pool

    def describe_warm_pool(self: AutoScalingResponse) -> ActionResult:
        group_name = self._get_param("AutoScalingGroupName")
        configuration = self.autoscaling_backend.describe_warm_pool(group_name=group_name)
        listed = instances_of(group_name) if configuration is not None else []
        return ActionResult({"WarmPoolConfiguration": configuration, "Instances": listed})

    AutoScalingResponse.describe_warm_pool = describe_warm_pool  # type: ignore[method-assign]
    try:
        yield
    finally:
        AutoScalingResponse.describe_warm_pool = original  # type: ignore[method-assign]
