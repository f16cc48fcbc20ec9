"""The queue's metrics from the Buildkite agent API, with the agent token from SSM.

The token is read through Powertools Parameters (decrypted, cached for ``TOKEN_MAX_AGE_S``);
when the API refuses it (401/403) the parameter is read again once, bypassing the cache, and
the request is retried with the new token, so a rotated token is picked up at once. The token
is never logged and never part of an error.

The API client's timeouts and retries are sized for the poll loop: one API call takes at most
22 s with the values below (``buildkite_api.retry.max_call_duration_s``), a read that meets a
rotated token twice that (``QueueMetricsReader.max_call_duration_s``).
"""

from __future__ import annotations

from typing import Protocol

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from buildkite_api import AgentApiClient, AuthenticationError, QueueMetrics
from buildkite_api.retry import max_call_duration_s

TOKEN_MAX_AGE_S = 300
API_TIMEOUT_S = 3.0
API_RETRIES = 2
API_MAX_RETRY_WAIT_S = 2.0
USER_AGENT = "buildkite-sam-fleet-agent-scaler"


class ParameterStore(Protocol):
    """The part of Powertools' ``SSMProvider`` the scaler uses."""

    def get(
        self,
        name: str,
        max_age: int | None = None,
        transform: None = None,
        decrypt: bool | None = None,
        force_fetch: bool = False,
    ) -> object: ...


class TokenError(ValueError):
    """The token parameter cannot be read or holds no usable value (never quoted)."""


class QueueMetricsReader:
    """Reads one queue's metrics; keeps one API client (one pooled session) per token."""

    def __init__(self, endpoint: str, token_parameter: str, parameter_store: ParameterStore):
        self._endpoint = endpoint
        self._token_parameter = token_parameter
        self._parameter_store = parameter_store
        self._token: str | None = None
        self._client: AgentApiClient | None = None

    @property
    def max_call_duration_s(self) -> float:
        """Upper bound on one ``read`` (two API calls when the token is rotated)."""
        return 2 * max_call_duration_s(
            timeout_s=API_TIMEOUT_S, retries=API_RETRIES, max_wait_s=API_MAX_RETRY_WAIT_S
        )

    def read(self, queue: str) -> QueueMetrics:
        """The queue's metrics; raises a ``BuildkiteApiError`` subclass on any API failure."""
        token = self._read_token(force_fetch=False)
        try:
            return self._client_for(token).queue_metrics(queue)
        except AuthenticationError:
            fresh = self._read_token(force_fetch=True)
            if fresh == token:
                raise
            return self._client_for(fresh).queue_metrics(queue)

    def _read_token(self, *, force_fetch: bool) -> str:
        try:
            value = self._parameter_store.get(
                self._token_parameter,
                max_age=TOKEN_MAX_AGE_S,
                decrypt=True,
                force_fetch=force_fetch,
            )
        except GetParameterError as exc:
            raise TokenError(
                f"reading the agent token from SSM parameter {self._token_parameter!r} "
                f"failed: {exc}"
            ) from exc
        if not isinstance(value, str) or not value.strip():
            raise TokenError(f"SSM parameter {self._token_parameter!r} holds no agent token")
        return value.strip()

    def _client_for(self, token: str) -> AgentApiClient:
        if self._client is None or token != self._token:
            if self._client is not None:
                self._client.close()
            try:
                self._client = _new_client(self._endpoint, token)
            except ValueError as exc:
                # The client's messages describe the value, never quote it.
                raise TokenError(
                    f"cannot read the agent API at {self._endpoint!r} with the token in "
                    f"SSM parameter {self._token_parameter!r}: {exc}"
                ) from None
            self._token = token
        return self._client


def _new_client(endpoint: str, token: str) -> AgentApiClient:
    return AgentApiClient(
        endpoint,
        token,
        timeout=API_TIMEOUT_S,
        retries=API_RETRIES,
        user_agent=USER_AGENT,
        max_retry_wait_s=API_MAX_RETRY_WAIT_S,
    )
