"""nested/fleet.yaml renders the right fleet for each set of parameters.

Rendered with tools.cfn_template (conditions evaluated, Fn::If resolved), so each test states
what CloudFormation would create for those parameter values.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools.cfn_template import Rendered, load_template, render
from tools.gen_fleet_overrides import MAX_INSTANCE_TYPES, regenerate
from tools.testing.iam import Request, allows

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "nested" / "fleet.yaml"
BOOT_SETTINGS = ROOT / "packer" / "boot-settings.txt"
BOOT_SCRIPT = "/usr/local/bin/bk-install-elastic-stack.sh"

ROOT_STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/buildkite/0f1e2d3c"
TOKEN_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/test-stack/buildkite/agent-token"
INSTALL_ASSETS_LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:buildkite-InstallAssets:7"
QUICK_START_SNIPPET = ROOT / "packer" / "quick-start" / "user-data.sh"
WIRED = {
    "ParentStackName": "buildkite",
    "ParentStackId": ROOT_STACK_ID,
    "InstanceLogGroupPrefix": "/buildkite/buildkite",
    "AzRebalancingSuspenderFunctionArn": (
        "arn:aws:lambda:us-east-1:123456789012:function:buildkite-AzRebalancingSuspender"
    ),
    "StopBuildkiteAgentsFunctionArn": (
        "arn:aws:lambda:us-east-1:123456789012:function:buildkite-StopBuildkiteAgents"
    ),
    "Subnets": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "SecurityGroupId": "sg-0123456789abcdef0",
    "AgentTokenParameterPath": "/test-stack/buildkite/agent-token",
    "AgentTokenParameterArn": TOKEN_ARN,
    "InstallAssetsLayerArn": INSTALL_ASSETS_LAYER,
}


@pytest.fixture(scope="module")
def fleet() -> dict[str, Any]:
    return load_template(FLEET)


def rendered(template: dict[str, Any], **parameters: Any) -> Rendered:
    return render(template, {**WIRED, **parameters})


def launch_data(stack: Rendered) -> dict[str, Any]:
    return stack.resources["AgentLaunchTemplate"]["Properties"]["LaunchTemplateData"]


def group(stack: Rendered) -> dict[str, Any]:
    return stack.resources["AgentAutoScaleGroup"]["Properties"]


def statements(stack: Rendered) -> dict[str, dict[str, Any]]:
    """The instance role's inline policy statements, by Sid, with values resolved."""
    (policy,) = stack.resources["InstanceRole"]["Properties"]["Policies"]
    return {s["Sid"]: stack.evaluate(s) for s in policy["PolicyDocument"]["Statement"]}


def actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def tags(tag_list: list[dict[str, Any]], stack: Rendered) -> dict[str, str]:
    return {stack.evaluate(t["Key"]): str(stack.evaluate(t["Value"])) for t in tag_list}


def user_data(stack: Rendered) -> str:
    return stack.evaluate(launch_data(stack)["UserData"]["Fn::Base64"])


def boot_settings() -> list[str]:
    """The names in packer/boot-settings.txt, in file order."""
    names = []
    for line in BOOT_SETTINGS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.append(line.split()[0])
    return names


EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)='([^']*)'$")


def exported(script: str) -> list[tuple[str, str]]:
    """(name, value) of every `export NAME='value'` line, in order."""
    return [m.groups() for line in script.splitlines() if (m := EXPORT.match(line))]


# --- the agreed boot settings ------------------------------------------------------------------
def test_boot_settings_file_lists_the_agreed_names():
    names = boot_settings()
    assert len(names) == len(set(names)), "a setting is listed twice"
    assert {"AWS_REGION", "BUILDKITE_AGENT_TOKEN_PATH", "BUILDKITE_QUEUE"} <= set(names)
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names)


def without_quick_start(script: str) -> str:
    """The user data without its quick-start block (packer/quick-start/user-data.sh)."""
    snippet = QUICK_START_SNIPPET.read_text(encoding="utf-8").replace(
        "${InstallAssetsLayerArn}", INSTALL_ASSETS_LAYER
    )
    assert script.count(snippet) <= 1
    return script.replace(snippet, "")


@pytest.mark.parametrize("image", [{}, {"ImageId": "ami-0123456789abcdef0"}])
def test_user_data_exports_exactly_the_boot_settings(fleet, image):
    script = user_data(rendered(fleet, **image))
    names = [name for name, _ in exported(script)]
    assert len(names) == len(set(names)), "a setting is exported twice"
    assert set(names) == set(boot_settings())
    # Nothing but exports (and, for the quick start, its install block), then the boot script
    # takes over the process.
    lines = [
        line
        for line in without_quick_start(script).strip().splitlines()
        if line.strip() and not line.startswith("#!")
    ]
    assert lines[-1] == f"exec {BOOT_SCRIPT}"
    assert all(EXPORT.match(line) or line == "set -eu" for line in lines[:-1])


def test_the_export_comparison_notices_a_missing_or_extra_name(fleet):
    script = user_data(rendered(fleet))
    first = boot_settings()[0]
    without_first = "\n".join(line for line in script.splitlines() if first not in line)
    assert {name for name, _ in exported(without_first)} != set(boot_settings())
    extra = script + "export BUILDKITE_SOMETHING_ELSE='1'\n"
    assert {name for name, _ in exported(extra)} != set(boot_settings())


def test_user_data_hands_the_parameters_to_the_boot_script(fleet, tmp_path):
    """Run the user data in bash (boot script swapped for `env`) and read what it exported."""
    tricky_tags = 'os=linux,team=$HOME `id` "ci"'
    stack = rendered(
        fleet,
        BuildkiteQueue="builds",
        BuildkiteAgentTags=tricky_tags,
        AgentsPerInstance="3",
        ScaleInIdlePeriod="900",
        SecretsBucketName="my-secrets",
        ArtifactsBucket="my-artifacts",
        PipelineSigningKMSKey="arn:aws:kms:us-east-1:123456789012:key/abcd-1234",
        PipelineSigningKMSAccess="verify",
        EnableECRPlugin="false",
        BootstrapScriptUrl="s3://bucket/boot.sh",
        StackVersion="1.2.3",
    )
    script = user_data(stack)
    assert f"exec {BOOT_SCRIPT}" in script
    path = tmp_path / "user-data.sh"
    # The quick-start block (tested in tests/packer/quick_start.bats) would install the agent.
    path.write_text(without_quick_start(script).replace(f"exec {BOOT_SCRIPT}", "exec env"))
    result = subprocess.run(
        ["bash", str(path)], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    environment = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert set(boot_settings()) <= set(environment)
    assert environment["BUILDKITE_AGENT_TAGS"] == tricky_tags
    assert environment["BUILDKITE_QUEUE"] == "builds"
    assert environment["BUILDKITE_AGENTS_PER_INSTANCE"] == "3"
    assert environment["BUILDKITE_SCALE_IN_IDLE_PERIOD"] == "900"
    assert environment["BUILDKITE_AGENT_TOKEN_PATH"] == WIRED["AgentTokenParameterPath"]
    # The agents carry the root stack's name; cfn-signal needs the fleet stack's own.
    assert environment["BUILDKITE_STACK_NAME"] == WIRED["ParentStackName"]
    assert environment["BUILDKITE_CFN_STACK"] == "test-stack"
    assert environment["BUILDKITE_STACK_VERSION"] == "1.2.3"
    assert environment["BUILDKITE_CFN_RESOURCE"] == "AgentAutoScaleGroup"
    assert environment["BUILDKITE_LIFECYCLE_HOOK_NAME"] == "instance_terminating"
    assert environment["BUILDKITE_SECRETS_BUCKET"] == "my-secrets"
    assert environment["BUILDKITE_SECRETS_BUCKET_REGION"] == "us-east-1"
    assert environment["BUILDKITE_ARTIFACTS_BUCKET"] == "my-artifacts"
    assert environment["BUILDKITE_ECR_PLUGIN_ENABLED"] == "false"
    assert environment["BUILDKITE_PIPELINE_SIGNING_KMS_KEY"].endswith(":key/abcd-1234")
    assert environment["BUILDKITE_PIPELINE_SIGNING_KMS_ACCESS"] == "verify"
    assert environment["BUILDKITE_BOOTSTRAP_SCRIPT_URL"] == "s3://bucket/boot.sh"
    assert environment["BUILDKITE_TERMINATE_INSTANCE_AFTER_JOB"] == "false"


def test_off_features_reach_the_boot_script_as_empty_values(fleet):
    values = dict(exported(user_data(rendered(fleet))))
    assert values["BUILDKITE_SECRETS_BUCKET"] == ""
    assert values["BUILDKITE_PIPELINE_SIGNING_KMS_KEY"] == ""
    assert values["BUILDKITE_ARTIFACTS_BUCKET"] == ""
    disabled = dict(
        exported(
            user_data(rendered(fleet, SecretsBucketName="my-secrets", EnableSecretsPlugin="false"))
        )
    )
    assert disabled["BUILDKITE_SECRETS_BUCKET"] == ""
    assert disabled["BUILDKITE_SECRETS_PLUGIN_ENABLED"] == "false"


def referenced_parameters(value: Any, declared: set[str]) -> set[str]:
    """Parameters named by Ref or ${...} anywhere in `value`."""
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            if key == "Ref" and item in declared:
                found.add(item)
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text)) & declared
                if isinstance(item, list):
                    found |= referenced_parameters(item[1], declared)
            else:
                found |= referenced_parameters(item, declared)
        return found
    if isinstance(value, list):
        return set().union(*(referenced_parameters(v, declared) for v in value))
    return set()


def test_no_value_that_reaches_user_data_can_break_its_quoting(fleet):
    parameters = fleet["Parameters"]
    user_data_source = fleet["Resources"]["AgentLaunchTemplate"]["Properties"][
        "LaunchTemplateData"
    ]["UserData"]
    used = referenced_parameters(user_data_source, set(parameters))
    assert {"BuildkiteAgentTags", "SecretsBucketName", "AgentTokenParameterPath"} <= used
    for name in used:
        spec = parameters[name]
        if spec["Type"] == "Number" or "AllowedValues" in spec:
            continue
        pattern = spec.get("AllowedPattern")
        assert pattern, f"{name} reaches user data without an AllowedPattern"
        assert not re.fullmatch(pattern, "a'b"), f"{name} allows a single quote"


# --- resources per scenario --------------------------------------------------------------------
def test_default_creates_role_image_launch_template_group_and_custom_resources(fleet):
    stack = rendered(fleet)
    # No image given and none built: the quick start, so no AgentImage parameter either.
    assert set(stack.resources) == {
        "InstanceRole",
        "InstanceProfile",
        "AgentLaunchTemplate",
        "AgentAutoScaleGroup",
        "AzRebalancingSuspender",
        "StopBuildkiteAgents",
    }
    assert stack.resources["InstanceProfile"]["Properties"]["Roles"] == [{"Ref": "InstanceRole"}]
    assert stack.evaluate(launch_data(stack)["ImageId"]) == (
        "{{resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64}}"
    )
    assert "KeyName" not in launch_data(stack)


def test_the_scaler_is_the_only_writer_of_desired_capacity(fleet):
    types = {resource["Type"] for resource in fleet["Resources"].values()}
    assert "AWS::AutoScaling::ScalingPolicy" not in types
    assert "DesiredCapacity" not in fleet["Resources"]["AgentAutoScaleGroup"]["Properties"]
    for resource in fleet["Resources"].values():
        if resource["Type"] == "AWS::AutoScaling::ScheduledAction":
            assert "DesiredCapacity" not in resource["Properties"]


def test_the_group_protects_busy_agents_and_waits_for_boot_signals(fleet):
    stack = rendered(fleet, MinSize="2", InstanceCreationTimeout="PT15M")
    asg = stack.resources["AgentAutoScaleGroup"]
    properties = asg["Properties"]
    assert stack.evaluate(properties["NewInstancesProtectedFromScaleIn"]) == "true"
    (hook,) = properties["LifecycleHookSpecificationList"]
    assert hook["LifecycleHookName"] == "instance_terminating"
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    assert hook["DefaultResult"] == "CONTINUE"
    assert stack.evaluate(hook["HeartbeatTimeout"]) == "3600"
    signal = asg["CreationPolicy"]["ResourceSignal"]
    assert stack.evaluate(signal["Count"]) == "2"
    assert stack.evaluate(signal["Timeout"]) == "PT15M"
    assert "AutoScalingReplacingUpdate" not in asg.get("UpdatePolicy", {})
    assert "AutoScalingRollingUpdate" not in asg.get("UpdatePolicy", {})
    assert asg["UpdatePolicy"]["AutoScalingScheduledAction"] == {
        "IgnoreUnmodifiedGroupSizeProperties": True
    }
    assert stack.evaluate(properties["VPCZoneIdentifier"]) == WIRED["Subnets"].split(",")
    assert properties["MetricsCollection"] == [{"Granularity": "1Minute"}]


def test_grace_period_bounds_follow_the_hook_limits(fleet):
    spec = fleet["Parameters"]["InstanceTerminationGracePeriod"]
    assert (spec["Default"], spec["MinValue"], spec["MaxValue"]) == (3600, 30, 7200)
    stack = rendered(fleet, InstanceScaleInProtection="false", InstanceTerminationGracePeriod=90)
    properties = group(stack)
    assert stack.evaluate(properties["NewInstancesProtectedFromScaleIn"]) == "false"
    (hook,) = properties["LifecycleHookSpecificationList"]
    assert stack.evaluate(hook["HeartbeatTimeout"]) == "90"


def test_group_tags_carry_queue_and_agents_per_instance(fleet):
    stack = rendered(fleet, BuildkiteQueue="deploys", AgentsPerInstance="4")
    group_tags = tags(group(stack)["Tags"], stack)
    assert group_tags["BuildkiteQueue"] == "deploys"
    assert group_tags["BuildkiteAgentsPerInstance"] == "4"
    # The root's custom-resource functions may change only groups with this tag.
    assert group_tags["BuildkiteStackId"] == ROOT_STACK_ID
    assert "CreatedBy" not in group_tags


def test_instances_and_volumes_are_tagged_for_the_stack(fleet):
    stack = rendered(fleet, BuildkiteQueue="deploys")
    by_type = {
        spec["ResourceType"]: spec["Tags"] for spec in launch_data(stack)["TagSpecifications"]
    }
    for resource_type in ("instance", "volume"):
        resource_tags = tags(by_type[resource_type], stack)
        assert resource_tags["Role"] == "buildkite-agent"
        assert resource_tags["BuildkiteQueue"] == "deploys"
        assert resource_tags["BuildkiteStack"] == "buildkite"


def test_cost_allocation_tags_when_enabled(fleet):
    stack = rendered(
        fleet,
        EnableCostAllocationTags="true",
        CostAllocationTagName="CostCenter",
        CostAllocationTagValue="ci",
    )
    assert tags(group(stack)["Tags"], stack)["CostCenter"] == "ci"
    for spec in launch_data(stack)["TagSpecifications"]:
        assert tags(spec["Tags"], stack)["CostCenter"] == "ci"


def test_custom_resources_get_the_group_and_their_service_tokens(fleet):
    stack = rendered(fleet)
    for name, token in (
        ("AzRebalancingSuspender", "AzRebalancingSuspenderFunctionArn"),
        ("StopBuildkiteAgents", "StopBuildkiteAgentsFunctionArn"),
    ):
        properties = stack.resources[name]["Properties"]
        assert stack.evaluate(properties["ServiceToken"]) == WIRED[token]
        assert properties["AutoScalingGroupName"] == {"Ref": "AgentAutoScaleGroup"}


# --- instance types ----------------------------------------------------------------------------
def overrides(stack: Rendered) -> list[str]:
    policy = group(stack)["MixedInstancesPolicy"]
    return [stack.evaluate(item["InstanceType"]) for item in policy["LaunchTemplate"]["Overrides"]]


@pytest.mark.parametrize(
    "instance_types",
    ["t3.large", "m7g.large,c7g.xlarge", "c5.large,c5a.large,c6i.large,m5.large"],
)
def test_overrides_follow_instance_types_in_order(fleet, instance_types):
    stack = rendered(fleet, InstanceTypes=instance_types)
    assert overrides(stack) == instance_types.split(",")
    first = instance_types.split(",")[0]
    assert stack.evaluate(launch_data(stack)["InstanceType"]) == first


def test_twenty_five_instance_types_all_become_overrides(fleet):
    many = [f"m{n}.large" for n in range(MAX_INSTANCE_TYPES)]
    assert overrides(rendered(fleet, InstanceTypes=",".join(many))) == many


def test_instance_types_pattern_takes_one_to_twenty_five_types(fleet):
    pattern = fleet["Parameters"]["InstanceTypes"]["AllowedPattern"]
    assert re.fullmatch(pattern, ",".join(["t3.large"] * MAX_INSTANCE_TYPES))
    assert not re.fullmatch(pattern, ",".join(["t3.large"] * (MAX_INSTANCE_TYPES + 1)))
    assert not re.fullmatch(pattern, "")
    assert not re.fullmatch(pattern, "t3.large, m5.large")


def test_committed_overrides_match_the_generator():
    text = FLEET.read_text(encoding="utf-8")
    assert regenerate(text) == text, "run: python -m tools.gen_fleet_overrides"


def test_the_generator_check_notices_a_hand_edit():
    text = FLEET.read_text(encoding="utf-8")
    edited = text.replace("HasInstanceType25: ", "HasInstanceType25Typo: ", 1)
    assert edited != text
    assert regenerate(edited) != edited
    assert regenerate(edited) == text


# --- spot ----------------------------------------------------------------------------------------
def test_on_demand_only_by_default_without_capacity_rebalancing(fleet):
    stack = rendered(fleet)
    distribution = group(stack)["MixedInstancesPolicy"]["InstancesDistribution"]
    assert stack.evaluate(distribution["OnDemandPercentageAboveBaseCapacity"]) == "100"
    assert group(stack)["CapacityRebalance"] is False


def test_spot_fleet_rebalances_capacity(fleet):
    stack = rendered(
        fleet,
        OnDemandPercentage="0",
        OnDemandBaseCapacity="1",
        SpotAllocationStrategy="price-capacity-optimized",
    )
    distribution = group(stack)["MixedInstancesPolicy"]["InstancesDistribution"]
    assert stack.evaluate(distribution["OnDemandPercentageAboveBaseCapacity"]) == "0"
    assert stack.evaluate(distribution["OnDemandBaseCapacity"]) == "1"
    assert stack.evaluate(distribution["SpotAllocationStrategy"]) == "price-capacity-optimized"
    assert group(stack)["CapacityRebalance"] is True


def test_spot_capacity_rebalancing_can_be_turned_off(fleet):
    stack = rendered(fleet, OnDemandPercentage="50", EnableCapacityRebalancing="false")
    assert group(stack)["CapacityRebalance"] is False


# --- instance role -----------------------------------------------------------------------------
def test_instance_role_is_scoped_to_this_stack(fleet):
    stack = rendered(fleet)
    role = stack.resources["InstanceRole"]["Properties"]
    principal = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
    assert stack.evaluate(principal) == "ec2.amazonaws.com"
    by_sid = statements(stack)
    assert actions(by_sid["OwnGroup"]) == {
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
        "autoscaling:SetInstanceHealth",
        "autoscaling:SetInstanceProtection",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    }
    assert by_sid["OwnGroup"]["Resource"] == (
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:"
        "autoScalingGroupName/test-stack-*"
    )
    assert actions(by_sid["DescribeOwnInstance"]) == {"autoscaling:DescribeAutoScalingInstances"}
    assert by_sid["BootSignal"] == {
        "Sid": "BootSignal",
        "Effect": "Allow",
        "Action": "cloudformation:SignalResource",
        "Resource": "arn:aws:cloudformation:us-east-1:123456789012:stack/test-stack/guid",
    }
    assert by_sid["AgentToken"]["Resource"] == TOKEN_ARN
    assert actions(by_sid["AgentToken"]) == {"ssm:GetParameter"}
    for resource in by_sid["AgentLogs"]["Resource"]:
        assert ":log-group:/buildkite/buildkite/*" in resource
    # Only actions that take no resource run on "*"; nothing grants every action.
    unscoped = {sid for sid, s in by_sid.items() if s["Resource"] == "*"}
    assert unscoped == {"SsmAgent", "DescribeOwnInstance", "EcrLogin"}
    assert not any("*" in actions(s) for s in by_sid.values())
    assert not any(a.startswith("ssm:GetParameter") for a in actions(by_sid["SsmAgent"]))


def test_instances_may_report_their_scale_in_protection_in_their_own_group_only(fleet):
    """bk-lifecycle-handler protects a busy instance so the scaler's drains pick idle ones."""
    policies = [{"Statement": list(statements(rendered(fleet)).values())}]
    own = (
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:0f1e:"
        "autoScalingGroupName/test-stack-AgentAutoScaleGroup-ABC"
    )
    other = own.replace("test-stack-", "other-stack-")
    assert allows(policies, Request("autoscaling:SetInstanceProtection", own))
    assert not allows(policies, Request("autoscaling:SetInstanceProtection", other))


# --- instance logs (defect 9) ------------------------------------------------------------------
def log_group_arn(name: str) -> str:
    return f"arn:aws:logs:us-east-1:123456789012:log-group:{name}"


@pytest.mark.parametrize(("days", "exported_days"), [("none", ""), ("14", "14")])
def test_instances_ship_to_their_stacks_groups_and_may_create_them(fleet, days, exported_days):
    """Without CreateLogGroup nothing shipped unless the storage stack had created the groups."""
    stack = rendered(fleet, InstanceLogRetentionDays=days)
    policies = [{"Statement": list(statements(stack).values())}]
    own = log_group_arn("/buildkite/buildkite/buildkite-agent")
    for action in ("logs:CreateLogGroup", "logs:DescribeLogStreams"):
        assert allows(policies, Request(action, own)), action
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert allows(policies, Request(action, f"{own}:log-stream:i-0123456789abcdef0")), action
    # Another stack's groups, and the reference stack's fixed /buildkite/* ones, are not ours.
    for other in ("/buildkite/buildkite-prod/buildkite-agent", "/buildkite/buildkite-agent"):
        assert not allows(policies, Request("logs:CreateLogGroup", log_group_arn(other))), other
        stream = f"{log_group_arn(other)}:log-stream:i-0123456789abcdef0"
        assert not allows(policies, Request("logs:PutLogEvents", stream)), other
    retention = Request("logs:PutRetentionPolicy", own)
    assert allows(policies, retention) is (days != "none")

    environment = dict(exported(user_data(stack)))
    assert environment["BUILDKITE_LOG_GROUP_PREFIX"] == "/buildkite/buildkite"
    assert environment["BUILDKITE_LOG_RETENTION_DAYS"] == exported_days


def test_token_key_none_means_the_aws_managed_key(fleet):
    by_sid = statements(rendered(fleet, BuildkiteAgentTokenParameterStoreKMSKey="none"))
    assert "AgentTokenKey" not in by_sid


def test_optional_permissions_are_absent_by_default(fleet):
    by_sid = statements(rendered(fleet))
    for sid in (
        "AgentTokenKey",
        "SecretsBucketRead",
        "ArtifactsReadWrite",
        "PipelineSigning",
        "BootstrapScriptRead",
        "AgentEnvFileRead",
    ):
        assert sid not in by_sid
    role = rendered(fleet).resources["InstanceRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert "PermissionsBoundary" not in role


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
        (
            "arn:aws:kms:eu-west-1:111122223333:key/mrk-0123",
            "arn:aws:kms:eu-west-1:111122223333:key/mrk-0123",
        ),
    ],
)
def test_token_key_grants_decrypt_through_ssm_only(fleet, key, expected):
    by_sid = statements(rendered(fleet, BuildkiteAgentTokenParameterStoreKMSKey=key))
    assert by_sid["AgentTokenKey"]["Resource"] == expected
    assert actions(by_sid["AgentTokenKey"]) == {"kms:Decrypt"}
    assert by_sid["AgentTokenKey"]["Condition"] == {
        "StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}
    }


def test_buckets_grant_read_for_secrets_and_read_write_for_artifacts(fleet):
    by_sid = statements(
        rendered(fleet, SecretsBucketName="my-secrets", ArtifactsBucket="my-artifacts")
    )
    assert actions(by_sid["SecretsBucketRead"]) == {"s3:GetObject"}
    assert by_sid["SecretsBucketRead"]["Resource"] == "arn:aws:s3:::my-secrets/*"
    assert by_sid["SecretsBucketList"]["Resource"] == "arn:aws:s3:::my-secrets"
    assert actions(by_sid["ArtifactsReadWrite"]) == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
    }  # no s3:PutObjectAcl: the agent uploads private objects
    assert by_sid["ArtifactsReadWrite"]["Resource"] == "arn:aws:s3:::my-artifacts/*"
    off = statements(rendered(fleet, SecretsBucketName="my-secrets", EnableSecretsPlugin="false"))
    assert "SecretsBucketRead" not in off


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        ("sign-and-verify", {"kms:Sign", "kms:Verify", "kms:GetPublicKey"}),
        ("verify", {"kms:Verify", "kms:GetPublicKey"}),
    ],
)
def test_pipeline_signing_key_access(fleet, access, expected):
    key = "arn:aws:kms:us-east-1:123456789012:key/0123abcd"
    by_sid = statements(rendered(fleet, PipelineSigningKMSKey=key, PipelineSigningKMSAccess=access))
    assert actions(by_sid["PipelineSigning"]) == expected
    assert by_sid["PipelineSigning"]["Resource"] == key


def test_s3_boot_files_are_readable_and_nothing_else_in_their_buckets(fleet):
    by_sid = statements(
        rendered(
            fleet,
            BootstrapScriptUrl="s3://ops-bucket/buildkite/bootstrap.sh",
            AgentEnvFileUrl="s3://env-bucket/agent.env",
        )
    )
    assert by_sid["BootstrapScriptRead"]["Resource"] == (
        "arn:aws:s3:::ops-bucket/buildkite/bootstrap.sh"
    )
    assert by_sid["AgentEnvFileRead"]["Resource"] == "arn:aws:s3:::env-bucket/agent.env"
    assert actions(by_sid["BootstrapScriptRead"]) == {"s3:GetObject"}
    https = statements(
        rendered(fleet, BootstrapScriptUrl="https://example.com/b.sh", AgentEnvFileUrl="")
    )
    assert "BootstrapScriptRead" not in https
    assert "AgentEnvFileRead" not in https


def test_ecr_plugin_permissions_follow_the_plugin(fleet):
    assert "EcrPull" in statements(rendered(fleet))
    off = statements(rendered(fleet, EnableECRPlugin="false"))
    assert "EcrLogin" not in off
    assert "EcrPull" not in off


def test_managed_policies_and_boundary_are_attached(fleet):
    managed = "arn:aws:iam::aws:policy/ReadOnlyAccess,arn:aws:iam::123456789012:policy/extra"
    boundary = "arn:aws:iam::123456789012:policy/boundary"
    stack = rendered(fleet, ManagedPolicyARNs=managed, InstanceRolePermissionsBoundaryARN=boundary)
    role = stack.resources["InstanceRole"]["Properties"]
    assert stack.evaluate(role["ManagedPolicyArns"]) == managed.split(",")
    assert stack.evaluate(role["PermissionsBoundary"]) == boundary


@pytest.mark.parametrize(
    "role_arn",
    [
        "arn:aws:iam::123456789012:role/AgentRole",
        "arn:aws:iam::123456789012:role/ci/AgentRole",
        "arn:aws:iam::123456789012:role/ci/buildkite/AgentRole",
        "arn:aws:iam::123456789012:role/a/b/c/d/e/AgentRole",
    ],
)
def test_custom_role_with_any_path_is_used_by_name(fleet, role_arn):
    stack = rendered(fleet, InstanceRoleARN=role_arn)
    assert "InstanceRole" not in stack.resources
    (role_name,) = stack.resources["InstanceProfile"]["Properties"]["Roles"]
    assert stack.evaluate(role_name) == "AgentRole"
    assert stack.evaluate(stack.outputs["InstanceRoleName"]["Value"]) == "AgentRole"
    assert stack.evaluate(stack.outputs["InstanceRoleArn"]["Value"]) == role_arn


def test_custom_role_pattern_accepts_the_paths_it_can_resolve(fleet):
    pattern = fleet["Parameters"]["InstanceRoleARN"]["AllowedPattern"]
    assert re.fullmatch(pattern, "arn:aws:iam::123456789012:role/a/b/c/d/e/AgentRole")
    assert not re.fullmatch(pattern, "arn:aws:iam::123456789012:role/a/b/c/d/e/f/AgentRole")
    assert re.fullmatch(pattern, "")


# --- image -------------------------------------------------------------------------------------
def test_image_id_wins_over_everything(fleet):
    stack = rendered(fleet, ImageId="ami-0123456789abcdef0", ImageIdParameter="/my/ami")
    assert stack.evaluate(launch_data(stack)["ImageId"]) == "ami-0123456789abcdef0"
    assert "AgentImage" not in stack.resources


def test_image_id_parameter_is_resolved_at_deploy_time(fleet):
    stack = rendered(fleet, ImageIdParameter="/buildkite/agent-ami")
    assert stack.evaluate(launch_data(stack)["ImageId"]) == "{{resolve:ssm:/buildkite/agent-ami}}"
    assert "AgentImage" not in stack.resources


@pytest.mark.parametrize(
    ("architecture", "expected"), [("x86_64", "ami-x86"), ("arm64", "ami-arm")]
)
def test_built_in_image_follows_region_and_architecture(fleet, architecture, expected):
    template = copy.deepcopy(fleet)
    template["Mappings"]["AgentImages"]["us-east-1"] = {"x8664": "ami-x86", "arm64": "ami-arm"}
    stack = rendered(template, InstanceArchitecture=architecture)
    image = stack.resources["AgentImage"]["Properties"]
    assert image["DataType"] == "aws:ec2:image"
    assert stack.evaluate(image["Value"]) == expected


def test_every_agent_image_row_has_both_architectures(fleet):
    rows = fleet["Mappings"]["AgentImages"]
    assert rows
    for region, images in rows.items():
        assert set(images) == {"x8664", "arm64"}, region
        for image in images.values():
            assert re.fullmatch(r"ami-[0-9a-f]{8,17}|none", image), f"{region}: {image}"


# --- launch template ---------------------------------------------------------------------------
def test_imds_v2_is_required_by_default_with_room_for_containers(fleet):
    stack = rendered(fleet)
    metadata = launch_data(stack)["MetadataOptions"]
    assert stack.evaluate(metadata["HttpTokens"]) == "required"
    assert metadata["HttpPutResponseHopLimit"] == 2
    optional = rendered(fleet, IMDSv2Tokens="optional")
    assert optional.evaluate(launch_data(optional)["MetadataOptions"]["HttpTokens"]) == "optional"


@pytest.mark.parametrize(
    ("volume_type", "has_iops", "has_throughput"),
    [("gp3", True, True), ("gp2", False, False), ("io2", True, False)],
)
def test_root_volume_is_encrypted_with_its_type_settings(
    fleet, volume_type, has_iops, has_throughput
):
    stack = rendered(fleet, RootVolumeType=volume_type, RootVolumeSize="100")
    (root,) = launch_data(stack)["BlockDeviceMappings"]
    assert stack.evaluate(root["DeviceName"]) == "/dev/xvda"
    ebs = root["Ebs"]
    assert ebs["Encrypted"] is True
    assert stack.evaluate(ebs["VolumeType"]) == volume_type
    assert stack.evaluate(ebs["VolumeSize"]) == "100"
    assert ("Iops" in ebs) is has_iops
    assert ("Throughput" in ebs) is has_throughput


def test_network_settings_come_from_the_network_stack(fleet):
    stack = rendered(
        fleet,
        SecurityGroupId="sg-0123456789abcdef0,sg-0123456789abcdef1",
        AssociatePublicIpAddress="false",
        KeyName="ops",
    )
    (interface,) = launch_data(stack)["NetworkInterfaces"]
    assert stack.evaluate(interface["Groups"]) == ["sg-0123456789abcdef0", "sg-0123456789abcdef1"]
    assert stack.evaluate(interface["AssociatePublicIpAddress"]) == "false"
    assert stack.evaluate(launch_data(stack)["KeyName"]) == "ops"


# --- scheduled scaling -------------------------------------------------------------------------
def test_no_scheduled_actions_by_default(fleet):
    assert not rendered(fleet).of_type("AWS::AutoScaling::ScheduledAction")


def test_scheduled_scaling_changes_min_size_only(fleet):
    stack = rendered(
        fleet,
        EnableScheduledScaling="true",
        ScheduleTimezone="Europe/Berlin",
        ScaleUpSchedule="0 7 * * MON-FRI",
        ScaleUpMinSize="3",
        ScaleDownSchedule="0 19 * * MON-FRI",
        ScaleDownMinSize="0",
    )
    actions_by_name = stack.of_type("AWS::AutoScaling::ScheduledAction")
    assert set(actions_by_name) == {"ScaleUpAction", "ScaleDownAction"}
    seen = {}
    for action in actions_by_name.values():
        properties = action["Properties"]
        assert set(properties) == {"AutoScalingGroupName", "Recurrence", "TimeZone", "MinSize"}
        assert properties["AutoScalingGroupName"] == {"Ref": "AgentAutoScaleGroup"}
        assert stack.evaluate(properties["TimeZone"]) == "Europe/Berlin"
        seen[stack.evaluate(properties["Recurrence"])] = stack.evaluate(properties["MinSize"])
    assert seen == {"0 7 * * MON-FRI": "3", "0 19 * * MON-FRI": "0"}


# --- outputs -----------------------------------------------------------------------------------
def test_outputs_name_group_role_and_launch_template(fleet):
    stack = rendered(fleet)
    assert set(stack.outputs) == {
        "AutoScalingGroupName",
        "InstanceRoleName",
        "InstanceRoleArn",
        "LaunchTemplateId",
        "AgentImageSource",
    }
    for output in stack.outputs.values():
        assert len(output["Description"]) > 10
    assert stack.outputs["AutoScalingGroupName"]["Value"] == {"Ref": "AgentAutoScaleGroup"}
    assert stack.outputs["InstanceRoleName"]["Value"] == {"Ref": "InstanceRole"}
    assert stack.outputs["InstanceRoleArn"]["Value"] == {"Fn::GetAtt": ["InstanceRole", "Arn"]}
    assert stack.outputs["LaunchTemplateId"]["Value"] == {"Ref": "AgentLaunchTemplate"}
