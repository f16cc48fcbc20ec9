"""The client's urllib3 retry policy: which requests it retries, and how long it may wait."""

from __future__ import annotations

import email.utils
import time

import pytest
from buildkite_api.retry import BoundedRetry, max_call_duration_s, retry_policy
from urllib3 import HTTPResponse
from urllib3.exceptions import MaxRetryError


def response(status: int, retry_after: str | None = None) -> HTTPResponse:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return HTTPResponse(body=b"", headers=headers, status=status, preload_content=False)


def after_failures(policy: BoundedRetry, failures: int, status: int = 503) -> BoundedRetry:
    for _ in range(failures):
        policy = policy.increment(method="GET", url="/v3/metrics/queue", response=response(status))
    return policy


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_get_is_retried_on_throttling_and_server_errors(status: int) -> None:
    assert retry_policy(retries=3, backoff_factor=0.5, max_wait_s=5).is_retry("GET", status)


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 422, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    assert not retry_policy(retries=3, backoff_factor=0.5, max_wait_s=5).is_retry("GET", status)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_is_retried(method: str) -> None:
    assert not retry_policy(retries=3, backoff_factor=0.5, max_wait_s=5).is_retry(method, 503)


def test_policy_is_exhausted_after_the_configured_retries() -> None:
    policy = after_failures(retry_policy(retries=3, backoff_factor=0.5, max_wait_s=5), 3)
    assert not policy.is_exhausted()
    with pytest.raises(MaxRetryError):
        after_failures(policy, 1)


def test_every_copy_keeps_the_cap() -> None:
    policy = after_failures(retry_policy(retries=5, backoff_factor=0.5, max_wait_s=1.25), 2)
    assert isinstance(policy, BoundedRetry)
    assert policy.max_wait_s == 1.25


def test_first_retry_is_immediate_then_backoff_grows_with_jitter() -> None:
    policy = retry_policy(retries=10, backoff_factor=0.5, max_wait_s=100)
    assert after_failures(policy, 1).get_backoff_time() == 0
    for failures in range(2, 7):
        exponential = 0.5 * 2 ** (failures - 1)
        waits = {after_failures(policy, failures).get_backoff_time() for _ in range(50)}
        assert all(exponential / 2 <= wait <= exponential for wait in waits)
        assert len(waits) > 1, "backoff has no jitter"


def test_backoff_never_exceeds_the_cap() -> None:
    policy = after_failures(retry_policy(retries=20, backoff_factor=10, max_wait_s=3), 12)
    assert all(policy.get_backoff_time() <= 3 for _ in range(50))


@pytest.mark.parametrize(("header", "expected"), [("1", 1.0), ("2", 2.0), ("120", 4.0)])
def test_retry_after_seconds_are_honoured_up_to_the_cap(header: str, expected: float) -> None:
    policy = retry_policy(retries=3, backoff_factor=0.5, max_wait_s=4)
    assert policy.get_retry_after(response(429, header)) == expected


def test_retry_after_http_date_is_capped() -> None:
    policy = retry_policy(retries=3, backoff_factor=0.5, max_wait_s=4)
    in_an_hour = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert policy.get_retry_after(response(503, in_an_hour)) == 4


def test_no_retry_after_header_means_backoff() -> None:
    policy = retry_policy(retries=3, backoff_factor=0.5, max_wait_s=4)
    assert policy.get_retry_after(response(503)) is None


@pytest.mark.parametrize(
    ("timeout_s", "retries", "max_wait_s", "bound"),
    [(5.0, 3, 5.0, 55.0), (1.0, 0, 5.0, 2.0), (2.0, 2, 0.5, 13.0)],
)
def test_call_duration_bound(
    timeout_s: float, retries: int, max_wait_s: float, bound: float
) -> None:
    assert max_call_duration_s(timeout_s=timeout_s, retries=retries, max_wait_s=max_wait_s) == bound
