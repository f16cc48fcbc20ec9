"""Client of the Buildkite agent API, shared by the fleet's functions through the Lambda layer.

    from buildkite_api import AgentApiClient, BuildkiteApiError

    client = AgentApiClient("https://agent.buildkite.com/v3", token)
    metrics = client.queue_metrics("default")   # QueueMetrics, or a BuildkiteApiError subclass

Retries are urllib3's (GET only; 429/500/502/503/504 and transport errors; jittered
exponential backoff; ``Retry-After`` honoured up to ``max_retry_wait_s``); one call takes at
most ``client.max_call_duration_s`` seconds (55 s with the defaults:
``(retries + 1) * 2 * timeout + retries * max_retry_wait_s``). The token never appears in an
error, a repr or a log line.
"""

from buildkite_api.client import AgentApiClient
from buildkite_api.errors import (
    ApiTimeoutError,
    AuthenticationError,
    BuildkiteApiError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
)
from buildkite_api.metrics import QueueMetrics

__all__ = [
    "AgentApiClient",
    "ApiTimeoutError",
    "AuthenticationError",
    "BuildkiteApiError",
    "MalformedResponseError",
    "QueueMetrics",
    "RateLimitedError",
    "ServerError",
]
