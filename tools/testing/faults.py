"""AWS calls that fail or hang, injected into a boto3 client the code under test uses.

A botocore `before-call` hook answers in place of the service (moto included), so a test can
give a function an error AWS would send, or a call that outlasts the function's time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse


@contextmanager
def failing_calls(
    client: Any,
    operation: str,
    code: str,
    message: str,
    *,
    status: int = 400,
    first: int | None = None,
) -> Iterator[None]:
    """Inside the block, `operation` (e.g. "SendCommand") answers the AWS error `code`.

    With `first`, only the first that many calls of it fail; the rest reach the service.
    """
    calls = 0

    def fail(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        nonlocal calls
        if model.name != operation:
            return None
        calls += 1
        if first is not None and calls > first:
            return None
        return AWSResponse(client.meta.endpoint_url, status, {}, None), {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    with _hooked(client, fail, f"fail-{operation}"):
        yield


@contextmanager
def slow_calls(client: Any, operation: str, seconds: float) -> Iterator[None]:
    """Inside the block, each `operation` call waits `seconds` before it is sent."""

    def hang(model: Any, **_: Any) -> None:
        if model.name == operation:
            time.sleep(seconds)

    with _hooked(client, hang, f"hang-{operation}"):
        yield


@contextmanager
def _hooked(client: Any, hook: Any, unique_id: str) -> Iterator[None]:
    client.meta.events.register_first("before-call", hook, unique_id=unique_id)
    try:
        yield
    finally:
        client.meta.events.unregister("before-call", unique_id=unique_id)
