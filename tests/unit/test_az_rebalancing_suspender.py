"""AzRebalancingSuspender: suspends AZRebalance on Create/Update and always answers CloudFormation.

AWS is moto (in-process). The CloudFormation response URL is the `endpoint` fixture
(tests/unit/conftest.py): an HTTPS server on 127.0.0.1 that captures each PUT body so the test can
check it is a response CloudFormation accepts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tools.testing.autoscaling import create_group, describe_group, group_names
from tools.testing.cloudformation import (
    FakeLambdaContext,
    assert_cloudformation_response,
    invoke_handler,
    load_event,
)
from tools.testing.faults import failing_calls, slow_calls

CONTEXT = FakeLambdaContext(
    function_name="AzRebalancingSuspenderFunction",
    aws_request_id="2c8e4f2a-0000-4000-8000-00000000abcd",
    remaining_ms=60_000,
)


@pytest.fixture
def handler_module() -> str:
    return "az_rebalancing_suspender.handler"


def make_group(autoscaling: Any, name: str) -> None:
    create_group(autoscaling, name, min_size=0, max_size=4, desired=1)


def suspended_processes(autoscaling: Any, name: str) -> set[str]:
    group = describe_group(autoscaling, name)
    return {process["ProcessName"] for process in group["SuspendedProcesses"]}


# --- behaviour ----------------------------------------------------------------------------------
def test_create_suspends_az_rebalance_and_names_the_group(handler, autoscaling, endpoint):
    event = load_event("az_rebalancing_create.json", endpoint)
    group, _ = group_names(event)
    make_group(autoscaling, group)
    assert suspended_processes(autoscaling, group) == set()

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert suspended_processes(autoscaling, group) == {"AZRebalance"}
    assert len(endpoint.responses) == 1


def test_update_for_a_replaced_group_suspends_the_new_group(handler, autoscaling, endpoint):
    event = load_event("az_rebalancing_update.json", endpoint)
    new_group, old_group = group_names(event)
    assert old_group
    assert old_group != new_group
    make_group(autoscaling, old_group)
    make_group(autoscaling, new_group)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    # A new physical id: CloudFormation then sends a Delete for the old group's id.
    assert response.body["PhysicalResourceId"] == new_group
    assert suspended_processes(autoscaling, new_group) == {"AZRebalance"}
    assert suspended_processes(autoscaling, old_group) == set()


def test_update_of_the_same_group_is_idempotent(handler, autoscaling, endpoint):
    event = load_event("az_rebalancing_update.json", endpoint)
    group, _ = group_names(event)
    event["OldResourceProperties"]["AutoScalingGroupName"] = group
    event["PhysicalResourceId"] = group
    make_group(autoscaling, group)
    autoscaling.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=["AZRebalance"])

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert suspended_processes(autoscaling, group) == {"AZRebalance"}


def test_delete_leaves_an_existing_group_untouched(handler, autoscaling, endpoint):
    event = load_event("az_rebalancing_delete.json", endpoint)
    group = event["PhysicalResourceId"]
    make_group(autoscaling, group)
    autoscaling.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=["AZRebalance"])

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert suspended_processes(autoscaling, group) == {"AZRebalance"}


def test_delete_succeeds_when_the_group_is_already_gone(handler, endpoint):
    event = load_event("az_rebalancing_delete.json", endpoint)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == event["PhysicalResourceId"]


def test_create_for_a_missing_group_fails_with_the_reason(handler, endpoint):
    event = load_event("az_rebalancing_create.json", endpoint)
    group, _ = group_names(event)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "FAILED")
    assert group in response.body["Reason"]
    assert "not found" in response.body["Reason"]


def test_create_without_a_group_name_fails_with_the_reason(handler, endpoint):
    event = load_event("az_rebalancing_create.json", endpoint)
    del event["ResourceProperties"]["AutoScalingGroupName"]

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "FAILED")
    assert "AutoScalingGroupName" in response.body["Reason"]


@pytest.fixture
def failing_suspend(handler: ModuleType) -> Iterator[None]:
    """SuspendProcesses answers AccessDenied, as it would without the IAM permission."""
    client = handler.aws_clients.autoscaling()
    message = "not authorized to SuspendProcesses"
    with failing_calls(client, "SuspendProcesses", "AccessDenied", message, status=403):
        yield


def test_an_aws_error_fails_the_resource_with_its_message(
    handler, autoscaling, endpoint, failing_suspend
):
    event = load_event("az_rebalancing_create.json", endpoint)
    group, _ = group_names(event)
    make_group(autoscaling, group)

    response = invoke_handler(handler, event, endpoint, CONTEXT)

    assert_cloudformation_response(response, event, "FAILED")
    assert "AccessDenied" in response.body["Reason"]
    assert suspended_processes(autoscaling, group) == set()


@pytest.fixture
def slow_suspend(handler: ModuleType) -> Iterator[float]:
    """SuspendProcesses hangs for longer than the function has left."""
    hang_seconds = 1.5
    with slow_calls(handler.aws_clients.autoscaling(), "SuspendProcesses", hang_seconds):
        yield hang_seconds


def test_a_hung_call_still_answers_before_the_function_times_out(
    handler, autoscaling, endpoint, slow_suspend
):
    event = load_event("az_rebalancing_create.json", endpoint)
    group, _ = group_names(event)
    make_group(autoscaling, group)
    remaining_seconds = 1.0
    about_to_time_out = dataclasses.replace(CONTEXT, remaining_ms=1000)

    first = invoke_handler(handler, event, endpoint, about_to_time_out)

    assert_cloudformation_response(first, event, "FAILED")
    assert "timed out" in first.body["Reason"]
    assert first.seconds_after_start < remaining_seconds
