"""The scheduled scaler's environment, as the template renders it, parsed by the scaler itself.

Each configuration is translated and rendered (tools/testing/iam_contract.py's ContractStack)
and the AgentScalerFunction's resolved environment goes through ``settings_from_env``: what the
function would run with in that deployment.
"""

from __future__ import annotations

import pytest
from agent_scaler.config import Settings, settings_from_env

from tools.testing.iam_contract import PUSH_TRIGGER, ContractStack

TOKEN_ONLY = {"BuildkiteAgentToken": "not-a-real-token"}


def scheduled_scaler_settings(parameters: dict[str, str]) -> Settings:
    stack = ContractStack.from_template(parameters)
    function = stack.root.resources["AgentScalerFunction"]["Properties"]
    variables = stack.root.evaluate(function["Environment"]["Variables"], stack.deployment)
    return settings_from_env({name: str(value) for name, value in variables.items()})


def test_defaults_keep_a_ten_minute_demand_window_no_pool_and_the_loop() -> None:
    settings = scheduled_scaler_settings(TOKEN_ONLY)
    assert settings.scaler.scale_in_demand_window == 600
    assert settings.warm_pool_enabled is False
    assert settings.scaler.size_warm_pool is False
    assert settings.poll_within_invocation is True


def test_with_the_push_trigger_the_schedule_evaluates_once_per_invocation() -> None:
    assert scheduled_scaler_settings(PUSH_TRIGGER).poll_within_invocation is False


@pytest.mark.parametrize(
    ("max_prepared", "sized_by_the_scaler"),
    [pytest.param("-1", True, id="-1: the scaler sizes it"), pytest.param("4", False, id="fixed")],
)
def test_the_warm_pool_parameters_reach_the_scaler(
    max_prepared: str, sized_by_the_scaler: bool
) -> None:
    settings = scheduled_scaler_settings(
        {
            **TOKEN_ONLY,
            "EnableWarmPool": "true",
            "WarmPoolMaxPreparedCapacity": max_prepared,
            "ScaleInDemandWindow": "0",
        }
    )
    assert settings.warm_pool_enabled is True
    assert settings.scaler.size_warm_pool is sized_by_the_scaler
    assert settings.scaler.scale_in_demand_window == 0
