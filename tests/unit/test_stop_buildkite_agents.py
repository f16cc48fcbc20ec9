"""StopBuildkiteAgents: drains a replaced group and always answers CloudFormation.

AWS is moto (in-process). The CloudFormation response URL is the `endpoint` fixture
(tests/unit/conftest.py): an HTTPS server on 127.0.0.1 that captures each PUT body so the test can
check it is a response CloudFormation accepts.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from agent_scaler.config import Settings
from agent_scaler.evaluation import Scaler
from agent_scaler.policy import ScalerConfig
from aws_lambda_powertools import Logger
from buildkite_api import QueueMetrics

from tools.testing.autoscaling import create_group, describe_group, group_names
from tools.testing.cloudformation import (
    REGION,
    FakeLambdaContext,
    assert_cloudformation_response,
    invoke_handler,
    load_event,
)
from tools.testing.faults import failing_calls, slow_calls

CONTEXT = FakeLambdaContext(
    function_name="StopBuildkiteAgentsFunction",
    aws_request_id="7d1e0b3c-0000-4000-8000-00000000abcd",
    remaining_ms=120_000,
)


@pytest.fixture
def handler_module() -> str:
    return "stop_buildkite_agents.handler"


@pytest.fixture
def sent_commands(handler: ModuleType) -> Iterator[list[dict[str, Any]]]:
    """The SendCommand requests the function makes, as it made them.

    Read from the request rather than from moto's ListCommands: moto adds every instance in the
    account to a command sent without Targets, so it cannot show which instances were asked.
    """
    requests: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(copy.deepcopy(params))

    client = handler.aws_clients.ssm()
    client.meta.events.register("before-parameter-build.ssm.SendCommand", record, "record-sends")
    yield requests
    client.meta.events.unregister(
        "before-parameter-build.ssm.SendCommand", unique_id="record-sends"
    )


def make_group(autoscaling: Any, name: str, instances: int, min_size: int = 1) -> list[str]:
    """A group running `instances` instances; returns their ids."""
    return create_group(
        autoscaling,
        name,
        min_size=min(min_size, instances),
        max_size=max(instances, 1) * 2,
        desired=instances,
    )


def capacity(autoscaling: Any, name: str) -> tuple[int, int]:
    group = describe_group(autoscaling, name)
    return group["MinSize"], group["DesiredCapacity"]


def instances_asked_to_stop(sent: list[dict[str, Any]]) -> list[str]:
    return [instance for command in sent for instance in command["InstanceIds"]]


# --- behaviour ----------------------------------------------------------------------------------
def test_create_records_the_group_and_changes_nothing(
    handler, autoscaling, endpoint, sent_commands
):
    event = load_event("stop_agents_create.json", endpoint)
    group, _ = group_names(event)
    make_group(autoscaling, group, instances=2, min_size=1)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert capacity(autoscaling, group) == (1, 2)
    assert sent_commands == []


def test_update_of_a_replaced_group_drains_the_old_group_only(
    handler, autoscaling, endpoint, sent_commands
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    new_group, old_group = group_names(event)
    assert old_group
    assert old_group != new_group
    old_instances = make_group(autoscaling, old_group, instances=3, min_size=2)
    new_instances = make_group(autoscaling, new_group, instances=2, min_size=1)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == new_group
    assert capacity(autoscaling, old_group) == (0, 0)
    assert capacity(autoscaling, new_group) == (1, 2)
    assert sorted(instances_asked_to_stop(sent_commands)) == sorted(old_instances)
    assert not set(instances_asked_to_stop(sent_commands)) & set(new_instances)
    (command,) = sent_commands
    assert command["DocumentName"] == "AWS-RunShellScript"
    script = " ".join(command["Parameters"]["commands"])
    assert "systemctl stop" in script
    assert "buildkite-agent" in script
    # A graceful stop: never a kill, never a forced power-off.
    assert not {"kill", "poweroff", "shutdown", "terminate"} & set(script.split())
    assert command["MaxErrors"] == "100%", "one unreachable instance must not stop the rest"


def test_the_scaler_still_pointed_at_a_drained_group_cannot_raise_it_again(
    handler, autoscaling, endpoint, sent_commands
):
    """Until its function is updated, the scaler evaluates the old group: it must stay at 0."""
    event = load_event("stop_agents_update_replaced.json", endpoint)
    new_group, old_group = group_names(event)
    make_group(autoscaling, old_group, instances=2, min_size=1)
    make_group(autoscaling, new_group, instances=1, min_size=1)

    response = invoke_handler(handler, event, endpoint, CONTEXT)
    assert_cloudformation_response(response, event, "SUCCESS")
    assert describe_group(autoscaling, old_group)["MaxSize"] == 0

    scaler = Scaler(
        settings=Settings(
            queue="default",
            agent_endpoint="http://127.0.0.1:9/v3",
            token_parameter="/buildkite/agent-token",
            auto_scaling_group_name=old_group,
            scaler=ScalerConfig(max_size=10),
        ),
        metrics_reader=JobsWaiting(),  # type: ignore[arg-type]
        autoscaling=autoscaling,
        ec2=boto3.client("ec2", region_name=REGION),
        logger=Logger(service="agent-scaler-old-group"),
    )
    evaluation = scaler.evaluate()

    assert evaluation.decision.desired_capacity is None
    assert describe_group(autoscaling, old_group)["DesiredCapacity"] == 0


class JobsWaiting:
    """The agent API with 5 scheduled jobs and no agents."""

    def read(self, _queue: str) -> QueueMetrics:
        return QueueMetrics(
            scheduled_jobs=5,
            running_jobs=0,
            waiting_jobs=0,
            idle_agents=0,
            busy_agents=0,
            total_agents=0,
            organization_slug="acme",
            cluster_name=None,
            poll_interval_s=10.0,
            fetched_at=0.0,
        )


def test_more_than_fifty_instances_are_asked_in_batches_of_at_most_fifty(
    handler, autoscaling, endpoint, sent_commands
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    new_group, old_group = group_names(event)
    old_instances = make_group(autoscaling, old_group, instances=120)
    make_group(autoscaling, new_group, instances=0)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert len(sent_commands) == 3
    assert all(1 <= len(command["InstanceIds"]) <= 50 for command in sent_commands)
    asked = instances_asked_to_stop(sent_commands)
    assert len(asked) == len(set(asked)), "an instance was asked twice"
    assert sorted(asked) == sorted(old_instances)
    listed = boto3.client("ssm", region_name=REGION).list_commands()["Commands"]
    assert len(listed) == 3


def test_update_of_the_same_group_changes_nothing(handler, autoscaling, endpoint, sent_commands):
    event = load_event("stop_agents_update_same_group.json", endpoint)
    group, old_group = group_names(event)
    assert old_group == group
    make_group(autoscaling, group, instances=2, min_size=1)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert capacity(autoscaling, group) == (1, 2)
    assert sent_commands == []


def test_a_missing_old_group_is_nothing_to_drain(handler, autoscaling, endpoint, sent_commands):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    new_group, _ = group_names(event)
    make_group(autoscaling, new_group, instances=1)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == new_group
    assert sent_commands == []


def test_an_old_group_without_instances_gets_no_command(
    handler, autoscaling, endpoint, sent_commands
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    _, old_group = group_names(event)
    make_group(autoscaling, old_group, instances=0)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert capacity(autoscaling, old_group) == (0, 0)
    assert sent_commands == []


def test_delete_leaves_the_group_alone(handler, autoscaling, endpoint, sent_commands):
    event = load_event("stop_agents_delete.json", endpoint)
    group = event["PhysicalResourceId"]
    make_group(autoscaling, group, instances=2, min_size=1)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert capacity(autoscaling, group) == (1, 2)
    assert sent_commands == []


def test_delete_succeeds_when_the_group_is_already_gone(handler, endpoint, sent_commands):
    event = load_event("stop_agents_delete.json", endpoint)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == event["PhysicalResourceId"]


def test_update_without_a_group_name_fails_with_the_reason(handler, endpoint, sent_commands):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    del event["ResourceProperties"]["AutoScalingGroupName"]

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "FAILED")
    assert "AutoScalingGroupName" in response.body["Reason"]
    # A failed Update keeps the resource's current physical id.
    assert response.body["PhysicalResourceId"] == event["PhysicalResourceId"]


@pytest.fixture
def failing_send_command(handler: ModuleType) -> Iterator[None]:
    """SendCommand answers AccessDenied, as it would without the IAM permission."""
    client = handler.aws_clients.ssm()
    message = "not authorized to SendCommand"
    with failing_calls(client, "SendCommand", "AccessDeniedException", message, status=400):
        yield


def test_an_aws_error_fails_the_resource_with_its_message(
    handler, autoscaling, endpoint, failing_send_command
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    _, old_group = group_names(event)
    make_group(autoscaling, old_group, instances=2)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "FAILED")
    assert "AccessDeniedException" in response.body["Reason"]


@pytest.fixture
def first_batch_unmanaged(handler: ModuleType) -> Iterator[None]:
    """The first SendCommand is refused: an instance of that batch is not managed by SSM yet."""
    client = handler.aws_clients.ssm()
    message = "Instances not in a valid state"
    with failing_calls(client, "SendCommand", "InvalidInstanceId", message, status=400, first=1):
        yield


def test_a_batch_ssm_cannot_reach_does_not_stop_the_other_batches(
    handler, autoscaling, endpoint, sent_commands, first_batch_unmanaged
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    _, old_group = group_names(event)
    old_instances = make_group(autoscaling, old_group, instances=120)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    # Those agents are drained by the lifecycle hook when the old group is deleted.
    assert_cloudformation_response(response, event, "SUCCESS")
    assert capacity(autoscaling, old_group) == (0, 0)
    assert len(sent_commands) == 3
    assert sorted(instances_asked_to_stop(sent_commands)) == sorted(old_instances)
    listed = boto3.client("ssm", region_name=REGION).list_commands()["Commands"]
    assert len(listed) == 2


@pytest.fixture
def slow_describe(handler: ModuleType) -> Iterator[None]:
    """DescribeAutoScalingGroups hangs for longer than the function has left."""
    with slow_calls(handler.aws_clients.autoscaling(), "DescribeAutoScalingGroups", 1.5):
        yield


def test_a_hung_call_still_answers_before_the_function_times_out(
    handler, autoscaling, endpoint, slow_describe
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    _, old_group = group_names(event)
    make_group(autoscaling, old_group, instances=1)
    remaining_seconds = 1.0
    about_to_time_out = dataclasses.replace(CONTEXT, remaining_ms=1000)

    first = invoke_handler(handler, event, endpoint, about_to_time_out)

    assert_cloudformation_response(first, event, "FAILED")
    assert "timed out" in first.body["Reason"]
    assert first.body["PhysicalResourceId"] == event["PhysicalResourceId"]
    assert first.seconds_after_start < remaining_seconds
