"""The Buildkite agent API client: one pooled ``requests`` session, bounded retries, typed errors.

``AgentApiClient.queue_metrics(queue)`` reads ``GET {endpoint}/metrics/queue?name=<queue>``
with ``Authorization: Token <token>``. Retries and backoff are urllib3's (see
``buildkite_api.retry``); connect and read timeouts are always set; a whole call takes at most
``client.max_call_duration_s`` seconds (55 s with the defaults). Errors name the HTTP status and
the server's message; the token never appears in a message, a repr or a log line.
"""

from __future__ import annotations

import json
import logging
import math
import time
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util.retry import Retry

from buildkite_api.errors import (
    ApiTimeoutError,
    AuthenticationError,
    BuildkiteApiError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
)
from buildkite_api.metrics import POLL_DURATION_HEADER, QueueMetrics, parse_queue_metrics
from buildkite_api.retry import max_call_duration_s, retry_policy

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_FACTOR_S = 0.5
DEFAULT_MAX_RETRY_WAIT_S = 5.0
DEFAULT_USER_AGENT = "buildkite-sam-fleet"

_REDACTED = "[redacted]"
_MESSAGE_LIMIT = 300

_LOG = logging.getLogger(__name__)


class AgentApiClient:
    """Reads queue metrics from the Buildkite agent API with an agent registration token.

    ``timeout`` is both the connect and the read timeout of each attempt; ``retries`` is the
    number of retries after the first attempt; ``backoff_factor`` and ``max_retry_wait_s``
    shape the waits between attempts (each wait, including a server's ``Retry-After``, is at
    most ``max_retry_wait_s``).
    """

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        user_agent: str | None = None,
        backoff_factor: float = DEFAULT_BACKOFF_FACTOR_S,
        max_retry_wait_s: float = DEFAULT_MAX_RETRY_WAIT_S,
    ) -> None:
        self._endpoint = _valid_endpoint(endpoint)
        self._token = _valid_token(token)
        self._timeout_s = _positive_seconds("timeout", timeout)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be an integer >= 0")
        self._retries = retries
        backoff_factor = _non_negative_seconds("backoff_factor", backoff_factor)
        self._max_retry_wait_s = _non_negative_seconds("max_retry_wait_s", max_retry_wait_s)

        adapter = HTTPAdapter(
            max_retries=retry_policy(
                retries=retries,
                backoff_factor=backoff_factor,
                max_wait_s=self._max_retry_wait_s,
            ),
            pool_connections=1,
            pool_maxsize=4,
        )
        self._session = requests.Session()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        # As session auth (not a plain header) so requests never swaps in ~/.netrc credentials.
        self._session.auth = _AgentToken(self._token)
        self._session.headers.update(
            {"Accept": "application/json", "User-Agent": user_agent or DEFAULT_USER_AGENT}
        )

    @property
    def endpoint(self) -> str:
        """The agent API base URL, e.g. ``https://agent.buildkite.com/v3``."""
        return self._endpoint

    @property
    def max_call_duration_s(self) -> float:
        """Upper bound on one ``queue_metrics`` call (see ``buildkite_api.retry``)."""
        return max_call_duration_s(
            timeout_s=self._timeout_s, retries=self._retries, max_wait_s=self._max_retry_wait_s
        )

    def queue_metrics(self, queue: str) -> QueueMetrics:
        """The metrics of one queue; raises a ``BuildkiteApiError`` subclass on any failure."""
        if not isinstance(queue, str) or not queue:
            raise ValueError("queue must be a non-empty string")
        started = time.monotonic()
        try:
            response = self._session.get(
                f"{self._endpoint}/metrics/queue",
                params={"name": queue},
                timeout=(self._timeout_s, self._timeout_s),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc, queue) from None
        fetched_at = time.time()
        _LOG.debug(
            "Buildkite agent API answered HTTP %s for queue %r in %.3f s",
            response.status_code,
            queue,
            time.monotonic() - started,
        )
        if response.status_code != 200:
            raise self._status_error(response, queue)
        try:
            return parse_queue_metrics(
                response.content,
                poll_duration=response.headers.get(POLL_DURATION_HEADER),
                fetched_at=fetched_at,
                status=response.status_code,
            )
        except MalformedResponseError as exc:
            raise MalformedResponseError(
                self._redact(f"{exc.message} (queue {queue!r})"), status=exc.status
            ) from None

    def close(self) -> None:
        """Release the pooled connections."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"AgentApiClient(endpoint={self._endpoint!r}, timeout={self._timeout_s!r}, "
            f"retries={self._retries!r})"
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._token, _REDACTED)

    def _status_error(self, response: requests.Response, queue: str) -> BuildkiteApiError:
        status = response.status_code
        message = self._redact(
            f"Buildkite agent API returned HTTP {status} for queue {queue!r}: "
            f"{self._server_message(response)}"
        )
        if status in (401, 403):
            return AuthenticationError(message, status=status)
        if status == 429:
            return RateLimitedError(message, status=status, retry_after_s=_retry_after_s(response))
        if 500 <= status <= 599:
            return ServerError(message, status=status)
        return BuildkiteApiError(message, status=status)

    def _server_message(self, response: requests.Response) -> str:
        text = response.content.decode("utf-8", errors="replace")
        try:
            document: Any = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("message"), str):
            text = document["message"]
        text = " ".join(self._redact(text).split())
        if not text:
            return response.reason or "no message"
        if len(text) > _MESSAGE_LIMIT:
            text = text[:_MESSAGE_LIMIT] + "..."
        return text

    def _transport_error(self, exc: requests.RequestException, queue: str) -> BuildkiteApiError:
        attempts = f"{self._retries} retries allowed"
        if isinstance(
            exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
        ):
            error_type: type[BuildkiteApiError] = MalformedResponseError
            summary = "response was cut short or undecodable"
        elif _is_timeout(exc):
            error_type = ApiTimeoutError
            summary = f"timed out ({self._timeout_s} s timeout, {attempts})"
        else:
            error_type = BuildkiteApiError
            summary = f"request failed ({attempts})"
        return error_type(self._redact(f"Buildkite agent API {summary} for queue {queue!r}: {exc}"))


class _AgentToken(requests.auth.AuthBase):
    """Sends ``Authorization: Token <token>``; its repr does not show the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Token {self._token}"
        return request

    def __repr__(self) -> str:
        return "_AgentToken([redacted])"


def _is_timeout(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.Timeout):
        return True
    # Exhausted read-timeout retries surface from requests as ConnectionError(MaxRetryError).
    cause = exc.args[0] if exc.args else None
    if not isinstance(cause, MaxRetryError):
        return False
    # urllib3 files "connection refused" (NewConnectionError) under its timeout errors too.
    return isinstance(cause.reason, Urllib3TimeoutError) and not isinstance(
        cause.reason, NewConnectionError
    )


def _retry_after_s(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(Retry(0).parse_retry_after(value))
    except InvalidHeader:
        return None


def _valid_endpoint(endpoint: str) -> str:
    if not isinstance(endpoint, str):
        raise ValueError("endpoint must be an http(s) URL string")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("endpoint must be an http(s) URL, e.g. https://agent.buildkite.com/v3")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("endpoint must not carry credentials, a query or a fragment")
    return endpoint.rstrip("/")


def _valid_token(token: str) -> str:
    # The message never quotes the value: it is a secret.
    if (
        not isinstance(token, str)
        or not token
        or not token.isprintable()
        or any(character.isspace() for character in token)
    ):
        raise ValueError(
            "token must be a non-empty string without whitespace or control characters"
        )
    return token


def _positive_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0")
    return float(value)


def _non_negative_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0")
    return float(value)
