"""The scaler's settings from environment variables, and its state tags."""

from __future__ import annotations

import pytest
from agent_scaler import demand
from agent_scaler.config import DEFAULT_AGENT_ENDPOINT, settings_from_env
from agent_scaler.policy import ConfigError, ScalerConfig, ScalerState
from agent_scaler.state_tags import (
    DEMAND_PEAKS_TAG,
    LAST_SCALE_IN_TAG,
    LAST_SCALE_OUT_TAG,
    format_time,
    state_from_tags,
    tag_updates,
)

REQUIRED = {
    "BUILDKITE_QUEUE": "default",
    "BUILDKITE_AGENT_TOKEN_PARAMETER": "/buildkite/agent-token",
    "AUTO_SCALING_GROUP_NAME": "fleet",
}
NOW = 1_724_051_327.5


def test_defaults_are_the_stack_parameter_defaults() -> None:
    settings = settings_from_env(REQUIRED)
    assert settings.queue == "default"
    assert settings.agent_endpoint == DEFAULT_AGENT_ENDPOINT
    assert settings.token_parameter == "/buildkite/agent-token"
    assert settings.auto_scaling_group_name == "fleet"
    assert settings.scaler == ScalerConfig(
        agents_per_instance=1,
        min_size=0,
        max_size=10,
        instance_buffer=0,
        scale_out_factor=1.0,
        scale_out_for_waiting_jobs=False,
        scale_in_idle_period=600,
        disable_scale_in=True,
        scale_out_cooldown_period=0,
        scale_in_cooldown_period=3600,
        poll_interval=10,
    )


def test_every_variable_is_read() -> None:
    settings = settings_from_env(
        {
            **REQUIRED,
            "BUILDKITE_AGENT_TOKEN_PARAMETER": (
                "arn:aws:ssm:us-east-1:123456789012:parameter/shared/token"
            ),
            "BUILDKITE_AGENT_ENDPOINT": "http://127.0.0.1:8080/v3",
            "AGENTS_PER_INSTANCE": "4",
            "MIN_SIZE": "1",
            "MAX_SIZE": "20",
            "INSTANCE_BUFFER": "2",
            "SCALE_OUT_FACTOR": "0.5",
            "SCALE_OUT_FOR_WAITING_JOBS": "TRUE",
            "SCALE_IN_IDLE_PERIOD": "300",
            "DISABLE_SCALE_IN": "False",
            "SCALE_OUT_COOLDOWN_PERIOD": "60",
            "SCALE_IN_COOLDOWN_PERIOD": "120",
            "POLL_INTERVAL": "5",
        }
    )
    assert settings.token_parameter.endswith(":parameter/shared/token")
    assert settings.agent_endpoint == "http://127.0.0.1:8080/v3"
    assert settings.scaler == ScalerConfig(
        agents_per_instance=4,
        min_size=1,
        max_size=20,
        instance_buffer=2,
        scale_out_factor=0.5,
        scale_out_for_waiting_jobs=True,
        scale_in_idle_period=300,
        disable_scale_in=False,
        scale_out_cooldown_period=60,
        scale_in_cooldown_period=120,
        poll_interval=5,
    )


def test_issue_16_settings_default_to_a_demand_window_no_pool_and_looping() -> None:
    settings = settings_from_env(REQUIRED)
    assert settings.scaler.scale_in_demand_window == 600
    assert settings.scaler.drains_wait_for_jobs is True
    assert settings.scaler.size_warm_pool is False
    assert settings.warm_pool_enabled is False
    assert settings.poll_within_invocation is True


@pytest.mark.parametrize(
    ("enabled", "max_prepared", "size_warm_pool"),
    [
        ("true", None, True),  # -1 by default: the scaler sizes the pool
        ("true", "-1", True),
        ("true", "0", False),  # fixed by the stack
        ("true", "12", False),
        ("false", "-1", False),  # no pool, nothing to size
    ],
)
def test_the_scaler_sizes_the_warm_pool_only_when_it_is_on_and_not_fixed(
    enabled: str, max_prepared: str | None, size_warm_pool: bool
) -> None:
    environ = {**REQUIRED, "WARM_POOL_ENABLED": enabled}
    if max_prepared is not None:
        environ["WARM_POOL_MAX_PREPARED_CAPACITY"] = max_prepared
    settings = settings_from_env(environ)
    assert settings.warm_pool_enabled is (enabled == "true")
    assert settings.scaler.size_warm_pool is size_warm_pool


def test_demand_window_zero_and_once_per_invocation_are_read() -> None:
    settings = settings_from_env(
        {**REQUIRED, "SCALE_IN_DEMAND_WINDOW": "0", "POLL_WITHIN_INVOCATION": "False"}
    )
    assert settings.scaler.scale_in_demand_window == 0
    assert settings.poll_within_invocation is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"BUILDKITE_QUEUE": ""}, "BUILDKITE_QUEUE is required"),
        ({"AUTO_SCALING_GROUP_NAME": None}, "AUTO_SCALING_GROUP_NAME is required"),
        ({"BUILDKITE_AGENT_TOKEN_PARAMETER": " "}, "BUILDKITE_AGENT_TOKEN_PARAMETER is required"),
        ({"MAX_SIZE": "ten"}, "MAX_SIZE must be an integer (got 'ten')"),
        ({"SCALE_OUT_FACTOR": "inf"}, "SCALE_OUT_FACTOR must be a finite number (got 'inf')"),
        ({"DISABLE_SCALE_IN": "yes"}, "DISABLE_SCALE_IN must be true or false (got 'yes')"),
        ({"MIN_SIZE": "5", "MAX_SIZE": "3"}, "MinSize (5) must not exceed MaxSize (3)"),
        ({"AGENTS_PER_INSTANCE": "0"}, "AgentsPerInstance must be an integer >= 1 (got 0)"),
        ({"BUILDKITE_AGENT_ENDPOINT": "agent.buildkite.com"}, "must be an http(s) URL"),
        (
            {"SCALE_IN_DEMAND_WINDOW": "-60"},
            "SCALE_IN_DEMAND_WINDOW must be a number of seconds from 0 (off) to 3600 (got -60)",
        ),
        (
            {"SCALE_IN_DEMAND_WINDOW": "7200"},
            "SCALE_IN_DEMAND_WINDOW must be a number of seconds from 0 (off) to 3600 (got 7200)",
        ),
        (
            {"SCALE_IN_DEMAND_WINDOW": "ten minutes"},
            "SCALE_IN_DEMAND_WINDOW must be a finite number (got 'ten minutes')",
        ),
        ({"WARM_POOL_ENABLED": "on"}, "WARM_POOL_ENABLED must be true or false (got 'on')"),
        (
            {"WARM_POOL_MAX_PREPARED_CAPACITY": "-2"},
            "WARM_POOL_MAX_PREPARED_CAPACITY must be -1 (the scaler sizes the warm pool) or an "
            "integer >= 0 (got -2)",
        ),
        (
            {"WARM_POOL_MAX_PREPARED_CAPACITY": "auto"},
            "WARM_POOL_MAX_PREPARED_CAPACITY must be an integer (got 'auto')",
        ),
        (
            {"POLL_WITHIN_INVOCATION": "no"},
            "POLL_WITHIN_INVOCATION must be true or false (got 'no')",
        ),
    ],
)
def test_bad_settings_are_named(change: dict[str, str | None], message: str) -> None:
    environ = {**REQUIRED, **change}
    environ = {name: value for name, value in environ.items() if value is not None}
    with pytest.raises(ConfigError) as raised:
        settings_from_env(environ)
    assert message in str(raised.value)


# --- state tags -----------------------------------------------------------------------------------


def test_state_round_trips_through_tags() -> None:
    state = ScalerState(last_scale_out_at=NOW, last_scale_in_at=NOW - 600)
    tags = {update["Key"]: update["Value"] for update in tag_updates("fleet", {}, state)}
    assert tags == {
        LAST_SCALE_OUT_TAG: "2024-08-19T07:08:47.500Z",
        LAST_SCALE_IN_TAG: "2024-08-19T06:58:47.500Z",
    }
    read = state_from_tags(tags, NOW)
    assert read.state == state
    assert read.problems == ()
    assert tag_updates("fleet", tags, read.state) == []


def test_missing_tags_mean_never() -> None:
    assert state_from_tags({}, NOW).state == ScalerState()


def test_only_changed_fields_are_written_without_propagation() -> None:
    tags = {LAST_SCALE_IN_TAG: format_time(NOW - 600), LAST_SCALE_OUT_TAG: format_time(NOW - 60)}
    state = ScalerState(last_scale_out_at=NOW, last_scale_in_at=NOW - 600)
    assert tag_updates("fleet", tags, state) == [
        {
            "ResourceId": "fleet",
            "ResourceType": "auto-scaling-group",
            "Key": LAST_SCALE_OUT_TAG,
            "Value": format_time(NOW),
            "PropagateAtLaunch": False,
        }
    ]


def test_unreadable_tags_are_read_in_the_direction_that_cannot_hurt_a_job() -> None:
    read = state_from_tags({LAST_SCALE_OUT_TAG: "soon", LAST_SCALE_IN_TAG: "2024-08-19"}, NOW)
    # scale-out: never (no cooldown blocks a scale-out); scale-in: just now (no early drain)
    assert read.state == ScalerState(last_scale_out_at=None, last_scale_in_at=NOW)
    assert len(read.problems) == 2
    assert all("fix or delete the tag" in problem for problem in read.problems)


def test_demand_history_round_trips_through_one_short_tag() -> None:
    horizon = 3600 * 4  # the longest: ScaleInDemandWindow 3600 with the warm pool sized
    peaks: tuple[tuple[float, int], ...] = ()
    for second in range(0, 20_000, 10):
        peaks = demand.record(peaks, NOW - 20_000 + second, 1000 + second % 9000, horizon)
    state = ScalerState(demand_peaks=peaks)
    (update,) = tag_updates("fleet", {}, state)
    assert update["Key"] == DEMAND_PEAKS_TAG
    assert len(update["Value"]) <= 256
    read = state_from_tags({DEMAND_PEAKS_TAG: update["Value"]}, NOW)
    assert read.state == state
    assert tag_updates("fleet", {DEMAND_PEAKS_TAG: update["Value"]}, read.state) == []


@pytest.mark.parametrize("value", ["", "12", "1/2", "1/a:3", "1/0:-1", "1/0:3,x"])
def test_an_unreadable_demand_history_reads_as_none(value: str) -> None:
    read = state_from_tags({DEMAND_PEAKS_TAG: value}, NOW)
    assert read.state.demand_peaks == ()
    assert "fix or delete the tag" in read.problems[0]


def test_demand_window_is_limited_by_what_one_tag_holds() -> None:
    with pytest.raises(ConfigError, match="ScaleInDemandWindow must be at most 3600 s"):
        ScalerConfig(scale_in_demand_window=3601)
