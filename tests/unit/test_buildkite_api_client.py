"""The client's public seam: names, construction checks, repr, and its documented time bound."""

from __future__ import annotations

import buildkite_api
import pytest
from buildkite_api import (
    AgentApiClient,
    ApiTimeoutError,
    AuthenticationError,
    BuildkiteApiError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
)

TOKEN = "bkua_0123456789abcdef0123456789abcdef"
ENDPOINT = "https://agent.buildkite.com/v3"


def test_public_names_are_importable_from_the_package() -> None:
    assert set(buildkite_api.__all__) == {
        "AgentApiClient",
        "QueueMetrics",
        "BuildkiteApiError",
        "AuthenticationError",
        "RateLimitedError",
        "ServerError",
        "MalformedResponseError",
        "ApiTimeoutError",
    }
    for name in buildkite_api.__all__:
        assert getattr(buildkite_api, name) is not None


@pytest.mark.parametrize(
    "error_type",
    [AuthenticationError, RateLimitedError, ServerError, MalformedResponseError, ApiTimeoutError],
)
def test_every_error_is_a_buildkite_api_error_with_status(error_type: type) -> None:
    error = error_type("the message", status=418)
    assert isinstance(error, BuildkiteApiError)
    assert error.status == 418
    assert str(error) == "the message"


def test_rate_limited_error_carries_retry_after() -> None:
    error = RateLimitedError("slow down", retry_after_s=30.0)
    assert (error.status, error.retry_after_s) == (429, 30.0)


def test_repr_and_str_do_not_show_the_token() -> None:
    client = AgentApiClient(ENDPOINT, TOKEN)
    assert TOKEN not in repr(client)
    assert TOKEN not in str(client)
    assert ENDPOINT in repr(client)


def test_endpoint_trailing_slash_is_dropped() -> None:
    assert AgentApiClient(ENDPOINT + "/", TOKEN).endpoint == ENDPOINT


@pytest.mark.parametrize(
    "endpoint",
    [
        "",
        "agent.buildkite.com/v3",
        "ftp://agent.buildkite.com/v3",
        "https://",
        "https://agent.buildkite.com/v3?x=1",
        "https://user:pass@agent.buildkite.com/v3",
    ],
)
def test_bad_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        AgentApiClient(endpoint, TOKEN)


@pytest.mark.parametrize(
    "token", ["", "has space", "line\nbreak", "tab\there", "nul\x00", "Token\r\nX-Injected: 1"]
)
def test_bad_tokens_are_refused_without_quoting_them(token: str) -> None:
    with pytest.raises(ValueError, match="token") as raised:
        AgentApiClient(ENDPOINT, token)
    if token:
        assert token not in str(raised.value)


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": float("inf")},
        {"timeout": True},
        {"retries": -1},
        {"retries": 1.5},
        {"retries": True},
        {"backoff_factor": -0.1},
        {"max_retry_wait_s": float("nan")},
    ],
)
def test_bad_options_are_refused(options: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        AgentApiClient(ENDPOINT, TOKEN, **options)


@pytest.mark.parametrize("queue", ["", None, 3])
def test_queue_must_be_a_non_empty_string(queue: object) -> None:
    with pytest.raises(ValueError, match="queue"):
        AgentApiClient(ENDPOINT, TOKEN).queue_metrics(queue)  # type: ignore[arg-type]


def test_documented_default_bound_is_55_seconds() -> None:
    # 4 attempts x (5 s connect + 5 s read) + 3 waits x 5 s.
    assert AgentApiClient(ENDPOINT, TOKEN).max_call_duration_s == 55.0


def test_bound_follows_the_options() -> None:
    client = AgentApiClient(ENDPOINT, TOKEN, timeout=2, retries=1, max_retry_wait_s=0.5)
    assert client.max_call_duration_s == 2 * (2 + 2) + 0.5


def test_client_is_a_context_manager() -> None:
    with AgentApiClient(ENDPOINT, TOKEN) as client:
        assert isinstance(client, AgentApiClient)
