"""The errors the Buildkite agent API client raises.

Every error carries the HTTP status (``None`` when no response arrived) and a message that
names what went wrong; no message ever contains the agent token.
"""

from __future__ import annotations


class BuildkiteApiError(Exception):
    """The agent API could not give a usable answer (base class of every client error)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AuthenticationError(BuildkiteApiError):
    """The API refused the agent token (HTTP 401 or 403)."""


class RateLimitedError(BuildkiteApiError):
    """The API still answered HTTP 429 after the client's retries."""

    def __init__(
        self, message: str, *, status: int | None = 429, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s


class ServerError(BuildkiteApiError):
    """The API still answered HTTP 5xx after the client's retries."""


class MalformedResponseError(BuildkiteApiError):
    """The response body was not the documented shape (never read as a guessed zero)."""


class ApiTimeoutError(BuildkiteApiError):
    """Connecting to the API, or waiting for its answer, timed out on every attempt."""
