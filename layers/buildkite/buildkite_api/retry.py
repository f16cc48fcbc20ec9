"""The client's retry policy: urllib3 ``Retry`` with jittered backoff and a cap on every wait.

Retries are urllib3's, mounted on the client's ``requests`` session; nothing here loops. The
subclass only changes two numbers urllib3 computes, the same way on urllib3 1.26 and 2.x:

- ``get_backoff_time``: urllib3's exponential backoff (0 before the first retry, then
  ``backoff_factor * 2 ** (n - 1)``) with "equal jitter" (a uniform draw from the upper half
  of the exponential value), capped at ``max_wait_s``;
- ``get_retry_after``: the server's ``Retry-After`` (seconds or HTTP date), honoured but
  capped at ``max_wait_s``.

So no wait between two attempts exceeds ``max_wait_s``, and a whole call is bounded by
``max_call_duration_s`` below.
"""

from __future__ import annotations

import random
from typing import Any

from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_METHODS = frozenset({"GET"})


class BoundedRetry(Retry):
    """A urllib3 ``Retry`` whose backoff is jittered and whose every wait is at most a cap."""

    def __init__(self, *args: Any, max_wait_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_wait_s = max_wait_s

    def new(self, **kw: Any) -> BoundedRetry:
        # urllib3 copies the policy on every increment; carry the cap across.
        kw.setdefault("max_wait_s", self.max_wait_s)
        return super().new(**kw)

    def get_backoff_time(self) -> float:
        exponential = super().get_backoff_time()
        if exponential <= 0:
            return 0.0
        return min(self.max_wait_s, random.uniform(exponential / 2, exponential))  # noqa: S311

    def get_retry_after(self, response: Any) -> float | None:
        retry_after = super().get_retry_after(response)
        if retry_after is None:
            return None
        return min(float(retry_after), self.max_wait_s)


def retry_policy(*, retries: int, backoff_factor: float, max_wait_s: float) -> BoundedRetry:
    """The policy for agent API reads: GET only, on 429/500/502/503/504 and transport errors.

    ``raise_on_status=False`` hands the last response back after the final attempt, so the
    client can name its status and message.
    """
    return BoundedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        redirect=0,
        other=0,
        allowed_methods=RETRY_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        raise_on_status=False,
        respect_retry_after_header=True,
        max_wait_s=max_wait_s,
    )


def max_call_duration_s(*, timeout_s: float, retries: int, max_wait_s: float) -> float:
    """Upper bound, in seconds, on one client call.

    ``retries + 1`` attempts, each at most ``timeout_s`` to connect plus ``timeout_s`` waiting
    for the answer, and ``retries`` waits between them, each at most ``max_wait_s``:
    ``(retries + 1) * 2 * timeout_s + retries * max_wait_s``.

    Assumes the host name resolves (DNS time is outside requests' timeouts), one address is
    tried per attempt, and the server does not trickle its answer (requests' read timeout
    bounds each socket read, not the whole body).
    """
    return (retries + 1) * 2 * timeout_s + retries * max_wait_s
