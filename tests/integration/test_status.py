"""``python -m tools.status`` against moto in server mode and the Buildkite emulator.

The fleet stack is the real nested/fleet.yaml, created in moto the way the demo creates it; the
scaler's log lines come from the real scaler evaluating against the same servers, shipped into
its log group as Lambda would.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from agent_scaler.config import Settings
from agent_scaler.evaluation import Scaler
from agent_scaler.policy import ScalerConfig
from agent_scaler.queue_metrics import QueueMetricsReader
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parameters import SSMProvider

from tools.demo.endpoints import AWS_REGION, Endpoints, running_endpoints
from tools.demo.scaler_log import ship_scaler_log
from tools.demo.stacks import Deployment, FleetParameters, deploy
from tools.status.cli import main

pytestmark = pytest.mark.integration

PREFIX = "ci"
QUEUE = "default"
MAX_SIZE = 4
# template.yaml names the scheduled scaler's log group after the root stack.
SCALER_LOG_GROUP = f"/aws/lambda/{PREFIX}-agent-scaler"


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[Endpoints, Deployment, str]]:
    token = secrets.token_hex(20)
    with running_endpoints(token) as endpoints:
        parameters = FleetParameters(
            parent_stack_name=PREFIX,
            queue=QUEUE,
            agent_endpoint=endpoints.emulator.url,
            agents_per_instance=2,
            max_size=MAX_SIZE,
            scale_in_idle_period=300,
        )
        deployment = deploy(endpoints.client, parameters, token, lambda _line: None)
        yield endpoints, deployment, token


@pytest.fixture
def aws_environment(fleet, monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    endpoints, _deployment, _token = fleet
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in endpoints.aws_environment().items():
        monkeypatch.setenv(name, value)
    return endpoints


def evaluate_once(endpoints: Endpoints, deployment: Deployment) -> list[str]:
    """Run the real scaler once; return its log lines."""
    output = io.StringIO()
    logger = Logger(
        service=f"agent-scaler-status-{uuid.uuid4().hex}",
        logger_handler=logging.StreamHandler(output),
    )
    settings = Settings(
        queue=QUEUE,
        agent_endpoint=endpoints.emulator.url,
        token_parameter=deployment.token_parameter,
        auto_scaling_group_name=deployment.group_name,
        scaler=ScalerConfig(agents_per_instance=2, max_size=MAX_SIZE),
    )
    reader = QueueMetricsReader(
        endpoints.emulator.url,
        deployment.token_parameter,
        SSMProvider(boto3_client=endpoints.client("ssm")),
    )
    Scaler(
        settings=settings,
        metrics_reader=reader,
        autoscaling=endpoints.client("autoscaling"),
        ec2=endpoints.client("ec2"),
        logger=logger,
    ).evaluate()
    return [line for line in output.getvalue().splitlines() if line.strip()]


def alarm(endpoints: Endpoints, name: str, state: str) -> None:
    cloudwatch = endpoints.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmDescription=f"{name} means trouble. First: look.",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"{name} test state")


def run_status(*arguments: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--stack", f"{PREFIX}-fleet", "--region", AWS_REGION, *arguments], out=out)
    return code, out.getvalue()


def test_status_shows_queue_group_decisions_alarms_and_settings(fleet, aws_environment):
    endpoints, deployment, token = fleet
    endpoints.emulator.control.set_counts(QUEUE, scheduled_jobs=5, running_jobs=1, busy_agents=1)
    ship_scaler_log(
        endpoints.client("logs"), SCALER_LOG_GROUP, evaluate_once(endpoints, deployment)
    )
    # The monitoring stack's alarms (created in moto with the fleet); one of them fires.
    endpoints.client("cloudwatch").set_alarm_state(
        AlarmName=f"{PREFIX}-capacity-capped", StateValue="ALARM", StateReason="capped in test"
    )
    alarm(endpoints, "another-stack-capacity-capped", "ALARM")

    code, printed = run_status("--json")
    assert code == 0, printed
    snapshot: dict[str, Any] = json.loads(printed)
    assert snapshot["errors"] == []
    assert snapshot["queue"]["jobs"] == {"scheduled": 5, "running": 1, "waiting": 0}
    assert snapshot["queue"]["agents"]["busy"] == 1
    # 6 jobs need 3 instances of 2 agents: the scaler's decision, seen in the group and its log.
    assert snapshot["group"]["name"] == deployment.group_name
    assert (snapshot["group"]["desired"], snapshot["group"]["max"]) == (3, MAX_SIZE)
    assert sum(snapshot["group"]["instances"].values()) == 3
    assert snapshot["warm_pool"] is None
    (decision,) = snapshot["decisions"]
    assert decision["summary"] == f"Scaling evaluation for queue '{QUEUE}': scale out 0 -> 3"
    assert decision["desired_capacity"] == 3
    assert any("scale out" in reason for reason in decision["reasons"])
    assert snapshot["alarms"]["total"] == 5
    (firing,) = snapshot["alarms"]["in_alarm"]
    assert (firing["name"], firing["reason"]) == (f"{PREFIX}-capacity-capped", "capped in test")
    assert "raise MaxSize" in firing["what_to_do"]
    assert snapshot["settings"]["MaxSize"] == str(MAX_SIZE)
    assert snapshot["settings"]["AgentsPerInstance"] == "2"
    assert snapshot["settings"]["ScaleInIdlePeriod"] == "300"
    assert token not in printed

    code, text = run_status()
    assert code == 0
    assert "Alarms     1 in ALARM (of 5)" in text
    assert f"{PREFIX}-capacity-capped  since" in text
    assert "First: compare the dashboard's scheduled jobs" in text
    assert "jobs     scheduled 5  running 1  waiting 0" in text
    assert "capacity desired 3  min 0  max 4" in text
    assert "scale out 0 -> 3" in text
    assert "MaxSize 4" in text
    assert "AgentsPerInstance 2" in text
    assert token not in text


def test_the_last_capacity_change_stays_visible_behind_later_evaluations(fleet, aws_environment):
    endpoints, deployment, _token = fleet
    endpoints.emulator.control.set_counts(QUEUE, scheduled_jobs=9, running_jobs=0, busy_agents=0)
    lines = evaluate_once(endpoints, deployment)  # 9 jobs, 2 per instance: MaxSize 4
    for _ in range(6):
        lines += evaluate_once(endpoints, deployment)  # nothing more to do
    ship_scaler_log(endpoints.client("logs"), SCALER_LOG_GROUP, lines)

    code, printed = run_status("--json")
    assert code == 0, printed
    snapshot = json.loads(printed)
    assert len(snapshot["decisions"]) == 5
    assert all(d["capacity_change"] == 0 for d in snapshot["decisions"])
    assert snapshot["last_change"]["summary"].endswith("-> 4")
    assert snapshot["last_change"]["capacity_change"] > 0
    _code, text = run_status()
    assert text.index("last capacity change:") < text.index("since then:")


def test_status_shows_the_warm_pool_when_there_is_one(fleet, aws_environment):
    endpoints, deployment, _token = fleet
    autoscaling = endpoints.client("autoscaling")
    autoscaling.put_warm_pool(
        AutoScalingGroupName=deployment.group_name, MinSize=1, PoolState="Stopped"
    )
    try:
        code, printed = run_status("--json")
        assert code == 0, printed
        warm_pool = json.loads(printed)["warm_pool"]
        assert warm_pool is not None, printed
        assert (warm_pool["min_size"], warm_pool["pool_state"]) == (1, "Stopped")
        code, text = run_status()
        assert code == 0
        assert "warm pool Stopped, min 1" in text
    finally:
        autoscaling.delete_warm_pool(AutoScalingGroupName=deployment.group_name, ForceDelete=True)


def test_an_unreadable_part_is_reported_and_the_rest_still_shown(fleet, aws_environment):
    endpoints, deployment, _token = fleet
    endpoints.emulator.control.add_fault("metrics_queue", status=500, count=None)
    try:
        code, printed = run_status("--json")
    finally:
        endpoints.emulator.control.clear_faults()
    snapshot = json.loads(printed)
    assert code == 1
    assert snapshot["queue"] is None
    assert [error.split(":", 1)[0] for error in snapshot["errors"]] == ["queue metrics"]
    assert snapshot["group"]["name"] == deployment.group_name


def test_an_unknown_stack_is_a_clear_error(aws_environment, capsys):
    out = io.StringIO()
    code = main(["--stack", "no-such-stack", "--region", AWS_REGION], out=out)
    assert code == 1
    assert "no-such-stack" in capsys.readouterr().err
    assert out.getvalue() == ""
