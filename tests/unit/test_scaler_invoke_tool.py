"""The local runner's pieces: sam-style env files, the environment patch, the Lambda context."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tools.invoke_scaler import LocalContext, environment, invoke, load_env_vars

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_env_file_merges_parameters_with_the_function_section(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text(
        json.dumps(
            {
                "Parameters": {"SHARED": "all", "MAX_SIZE": 10},
                "AgentScalerFunction": {"MAX_SIZE": "3"},
                "Other": {"IGNORED": "x"},
            }
        )
    )
    assert load_env_vars(path, "AgentScalerFunction") == {"SHARED": "all", "MAX_SIZE": "3"}


def test_the_sample_env_file_configures_both_scaler_functions() -> None:
    for function in ("AgentScalerFunction", "AgentScalerPushFunction"):
        env = load_env_vars(EVENTS / "env.json", function)
        assert env["BUILDKITE_QUEUE"] == "default"
        assert env["AUTO_SCALING_GROUP_NAME"]


def test_environment_is_restored_after_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCALER_TOOL_KEPT", "before")
    monkeypatch.delenv("SCALER_TOOL_ADDED", raising=False)

    def handler(event: dict[str, str], context: LocalContext) -> tuple[str, str, str]:
        return (
            os.environ["SCALER_TOOL_KEPT"],
            os.environ["SCALER_TOOL_ADDED"],
            context.function_name,
        )

    result = invoke(handler, {}, {"SCALER_TOOL_KEPT": "during", "SCALER_TOOL_ADDED": "yes"})
    assert result == ("during", "yes", "AgentScalerFunction")
    assert os.environ["SCALER_TOOL_KEPT"] == "before"
    assert "SCALER_TOOL_ADDED" not in os.environ

    with pytest.raises(RuntimeError), environment({"SCALER_TOOL_ADDED": "x"}):
        raise RuntimeError
    assert "SCALER_TOOL_ADDED" not in os.environ


def test_context_counts_down_from_its_deadline() -> None:
    now = {"t": 100.0}
    context = LocalContext(function_name="f", deadline_s=120, clock=lambda: now["t"])
    assert context.get_remaining_time_in_millis() == 120_000
    now["t"] += 30.5
    assert context.get_remaining_time_in_millis() == 89_500
    now["t"] += 500
    assert context.get_remaining_time_in_millis() == 0
    assert context.invoked_function_arn.endswith(":function:f")
    assert context.aws_request_id
