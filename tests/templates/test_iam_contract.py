"""The IAM contract: every role in the translated root template allows what its function does.

The root template is translated with SAM's own translator and rendered for a configuration
(tools/testing/iam_contract.py). The calls are the ones the function packages made while this
session's other tests ran, recorded by tests/conftest.py (tools/testing/aws_calls.py); this
module runs after all of them. Run alone it has nothing to check and fails, saying so: run it
with the function tests (`make test`, or `pytest tests`).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tools.cfn_template import load_template
from tools.testing.aws_calls import AwsCall, AwsCallRecorder
from tools.testing.iam import Request, allows
from tools.testing.iam_contract import (
    CONFIGURATION_CALLS,
    PUSH_TRIGGER,
    REPOSITORY,
    ContractStack,
    call_violations,
    functions_without_calls,
    lambda_service_violations,
)

CONFIGURATIONS = {
    "push trigger": PUSH_TRIGGER,
    "customer managed token key": {
        **PUSH_TRIGGER,
        "BuildkiteAgentTokenParameterStoreKMSKey": "1234abcd-12ab-34cd-56ef-1234567890ab",
    },
    "warm pool": {**PUSH_TRIGGER, "EnableWarmPool": "true"},
}


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def stack(request: pytest.FixtureRequest) -> ContractStack:
    return ContractStack.from_template(CONFIGURATIONS[request.param])


@pytest.fixture(scope="module")
def calls(recorded_aws_calls: AwsCallRecorder) -> list[AwsCall]:
    return list(recorded_aws_calls.calls)


def test_the_push_trigger_configuration_has_every_function(stack: ContractStack) -> None:
    assert {f.handler for f in stack.functions().values()} == {
        "agent_scaler.handler.lambda_handler",
        "agent_scaler.handler.push_handler",
        "agent_token.handler.lambda_handler",
        "az_rebalancing_suspender.handler.lambda_handler",
        "stop_buildkite_agents.handler.lambda_handler",
    }


def test_every_function_made_recorded_calls(stack: ContractStack, calls: list[AwsCall]) -> None:
    missing = functions_without_calls(stack, calls)
    assert not missing, (
        f"no AWS call was recorded from the handler of {', '.join(missing)}: the contract checks "
        "the calls the function tests make in this session; run it with them (make test, or "
        "pytest tests)"
    )


def test_every_recorded_call_is_allowed_by_the_callers_role(
    stack: ContractStack, calls: list[AwsCall]
) -> None:
    assert calls, "nothing was recorded"
    assert call_violations(stack, calls) == []


def test_lambda_can_poll_every_event_source_and_write_logs_and_traces(
    stack: ContractStack,
) -> None:
    assert stack.root.of_type("AWS::Lambda::EventSourceMapping"), "no event source to check"
    assert lambda_service_violations(stack) == []


def test_the_warm_pool_calls_were_recorded_and_are_checked_with_the_pool(
    calls: list[AwsCall],
) -> None:
    """The configuration-only calls are not waved through: the pool configuration checks them."""
    made = {(call.service, call.operation) for call in calls}
    assert set(CONFIGURATION_CALLS) <= made, "the scaler tests made no warm pool call"
    with_pool = ContractStack.from_template(CONFIGURATIONS["warm pool"])
    without_pool = ContractStack.from_template(PUSH_TRIGGER)
    pool_calls = [c for c in calls if (c.service, c.operation) in CONFIGURATION_CALLS]
    assert all(with_pool.makes(call) for call in pool_calls)
    assert not any(without_pool.makes(call) for call in pool_calls)


@pytest.mark.parametrize(
    ("role", "parameters", "allowed"),
    [
        pytest.param("AgentScalerRole", CONFIGURATIONS["warm pool"], True, id="scaler, pool"),
        pytest.param("AgentScalerRole", PUSH_TRIGGER, False, id="scaler, no pool"),
        pytest.param("AgentScalerPushRole", CONFIGURATIONS["warm pool"], False, id="push, pool"),
    ],
)
def test_only_the_scheduled_scaler_of_a_stack_with_a_pool_may_touch_it(
    role: str, parameters: dict[str, str], allowed: bool
) -> None:
    stack = ContractStack.from_template(parameters)
    context = {f"autoscaling:ResourceTag/{k}": v for k, v in stack.group_tags.items()}
    policies = stack.role_policies(role)
    assert allows(policies, Request("autoscaling:DescribeWarmPool", "*")) is allowed
    resize = Request("autoscaling:PutWarmPool", stack.group_arn, context)
    assert allows(policies, resize) is allowed
    if allowed:
        # Only this stack's group: not the pool of another group in the account.
        other = Request("autoscaling:PutWarmPool", group_arn("someone-elses-group"), context)
        assert not allows(policies, other)


# --- the contract can fail ---------------------------------------------------------------------
def without_statement(role: str, sid: str) -> dict[str, Any]:
    template = copy.deepcopy(load_template(REPOSITORY / "template.yaml"))
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    kept = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == sid)]
    assert len(kept) == len(statements) - 1, f"{role} has no statement {sid}"
    policy["PolicyDocument"]["Statement"] = kept
    return template


def test_a_push_role_without_the_queue_grant_is_found() -> None:
    """Defect 1: Lambda refused the push function's event source mapping."""
    template = without_statement("AgentScalerPushRole", "ReceiveJobScheduledEvents")
    findings = lambda_service_violations(ContractStack.from_template(PUSH_TRIGGER, template))
    assert len(findings) == 3
    assert all("AgentScalerPushFunctionJobScheduled" in finding for finding in findings)
    assert any("sqs:ReceiveMessage" in finding for finding in findings)


def test_a_recorded_call_the_role_does_not_allow_is_found() -> None:
    stack = ContractStack.from_template(
        PUSH_TRIGGER, without_statement("AgentScalerRole", "ScaleTheGroup")
    )
    scale_out = AwsCall(
        package="agent_scaler",
        entry_point="agent_scaler.handler.lambda_handler",
        service="autoscaling",
        operation="SetDesiredCapacity",
        parameters={"AutoScalingGroupName": "any", "DesiredCapacity": 2},
        test="example",
    )
    (finding,) = call_violations(stack, [scale_out])
    assert "autoscaling:SetDesiredCapacity" in finding
    assert "AgentScalerRole" in finding


def test_a_function_without_recorded_calls_is_named() -> None:
    stack = ContractStack.from_template(PUSH_TRIGGER)
    assert len(functions_without_calls(stack, [])) == 5


# --- the custom resources' roles reach this stack's group only (defect 14) ---------------------
OTHER_STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/ci-prod/9a8b7c6d"
GROUP_ROLES = [
    ("AzRebalancingSuspenderRole", "autoscaling:SuspendProcesses"),
    ("StopBuildkiteAgentsRole", "autoscaling:UpdateAutoScalingGroup"),
]


def group_arn(name: str) -> str:
    return (
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:"
        f"1a2b3c4d-0000-4000-8000-00000000000f:autoScalingGroupName/{name}"
    )


@pytest.mark.parametrize(("role", "action"), GROUP_ROLES)
def test_custom_resource_roles_reach_this_stacks_group(role: str, action: str) -> None:
    stack = ContractStack.from_template(PUSH_TRIGGER)
    context = {f"autoscaling:ResourceTag/{k}": v for k, v in stack.group_tags.items()}
    request = Request(action, stack.group_arn, context)
    assert allows(stack.role_policies(role), request)
    # A replaced group of this stack has another name, and the same tags.
    replaced = Request(action, group_arn("ci-Fleet-1EXAMPLE-AgentAutoScaleGroup-OLD"), context)
    assert allows(stack.role_policies(role), replaced)


@pytest.mark.parametrize(("role", "action"), GROUP_ROLES)
def test_custom_resource_roles_cannot_touch_another_stacks_group(role: str, action: str) -> None:
    """Stack "ci" must not reach the group of stack "ci-prod" (its name starts with "ci-")."""
    stack = ContractStack.from_template(PUSH_TRIGGER)
    other = ContractStack.from_template(PUSH_TRIGGER, stack_name="ci-prod", stack_id=OTHER_STACK_ID)
    other_tags = {f"autoscaling:ResourceTag/{k}": v for k, v in other.group_tags.items()}
    policies = stack.role_policies(role)

    assert not allows(policies, Request(action, other.group_arn, other_tags))
    untagged = group_arn("ci-something-else")
    assert not allows(policies, Request(action, untagged, {}))
