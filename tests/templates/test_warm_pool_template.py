"""Warm pool mode (issue 16): the fleet a warm pool needs, and the settings it refuses.

The fleet is rendered with tools.cfn_template (conditions evaluated, Fn::If resolved); the
root-to-fleet wiring with render_tree; the refusals by evaluating the Rules the way
CloudFormation does before it creates anything (tools.cfn_template.rule_violations).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_fleet_template import WIRED, exported, group, launch_data, statements, user_data

from tools.cfn_template import (
    Rendered,
    constraint_violations,
    render,
    render_tree,
    rule_violations,
)
from tools.testing.iam import Request, allows

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
TOKEN = {"BuildkiteAgentToken": "not-a-real-token"}
POOL = {"EnableWarmPool": "true", "InstanceTypes": "m5.large", "WarmPoolInstanceType": "m5.large"}
ONE_TYPE = "EnableWarmPool needs InstanceTypes to name exactly one instance type"
ON_DEMAND = "EnableWarmPool needs OnDemandPercentage 100"


@pytest.fixture(scope="module")
def fleet(nested_templates) -> dict[str, Any]:
    return nested_templates["Fleet"]


def rendered(template: dict[str, Any], **parameters: Any) -> Rendered:
    return render(template, {**WIRED, **parameters})


def pool_properties(stack: Rendered) -> dict[str, Any]:
    """The warm pool's properties, resolved but for the group it names."""
    (pool,) = stack.of_type("AWS::AutoScaling::WarmPool").values()
    properties = dict(pool["Properties"])
    assert properties.pop("AutoScalingGroupName") == {"Ref": "AgentAutoScaleGroup"}
    return stack.evaluate(properties)


def hooks(stack: Rendered) -> dict[str, dict[str, Any]]:
    listed = group(stack)["LifecycleHookSpecificationList"]
    return {hook["LifecycleHookName"]: stack.evaluate(hook) for hook in listed}


# --- the group -------------------------------------------------------------------------------
def test_with_the_pool_the_group_has_one_launch_template_and_no_mixed_instances_policy(fleet):
    stack = rendered(fleet, **POOL)
    properties = group(stack)
    assert "MixedInstancesPolicy" not in properties
    assert properties["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": "AgentLaunchTemplate"},
        "Version": {"Fn::GetAtt": ["AgentLaunchTemplate", "LatestVersionNumber"]},
    }
    # The launch template's own type is the group's only one.
    assert stack.evaluate(launch_data(stack)["InstanceType"]) == "m5.large"
    assert properties["CapacityRebalance"] is False


def test_without_the_pool_the_group_keeps_its_mixed_instances_policy(fleet):
    stack = rendered(fleet, InstanceTypes="m5.large,m5a.large", OnDemandPercentage="50")
    properties = group(stack)
    assert "LaunchTemplate" not in properties
    policy = properties["MixedInstancesPolicy"]
    overrides = [stack.evaluate(o) for o in policy["LaunchTemplate"]["Overrides"]]
    assert overrides == [{"InstanceType": "m5.large"}, {"InstanceType": "m5a.large"}]
    assert properties["CapacityRebalance"] is True
    assert "AgentWarmPool" not in stack.resources
    assert not stack.of_type("AWS::AutoScaling::WarmPool")


def test_the_default_fleet_has_no_pool(fleet):
    stack = rendered(fleet)
    assert "MixedInstancesPolicy" in group(stack)
    assert not stack.of_type("AWS::AutoScaling::WarmPool")
    assert set(hooks(stack)) == {"instance_terminating"}
    assert "HibernationOptions" not in launch_data(stack)


# --- the pool --------------------------------------------------------------------------------
def test_the_pool_follows_its_parameters(fleet):
    stack = rendered(
        fleet,
        **POOL,
        WarmPoolMinSize="2",
        WarmPoolMaxPreparedCapacity="8",
        WarmPoolState="Hibernated",
        WarmPoolReuseOnScaleIn="false",
    )
    assert pool_properties(stack) == {
        "MinSize": "2",
        "MaxGroupPreparedCapacity": "8",
        "PoolState": "Hibernated",
        "InstanceReusePolicy": {"ReuseOnScaleIn": "false"},
    }


def test_by_default_the_scaler_sizes_the_pool(fleet):
    properties = pool_properties(rendered(fleet, **POOL))
    assert "MaxGroupPreparedCapacity" not in properties  # PutWarmPool from the scaler sets it
    assert properties["MinSize"] == "0"
    assert properties["PoolState"] == "Stopped"
    assert properties["InstanceReusePolicy"] == {"ReuseOnScaleIn": "true"}


@pytest.mark.parametrize(("state", "hibernates"), [("Stopped", False), ("Hibernated", True)])
def test_a_hibernated_pool_launches_instances_enabled_for_hibernation(fleet, state, hibernates):
    data = launch_data(rendered(fleet, **POOL, WarmPoolState=state))
    assert data.get("HibernationOptions") == ({"Configured": True} if hibernates else None)
    # Hibernation saves memory to the root volume, which must be encrypted.
    (root,) = data["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True


def test_hibernated_without_a_pool_changes_nothing(fleet):
    assert "HibernationOptions" not in launch_data(rendered(fleet, WarmPoolState="Hibernated"))


# --- lifecycle hooks and the boot setting ----------------------------------------------------
def test_with_the_pool_a_launching_hook_abandons_instances_that_never_get_ready(fleet):
    stack = rendered(fleet, **POOL, InstanceTerminationGracePeriod="900")
    by_name = hooks(stack)
    assert set(by_name) == {"instance_terminating", "instance_launching"}
    assert by_name["instance_launching"] == {
        "LifecycleHookName": "instance_launching",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "DefaultResult": "ABANDON",
        # An instance a scale-in returns to the pool with a job still running waits here.
        "HeartbeatTimeout": "900",
    }
    assert by_name["instance_terminating"]["DefaultResult"] == "CONTINUE"


@pytest.mark.parametrize(("parameters", "hook"), [(POOL, "instance_launching"), ({}, "")])
def test_user_data_names_the_launching_hook_only_with_the_pool(fleet, parameters, hook):
    values = dict(exported(user_data(rendered(fleet, **parameters))))
    assert values["BUILDKITE_LAUNCHING_HOOK_NAME"] == hook
    assert values["BUILDKITE_LIFECYCLE_HOOK_NAME"] == "instance_terminating"


def test_instances_may_complete_the_launching_hook_of_their_own_group_only(fleet):
    stack = rendered(fleet, **POOL)
    policies = [{"Statement": list(statements(stack).values())}]
    own = (
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0f1e:"
        "autoScalingGroupName/test-stack-AgentAutoScaleGroup-ABC"
    )
    other = own.replace("test-stack-", "other-stack-")
    for action in (
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
    ):
        assert allows(policies, Request(action, own)), action
        assert not allows(policies, Request(action, other)), action
    # Nothing new: the terminating hook's statement already covers every hook of the group.
    assert statements(stack).keys() == statements(rendered(fleet)).keys()


# --- refusals --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parameters", "broken"),
    [
        (POOL, []),
        ({**POOL, "WarmPoolState": "Hibernated"}, []),
        ({**POOL, "OnDemandPercentage": "80"}, [ON_DEMAND]),
        ({**POOL, "InstanceTypes": "m5.large,m5a.large"}, [ONE_TYPE]),
        ({**POOL, "InstanceTypes": "m5.large,m5.large"}, [ONE_TYPE]),
        (
            {**POOL, "InstanceTypes": "m5.large,m5a.large", "OnDemandPercentage": "0"},
            [ON_DEMAND, ONE_TYPE],
        ),
        # Standalone use of the fleet stack: WarmPoolInstanceType must repeat the one type.
        ({"EnableWarmPool": "true", "InstanceTypes": "m5.large"}, [ONE_TYPE]),
        # Without the pool, spot and several types are what the mixed instances policy is for.
        ({"InstanceTypes": "m5.large,m5a.large", "OnDemandPercentage": "0"}, []),
    ],
)
def test_the_fleet_refuses_a_pool_with_spot_or_several_types(fleet, parameters, broken):
    found = rule_violations(fleet, {**WIRED, **parameters})
    assert [next(m for m in (ON_DEMAND, ONE_TYPE) if m in text) for text in found] == broken


def test_the_refusals_name_the_parameters_and_the_reason(fleet):
    (spot,) = rule_violations(fleet, {**WIRED, **POOL, "OnDemandPercentage": "90"})
    for named in ("EnableWarmPool", "OnDemandPercentage 100", "spot"):
        assert named in spot
    (types,) = rule_violations(fleet, {**WIRED, **POOL, "InstanceTypes": "m5.large,c5.large"})
    for named in ("EnableWarmPool", "InstanceTypes", "mixed instances policy"):
        assert named in types


def test_warm_pool_instance_type_is_one_type(fleet):
    assert constraint_violations(fleet, {**WIRED, **POOL}) == []
    problems = constraint_violations(fleet, {**WIRED, **POOL, "WarmPoolInstanceType": "a.b,c.d"})
    assert problems
    assert all(p.startswith("WarmPoolInstanceType") for p in problems)


def root_parameters(**parameters: Any) -> dict[str, Any]:
    return {**TOKEN, "EnableWarmPool": "true", **parameters}


def test_the_root_refuses_spot_with_the_pool(root_template):
    assert rule_violations(root_template, root_parameters(InstanceTypes="m5.large")) == []
    (broken,) = rule_violations(root_template, root_parameters(OnDemandPercentage="50"))
    assert ON_DEMAND in broken
    assert rule_violations(root_template, {**TOKEN, "OnDemandPercentage": "50"}) == []


@pytest.mark.parametrize(
    ("types", "refused"),
    [("m5.large", False), ("m5.large,m5a.large", True), ("c5.xlarge,c5.xlarge", True)],
)
def test_the_root_passes_what_the_fleet_needs_to_refuse_several_types(
    root_template, nested_templates, types, refused
):
    tree = render_tree(root_template, nested_templates, root_parameters(InstanceTypes=types))
    passed = tree.child_parameters["Fleet"]
    assert passed["EnableWarmPool"] == "true"
    assert passed["WarmPoolInstanceType"] == types.split(",")[0]
    broken = rule_violations(nested_templates["Fleet"], passed)
    assert [ONE_TYPE in message for message in broken] == ([True] if refused else [])


def test_the_root_hands_every_pool_setting_to_the_fleet(root_template, nested_templates):
    tree = render_tree(
        root_template,
        nested_templates,
        root_parameters(
            InstanceTypes="m5.large",
            WarmPoolMinSize="1",
            WarmPoolMaxPreparedCapacity="6",
            WarmPoolState="Hibernated",
            WarmPoolReuseOnScaleIn="false",
        ),
    )
    fleet_stack = tree.children["Fleet"]
    properties = pool_properties(fleet_stack)
    assert properties["MinSize"] == "1"
    assert properties["MaxGroupPreparedCapacity"] == "6"
    assert properties["PoolState"] == "Hibernated"
    assert properties["InstanceReusePolicy"] == {"ReuseOnScaleIn": "false"}
    assert "MixedInstancesPolicy" not in group(fleet_stack)


def test_scale_in_demand_window_is_whole_seconds_up_to_an_hour_and_on_by_default(root_template):
    spec = root_template["Parameters"]["ScaleInDemandWindow"]
    assert spec["Default"] == "600"
    assert str(spec["Default"]) == str(root_template["Parameters"]["ScaleInIdlePeriod"]["Default"])
    for good in ("0", "600", "3600"):
        assert constraint_violations(root_template, {**TOKEN, "ScaleInDemandWindow": good}) == []
    # Up to 3600: the scaler keeps the window's history in one group tag.
    for bad in ("-1", "1.5", "10m", "", "3601", "86400"):
        problems = constraint_violations(root_template, {**TOKEN, "ScaleInDemandWindow": bad})
        assert problems, bad
        assert problems[0].startswith("ScaleInDemandWindow"), bad


# --- the rendered warm-pool fleet passes cfn-lint --------------------------------------------
def pool_variant(fleet: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    """The fleet as CloudFormation sees it for these values: conditions gone, Fn::If resolved,
    the values as the parameters' defaults."""
    stack = rendered(fleet, **parameters)
    given = {**WIRED, **parameters}
    declared = {}
    for name, spec in fleet["Parameters"].items():
        spec = dict(spec)
        if name in given:
            spec["Default"] = given[name]
        declared[name] = spec

    def unconditional(section: dict[str, Any]) -> dict[str, Any]:
        return {
            name: {key: value for key, value in body.items() if key != "Condition"}
            for name, body in section.items()
        }

    resources, outputs = unconditional(stack.resources), unconditional(stack.outputs)
    used = json.dumps([resources, outputs])
    return {
        "AWSTemplateFormatVersion": fleet["AWSTemplateFormatVersion"],
        "Description": fleet["Description"],
        "Parameters": declared,
        "Rules": fleet["Rules"],
        # Only the mappings the rendered resources still read (the quick start reads none).
        "Mappings": {k: v for k, v in fleet["Mappings"].items() if f'"{k}"' in used},
        "Resources": resources,
        "Outputs": outputs,
    }


@pytest.mark.slow
def test_the_rendered_warm_pool_fleet_passes_cfn_lint(fleet, tmp_path):
    variants = {
        "stopped": pool_variant(fleet, **POOL, WarmPoolMaxPreparedCapacity="4"),
        "hibernated": pool_variant(fleet, **POOL, WarmPoolState="Hibernated"),
    }
    paths = []
    for name, variant in variants.items():
        assert "Conditions" not in variant
        assert "AgentWarmPool" in variant["Resources"]
        assert (
            "MixedInstancesPolicy" not in variant["Resources"]["AgentAutoScaleGroup"]["Properties"]
        )
        path = tmp_path / f"fleet-{name}.json"
        path.write_text(json.dumps(variant, indent=1), encoding="utf-8")
        paths.append(str(path))
    # Parameters the rendering made unused (W2001) are expected; anything else is a finding.
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--ignore-checks", "W2001", "--", *paths],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
