"""The agent API client over real HTTP against the emulator: answers, retries, errors, secrecy."""

from __future__ import annotations

import logging
import secrets
import socket
import time
import traceback
from typing import Any

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

from tools.buildkite_emulator import BuildkiteEmulator

pytestmark = pytest.mark.integration

FAST = {"timeout": 2.0, "retries": 3, "backoff_factor": 0.01, "max_retry_wait_s": 0.2}
VALID_BODY: dict[str, Any] = {
    "agents": {"idle": 1, "busy": 2, "total": 3},
    "jobs": {"scheduled": 4, "running": 2, "waiting": 0, "total": 6},
    "organization": {"slug": "acme"},
}


def client_for(emulator: BuildkiteEmulator, **options: Any) -> AgentApiClient:
    token = options.pop("token", emulator.token)
    return AgentApiClient(emulator.url, token, **{**FAST, **options})


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- answers -------------------------------------------------------------------------------


def test_happy_path_reads_every_count(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    control.configure(organization_slug="acme-ci", cluster_name="linux")
    control.set_counts(
        "default", scheduled_jobs=4, running_jobs=2, waiting_jobs=7, idle_agents=3, busy_agents=2
    )
    before = time.time()
    with client_for(buildkite_emulator) as client:
        metrics = client.queue_metrics("default")
    after = time.time()
    assert (metrics.scheduled_jobs, metrics.running_jobs, metrics.waiting_jobs) == (4, 2, 7)
    assert (metrics.idle_agents, metrics.busy_agents, metrics.total_agents) == (3, 2, 5)
    assert (metrics.organization_slug, metrics.cluster_name) == ("acme-ci", "linux")
    assert metrics.poll_interval_s == 10.0
    assert before <= metrics.fetched_at <= after
    [request] = control.agent_requests()
    assert (request.route, request.queue, request.authorized, request.status) == (
        "metrics_queue",
        "default",
        True,
        200,
    )


def test_metrics_follow_the_simulated_queue(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    control.enqueue_jobs("default", 3, duration_s=60)
    control.register_instance("i-1", "default", agents_per_instance=2)
    with client_for(buildkite_emulator) as client:
        metrics = client.queue_metrics("default")
        assert (metrics.scheduled_jobs, metrics.running_jobs, metrics.busy_agents) == (1, 2, 2)
        control.advance(90)  # two jobs finished at 60 s; the third runs from 60 s to 120 s
        metrics = client.queue_metrics("default")
    assert (metrics.scheduled_jobs, metrics.running_jobs, metrics.idle_agents) == (0, 1, 1)


def test_missing_cluster_is_none(buildkite_emulator: BuildkiteEmulator) -> None:
    with client_for(buildkite_emulator) as client:
        assert client.queue_metrics("default").cluster_name is None


def test_poll_duration_header_is_parsed(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    control.configure(poll_duration_s=30)
    with client_for(buildkite_emulator) as client:
        assert client.queue_metrics("default").poll_interval_s == 30.0
        control.add_fault(headers={"Buildkite-Agent-Metrics-Poll-Duration": "soon"})
        assert client.queue_metrics("default").poll_interval_s is None
        control.add_fault(headers={"Buildkite-Agent-Metrics-Poll-Duration": None})
        assert client.queue_metrics("default").poll_interval_s is None


def test_extra_fields_are_ignored(buildkite_emulator: BuildkiteEmulator) -> None:
    body = {
        "agents": {"idle": 1, "busy": 2, "total": 3, "queues": {"x": {"idle": "?"}}},
        "jobs": {"scheduled": 4, "running": 2, "waiting": 0, "total": 6, "limited": True},
        "organization": {"slug": "acme", "uuid": "0000"},
        "cluster": {"name": "default", "id": 9},
        "new_top_level_thing": [1, 2, 3],
    }
    buildkite_emulator.control.add_fault(json_body=body)
    with client_for(buildkite_emulator) as client:
        metrics = client.queue_metrics("default")
    assert (metrics.scheduled_jobs, metrics.total_agents, metrics.cluster_name) == (4, 3, "default")


@pytest.mark.parametrize(
    "queue",
    [
        "ci/linux",
        "deploy.prod",
        "c++",
        "dépôt-é",
        "构建",
        "with space",
        "a&b=c#d",
        "100%",
        "?name=other",
    ],
)
def test_queue_names_are_url_encoded(buildkite_emulator: BuildkiteEmulator, queue: str) -> None:
    control = buildkite_emulator.control
    control.set_counts(queue, scheduled_jobs=11)
    control.set_counts("other", scheduled_jobs=99)
    with client_for(buildkite_emulator) as client:
        assert client.queue_metrics(queue).scheduled_jobs == 11
    [request] = control.agent_requests()
    assert request.queue == queue


# --- errors without retries ----------------------------------------------------------------


def test_wrong_token_is_an_authentication_error_naming_status_and_message(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    wrong = secrets.token_hex(20)
    with (
        client_for(buildkite_emulator, token=wrong) as client,
        pytest.raises(AuthenticationError) as raised,
    ):
        client.queue_metrics("default")
    error = raised.value
    assert error.status == 401
    assert "401" in str(error)
    assert "Invalid or missing agent token" in str(error)
    assert wrong not in str(error)
    assert buildkite_emulator.token not in str(error)
    assert len(buildkite_emulator.control.agent_requests()) == 1, "401 must not be retried"


def test_forbidden_is_an_authentication_error(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(status=403, message="Token is for another cluster")
    with client_for(buildkite_emulator) as client, pytest.raises(AuthenticationError) as raised:
        client.queue_metrics("default")
    assert raised.value.status == 403
    assert "Token is for another cluster" in str(raised.value)


def test_not_found_is_a_plain_api_error_not_retried(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(status=404, message="No such route", count=None)
    with client_for(buildkite_emulator) as client, pytest.raises(BuildkiteApiError) as raised:
        client.queue_metrics("default")
    assert type(raised.value) is BuildkiteApiError
    assert raised.value.status == 404
    assert "No such route" in str(raised.value)
    assert len(buildkite_emulator.control.agent_requests()) == 1


def test_a_server_message_echoing_the_token_is_redacted(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    token = buildkite_emulator.token
    buildkite_emulator.control.add_fault(status=401, message=f"token {token} was revoked")
    with client_for(buildkite_emulator) as client, pytest.raises(AuthenticationError) as raised:
        client.queue_metrics("default")
    assert token not in str(raised.value)
    assert "was revoked" in str(raised.value)


# --- retries -------------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured_then_succeeds(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    control = buildkite_emulator.control
    control.set_counts("default", scheduled_jobs=5)
    control.add_fault(status=429, retry_after=1, message="Slow down")
    started = time.monotonic()
    with client_for(buildkite_emulator, max_retry_wait_s=5.0) as client:
        metrics = client.queue_metrics("default")
    elapsed = time.monotonic() - started
    assert metrics.scheduled_jobs == 5
    assert elapsed >= 1.0, "Retry-After: 1 was not honoured"
    assert [request.status for request in control.agent_requests()] == [429, 200]


def test_429_forever_is_rate_limited_with_retry_after(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    buildkite_emulator.control.add_fault(status=429, retry_after=30, count=None)
    with client_for(buildkite_emulator) as client, pytest.raises(RateLimitedError) as raised:
        client.queue_metrics("default")
    assert (raised.value.status, raised.value.retry_after_s) == (429, 30.0)
    assert len(buildkite_emulator.control.agent_requests()) == 1 + FAST["retries"]


def test_503_twice_then_success(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    control.set_counts("default", idle_agents=2)
    control.add_fault(status=503, count=2)
    with client_for(buildkite_emulator) as client:
        assert client.queue_metrics("default").idle_agents == 2
    assert [request.status for request in control.agent_requests()] == [503, 503, 200]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_retryable_server_errors_are_retried(
    buildkite_emulator: BuildkiteEmulator, status: int
) -> None:
    buildkite_emulator.control.add_fault(status=status, count=1)
    with client_for(buildkite_emulator) as client:
        client.queue_metrics("default")
    assert [request.status for request in buildkite_emulator.control.agent_requests()] == [
        status,
        200,
    ]


def test_backoff_waits_grow_between_attempts(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(status=503, count=3)
    started = time.monotonic()
    with client_for(buildkite_emulator, backoff_factor=0.1, max_retry_wait_s=1.0) as client:
        client.queue_metrics("default")
    # Waits: 0, then 0.1..0.2, then 0.2..0.4 (equal jitter on 0.1 * 2 ** (n - 1)).
    assert time.monotonic() - started >= 0.3


def test_503_forever_is_a_server_error_within_the_documented_bound(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    buildkite_emulator.control.add_fault(
        status=503, retry_after=120, message="Down for maintenance", count=None
    )
    client = client_for(buildkite_emulator, timeout=1.0, retries=3, max_retry_wait_s=0.25)
    assert client.max_call_duration_s == 4 * (1.0 + 1.0) + 3 * 0.25
    started = time.monotonic()
    with client, pytest.raises(ServerError) as raised:
        client.queue_metrics("default")
    elapsed = time.monotonic() - started
    assert elapsed <= client.max_call_duration_s
    assert elapsed >= 3 * 0.25, "Retry-After was not honoured up to the cap"
    assert raised.value.status == 503
    assert "503" in str(raised.value)
    assert "Down for maintenance" in str(raised.value)
    assert len(buildkite_emulator.control.agent_requests()) == 4


# --- transport failures --------------------------------------------------------------------


def test_read_timeout_is_an_api_timeout_within_the_bound(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    buildkite_emulator.control.add_fault(delay_s=3.0, count=None)
    client = client_for(buildkite_emulator, timeout=0.3, retries=1)
    started = time.monotonic()
    with client, pytest.raises(ApiTimeoutError) as raised:
        client.queue_metrics("default")
    elapsed = time.monotonic() - started
    assert raised.value.status is None
    assert 0.6 <= elapsed <= client.max_call_duration_s
    assert len(buildkite_emulator.control.agent_requests()) == 2


def test_one_slow_answer_is_retried(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.set_counts("default", busy_agents=4)
    buildkite_emulator.control.add_fault(delay_s=2.0, count=1)
    with client_for(buildkite_emulator, timeout=0.3) as client:
        assert client.queue_metrics("default").busy_agents == 4


def test_connection_refused_is_an_api_error_not_a_timeout() -> None:
    client = AgentApiClient(f"http://127.0.0.1:{closed_port()}/v3", "token-x", **FAST)
    with client, pytest.raises(BuildkiteApiError) as raised:
        client.queue_metrics("default")
    assert not isinstance(raised.value, ApiTimeoutError)
    assert raised.value.status is None
    assert "refused" in str(raised.value).lower()


def test_a_stopped_emulator_refuses_connections() -> None:
    with BuildkiteEmulator() as emulator:
        url, token = emulator.url, emulator.token
    with AgentApiClient(url, token, **FAST) as client, pytest.raises(BuildkiteApiError):
        client.queue_metrics("default")


def test_one_connection_reset_is_retried(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(reset=True, count=1)
    with client_for(buildkite_emulator) as client:
        client.queue_metrics("default")
    assert [request.status for request in buildkite_emulator.control.agent_requests()] == [
        None,
        200,
    ]


def test_connection_reset_forever_is_an_api_error(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(reset=True, count=None)
    with client_for(buildkite_emulator) as client, pytest.raises(BuildkiteApiError) as raised:
        client.queue_metrics("default")
    assert type(raised.value) is BuildkiteApiError
    assert raised.value.status is None
    assert len(buildkite_emulator.control.agent_requests()) == 1 + FAST["retries"]


# --- bodies --------------------------------------------------------------------------------


def test_malformed_body_is_malformed(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(malformed=True)
    with client_for(buildkite_emulator) as client, pytest.raises(MalformedResponseError) as raised:
        client.queue_metrics("default")
    assert raised.value.status == 200


def test_truncated_body_is_malformed(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(truncate=True)
    with client_for(buildkite_emulator) as client, pytest.raises(MalformedResponseError):
        client.queue_metrics("default")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("agents", "idle", "3"),
        ("agents", "busy", 2.5),
        ("agents", "total", None),
        ("jobs", "scheduled", True),
        ("jobs", "running", [2]),
        ("jobs", "waiting", {"n": 0}),
    ],
)
def test_wrong_typed_counts_are_malformed(
    buildkite_emulator: BuildkiteEmulator, section: str, key: str, value: Any
) -> None:
    body = {name: dict(part) for name, part in VALID_BODY.items()}
    body[section][key] = value
    buildkite_emulator.control.add_fault(json_body=body)
    with (
        client_for(buildkite_emulator) as client,
        pytest.raises(MalformedResponseError, match=rf"{section}\.{key}"),
    ):
        client.queue_metrics("default")


@pytest.mark.parametrize(("section", "key"), [("agents", "idle"), ("jobs", "scheduled")])
def test_negative_counts_are_malformed(
    buildkite_emulator: BuildkiteEmulator, section: str, key: str
) -> None:
    body = {name: dict(part) for name, part in VALID_BODY.items()}
    body[section][key] = -1
    buildkite_emulator.control.add_fault(json_body=body)
    with (
        client_for(buildkite_emulator) as client,
        pytest.raises(MalformedResponseError, match="negative"),
    ):
        client.queue_metrics("default")


def test_missing_count_is_malformed_not_zero(buildkite_emulator: BuildkiteEmulator) -> None:
    body = {name: dict(part) for name, part in VALID_BODY.items()}
    del body["jobs"]["waiting"]
    buildkite_emulator.control.add_fault(json_body=body)
    with (
        client_for(buildkite_emulator) as client,
        pytest.raises(MalformedResponseError, match=r"jobs\.waiting"),
    ):
        client.queue_metrics("default")


# --- secrecy -------------------------------------------------------------------------------


def test_the_token_never_appears_in_logs_or_errors(
    buildkite_emulator: BuildkiteEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    token = buildkite_emulator.token
    wrong = secrets.token_hex(20)
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "buildkite_api", "tools"):
        caplog.set_level(logging.DEBUG, logger=name)
    control = buildkite_emulator.control
    errors: list[BaseException] = []

    def attempt(client: AgentApiClient) -> None:
        try:
            with client:
                client.queue_metrics("default")
        except BuildkiteApiError as error:
            errors.append(error)

    control.add_fault(status=503, count=1)
    control.add_fault(reset=True, count=1)
    attempt(client_for(buildkite_emulator))  # succeeds after a 503 and a reset
    attempt(client_for(buildkite_emulator, token=wrong))
    control.add_fault(status=401, message=f"token {token} revoked")
    attempt(client_for(buildkite_emulator))
    for fault in (
        {"status": 503, "count": None},
        {"status": 429, "retry_after": 1, "count": None},
        {"reset": True, "count": None},
        {"truncate": True},
        {"malformed": True},
        {"delay_s": 1.0, "count": None},
    ):
        control.add_fault(**fault)
        attempt(client_for(buildkite_emulator, timeout=0.2, retries=1))
        control.clear_faults()
    attempt(AgentApiClient(f"http://127.0.0.1:{closed_port()}/v3", token, **FAST))

    assert len(errors) == 9
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = [formatter.format(record) for record in caplog.records]
    texts += [repr(record.args) for record in caplog.records]
    for error in errors:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    for text in texts:
        assert token not in text
        assert wrong not in text


def test_netrc_credentials_never_replace_the_token(
    buildkite_emulator: BuildkiteEmulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password something\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with client_for(buildkite_emulator) as client:
        client.queue_metrics("default")
    [request] = buildkite_emulator.control.agent_requests()
    assert request.authorized
