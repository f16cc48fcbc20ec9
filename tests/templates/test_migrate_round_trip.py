"""Round trip: a reference stack's settings, through tools.migrate, arrive where the reference
stack puts them: the scaler's settings, the Auto Scaling group, the launch template, the
instance role, and the agent configuration the boot script writes.

One reference stack with every one-to-one setting changed from its default is converted; the
root template and its nested stacks are rendered for the result (tools.cfn_template), and the
fleet's user data is run with the real boot script against the instance-script fakes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tools.cfn_template import RenderedTree, constraint_violations, render_tree
from tools.migrate.convert import convert

ROOT = Path(__file__).resolve().parents[2]
BOOT_SCRIPT = ROOT / "packer" / "conf" / "bin" / "bk-install-elastic-stack.sh"
TOKEN = "bkua_roundtripTOKEN0123456789"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab"

REFERENCE_STACK = {
    "BuildkiteAgentToken": "",
    "BuildkiteAgentTokenParameterStorePath": "/ci/buildkite/token",
    "BuildkiteQueue": "builds",
    "AgentEndpoint": "https://agent.buildkite.com/v3",
    "BuildkiteAgentTags": "team=platform,size=large",
    "BuildkiteTerminateInstanceAfterJob": "true",
    "BuildkiteAgentExperiments": "normalised-upload-paths,resolve-commit-after-checkout",
    "BuildkiteAgentTimestampLines": "true",
    "BuildkiteAgentTracingBackend": "opentelemetry",
    "BuildkiteAgentCancelGracePeriod": "120",
    "BuildkiteAgentSignalGracePeriod": "30",
    "BuildkiteAgentDisconnectAfterUptime": "86400",
    "BuildkiteAdditionalSudoPermissions": "/usr/bin/systemctl restart docker",
    "BuildkiteAgentSigningKeySSMParameter": "/ci/jwks/signing",
    "BuildkiteAgentSigningKeyID": "signer-1",
    "BuildkiteAgentVerificationKeySSMParameter": "/ci/jwks/verification",
    "PipelineSigningVerificationFailureBehavior": "warn",
    "PipelineSigningKMSKeyId": KMS_KEY,
    "PipelineSigningKMSAccess": "verify",
    "AgentsPerInstance": "3",
    "MinSize": "1",
    "MaxSize": "20",
    "InstanceBuffer": "2",
    "ScaleOutFactor": "1.5",
    "ScaleInIdlePeriod": "900",
    "DisableScaleIn": "false",
    "ScaleOutCooldownPeriod": "120",
    "ScaleInCooldownPeriod": "1800",
    "ScaleOutForWaitingJobs": "true",
    "ScalerMinPollInterval": "20s",
    "InstanceScaleInProtection": "false",
    "OnDemandBaseCapacity": "1",
    "OnDemandPercentage": "25",
    "SpotAllocationStrategy": "price-capacity-optimized",
    "EnableScheduledScaling": "true",
    "ScheduleTimezone": "Europe/Berlin",
    "ScaleUpSchedule": "0 7 * * MON-FRI",
    "ScaleUpMinSize": "4",
    "ScaleDownSchedule": "0 19 * * MON-FRI",
    "ScaleDownMinSize": "1",
    "InstanceCreationTimeout": "PT20M",
    "InstanceTypes": "t3.large,t3a.large",
    "CpuCredits": "standard",
    "EnableDetailedMonitoring": "true",
    "InstanceName": "ci-agent",
    "ImageId": "ami-0123456789abcdef0",
    "RootVolumeSize": "100",
    "RootVolumeType": "io2",
    "RootVolumeIops": "4000",
    "IMDSv2Tokens": "required",
    "AssociatePublicIpAddress": "false",
    "VpcId": "vpc-0123456789abcdef0",
    "Subnets": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "ManagedPolicyARNs": "arn:aws:iam::123456789012:policy/ci-extra",
    "InstanceRoleName": "ci-agents",
    "InstanceRoleTags": "Team=platform,Purpose=ci",
    "InstanceRolePermissionsBoundaryARN": "arn:aws:iam::123456789012:policy/boundary",
    "ECRAccessPolicy": "poweruser",
    "SecretsBucket": "ci-secrets",
    "SecretsBucketRegion": "eu-west-1",
    "ArtifactsBucket": "ci-artifacts",
    "ArtifactsBucketRegion": "eu-west-2",
    "ArtifactsS3ACL": "bucket-owner-full-control",
    "AgentEnvFileUrl": "ssm:/ci/agent-env",
    "EnableCostAllocationTags": "true",
    "CostAllocationTagName": "CostCenter",
    "CostAllocationTagValue": "ci",
}


@pytest.fixture(scope="module")
def tree(root_template, nested_templates) -> RenderedTree:
    migration = convert(REFERENCE_STACK, root_template)
    assert not migration.needs_decision, [note.line() for note in migration.notes]
    assert constraint_violations(root_template, migration.parameters) == []
    return render_tree(root_template, nested_templates, migration.parameters)


def evaluated(tree: RenderedTree, stack: str, value: Any) -> Any:
    rendered = tree.root if stack == "Root" else tree.children[stack]
    return rendered.evaluate(value)


# --- scaler settings: the reference passes these to its scaler Lambda --------------------------
@pytest.mark.parametrize(
    ("reference", "variable", "expected"),
    [
        ("BuildkiteQueue", "BUILDKITE_QUEUE", "builds"),
        ("AgentEndpoint", "BUILDKITE_AGENT_ENDPOINT", "https://agent.buildkite.com/v3"),
        ("AgentsPerInstance", "AGENTS_PER_INSTANCE", "3"),
        ("MinSize", "MIN_SIZE", "1"),
        ("MaxSize", "MAX_SIZE", "20"),
        ("InstanceBuffer", "INSTANCE_BUFFER", "2"),
        ("ScaleOutFactor", "SCALE_OUT_FACTOR", "1.5"),
        ("ScaleInIdlePeriod", "SCALE_IN_IDLE_PERIOD", "900"),
        ("DisableScaleIn", "DISABLE_SCALE_IN", "false"),
        ("ScaleOutCooldownPeriod", "SCALE_OUT_COOLDOWN_PERIOD", "120"),
        ("ScaleInCooldownPeriod", "SCALE_IN_COOLDOWN_PERIOD", "1800"),
        ("ScaleOutForWaitingJobs", "SCALE_OUT_FOR_WAITING_JOBS", "true"),
        ("ScalerMinPollInterval", "POLL_INTERVAL", "20"),
    ],
)
def test_scaler_settings_arrive_in_the_scaler(tree, reference, variable, expected):
    variables = tree.root.resources["AgentScalerFunction"]["Properties"]["Environment"]
    assert str(evaluated(tree, "Root", variables["Variables"][variable])) == expected, reference


# --- the Auto Scaling group -------------------------------------------------------------------
def group(tree: RenderedTree) -> dict[str, Any]:
    return tree.children["Fleet"].resources["AgentAutoScaleGroup"]


DISTRIBUTION = ["Properties", "MixedInstancesPolicy", "InstancesDistribution"]


@pytest.mark.parametrize(
    ("reference", "path", "expected"),
    [
        ("MinSize", ["Properties", "MinSize"], "1"),
        ("MaxSize", ["Properties", "MaxSize"], "20"),
        ("InstanceScaleInProtection", ["Properties", "NewInstancesProtectedFromScaleIn"], "false"),
        (
            "OnDemandBaseCapacity",
            [*DISTRIBUTION, "OnDemandBaseCapacity"],
            "1",
        ),
        (
            "OnDemandPercentage",
            [*DISTRIBUTION, "OnDemandPercentageAboveBaseCapacity"],
            "25",
        ),
        (
            "SpotAllocationStrategy",
            [
                "Properties",
                "MixedInstancesPolicy",
                "InstancesDistribution",
                "SpotAllocationStrategy",
            ],
            "price-capacity-optimized",
        ),
        ("InstanceCreationTimeout", ["CreationPolicy", "ResourceSignal", "Timeout"], "PT20M"),
    ],
)
def test_group_settings_arrive_in_the_group(tree, reference, path, expected):
    value: Any = group(tree)
    for key in path:
        value = value[key]
    assert str(evaluated(tree, "Fleet", value)) == expected, reference


def test_instance_types_become_the_groups_overrides_in_order(tree):
    overrides = group(tree)["Properties"]["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]
    types = [evaluated(tree, "Fleet", item["InstanceType"]) for item in overrides]
    assert types == ["t3.large", "t3a.large"]


@pytest.mark.parametrize(
    ("action", "recurrence", "min_size"),
    [("ScaleUpAction", "0 7 * * MON-FRI", "4"), ("ScaleDownAction", "0 19 * * MON-FRI", "1")],
)
def test_scheduled_scaling_arrives_in_the_scheduled_actions(tree, action, recurrence, min_size):
    properties = tree.children["Fleet"].resources[action]["Properties"]
    assert evaluated(tree, "Fleet", properties["Recurrence"]) == recurrence
    assert str(evaluated(tree, "Fleet", properties["MinSize"])) == min_size
    assert evaluated(tree, "Fleet", properties["TimeZone"]) == "Europe/Berlin"


# --- the launch template ----------------------------------------------------------------------
def launch(tree: RenderedTree) -> dict[str, Any]:
    data = tree.children["Fleet"].resources["AgentLaunchTemplate"]["Properties"]
    return data["LaunchTemplateData"]


def launch_tags(tree: RenderedTree, resource_type: str) -> dict[str, str]:
    (spec,) = [s for s in launch(tree)["TagSpecifications"] if s["ResourceType"] == resource_type]
    return {
        evaluated(tree, "Fleet", tag["Key"]): str(evaluated(tree, "Fleet", tag["Value"]))
        for tag in spec["Tags"]
    }


def test_launch_template_settings_arrive_in_the_launch_template(tree):
    data = launch(tree)
    value = lambda item: evaluated(tree, "Fleet", item)  # noqa: E731
    assert value(data["InstanceType"]) == "t3.large"
    assert value(data["ImageId"]) == "ami-0123456789abcdef0"
    assert value(data["CreditSpecification"]) == {"CpuCredits": "standard"}
    assert value(data["Monitoring"]) == {"Enabled": "true"}
    assert value(data["MetadataOptions"]["HttpTokens"]) == "required"
    (interface,) = data["NetworkInterfaces"]
    assert value(interface["AssociatePublicIpAddress"]) == "false"
    (volume,) = data["BlockDeviceMappings"]
    assert value(volume["Ebs"]["VolumeSize"]) == "100"
    assert value(volume["Ebs"]["VolumeType"]) == "io2"
    assert value(volume["Ebs"]["Iops"]) == "4000"


def test_name_and_cost_tags_arrive_on_instances_and_volumes(tree):
    for resource_type in ("instance", "volume"):
        tags = launch_tags(tree, resource_type)
        assert tags["Name"] == "ci-agent"
        assert tags["CostCenter"] == "ci"
    assert launch_tags(tree, "instance")["BuildkiteQueue"] == "builds"


# --- the instance role ------------------------------------------------------------------------
def role(tree: RenderedTree) -> dict[str, Any]:
    return evaluated(tree, "Fleet", tree.children["Fleet"].resources["InstanceRole"]["Properties"])


def test_role_settings_arrive_on_the_instance_role(tree):
    properties = role(tree)
    assert properties["RoleName"] == "ci-agents"
    assert properties["PermissionsBoundary"] == "arn:aws:iam::123456789012:policy/boundary"
    assert properties["ManagedPolicyArns"] == [
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser",
        "arn:aws:iam::123456789012:policy/ci-extra",
    ]
    tags = {tag["Key"]: tag["Value"] for tag in properties["Tags"]}
    assert tags["Team"] == "platform"
    assert tags["Purpose"] == "ci"


def test_bucket_and_signing_settings_arrive_in_the_role_policy(tree):
    (policy,) = role(tree)["Policies"]
    by_sid = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert by_sid["SecretsBucketRead"]["Resource"] == "arn:aws:s3:::ci-secrets/*"
    assert by_sid["ArtifactsReadWrite"]["Resource"] == "arn:aws:s3:::ci-artifacts/*"
    assert by_sid["ArtifactsObjectAcl"]["Action"] == "s3:PutObjectAcl"
    assert set(by_sid["PipelineSigning"]["Action"]) == {"kms:GetPublicKey", "kms:Verify"}
    assert by_sid["PipelineSigning"]["Resource"] == KMS_KEY
    assert by_sid["AgentEnvParametersRead"]["Resource"].endswith(":parameter/ci/agent-env")
    assert by_sid["JwksSigningKeyRead"]["Resource"].endswith(":parameter/ci/jwks/signing")


# --- the agent configuration the boot script writes ------------------------------------------
DRIVER = r"""
set -euo pipefail
BATS_TEST_TMPDIR=$1
. "$2/tests/packer/helpers/common.bash"
setup_fakes
respond aws-ssm-get-parameter 0 "$3"
respond aws-ssm-get-parameter 0 '{"keys":[{"kid":"signer-1","kty":"EC"}]}'
respond aws-ssm-get-parameter 0 '{"keys":[{"kid":"signer-1","kty":"EC"}]}'
respond aws-ssm-get-parameters-by-path 0 '{"Parameters":[{"Name":"/ci/agent-env/HTTP_PROXY","Value":"http://proxy:3128"}]}'
env -i PATH="$FAKE_BIN:$BIN_DIR:/usr/bin:/bin" BK_TEST_ROOT="$ROOT" FAKE_STATE="$FAKE_STATE" \
  bash "$4" >/dev/null 2>&1 || { cat "$ROOT/var/log/elastic-stack.log" >&2; exit 1; }
"""


@pytest.fixture(scope="module")
def booted(tree, tmp_path_factory) -> Path:
    """The instance root after the fleet's user data ran the boot script."""
    workdir = tmp_path_factory.mktemp("boot")
    user_data = evaluated(tree, "Fleet", launch(tree)["UserData"]["Fn::Base64"])
    script = workdir / "user-data.sh"
    script.write_text(
        user_data.replace("exec /usr/local/bin/bk-install-elastic-stack.sh", f"exec {BOOT_SCRIPT}")
    )
    result = subprocess.run(
        ["bash", "-c", DRIVER, "driver", str(workdir), str(ROOT), TOKEN, str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return workdir / "root"


def agent_config(booted: Path) -> list[str]:
    return (booted / "etc" / "buildkite-agent" / "buildkite-agent.cfg").read_text().splitlines()


@pytest.mark.parametrize(
    ("reference", "line"),
    [
        ("AgentsPerInstance", "spawn=3"),
        ("ScaleInIdlePeriod", "disconnect-after-idle-timeout=900"),
        ("BuildkiteTerminateInstanceAfterJob", "disconnect-after-job=true"),
        ("AgentEndpoint", 'endpoint="https://agent.buildkite.com/v3"'),
        (
            "BuildkiteAgentExperiments",
            'experiment="normalised-upload-paths,resolve-commit-after-checkout"',
        ),
        ("BuildkiteAgentTimestampLines", "timestamp-lines=true"),
        ("BuildkiteAgentTracingBackend", 'tracing-backend="opentelemetry"'),
        ("BuildkiteAgentCancelGracePeriod", "cancel-grace-period=120"),
        ("BuildkiteAgentSignalGracePeriod", "signal-grace-period-seconds=30"),
        ("BuildkiteAgentDisconnectAfterUptime", "disconnect-after-uptime=86400"),
        ("BuildkiteAgentSigningKeyID", 'signing-jwks-key-id="signer-1"'),
        ("PipelineSigningVerificationFailureBehavior", "verification-failure-behavior=warn"),
        ("PipelineSigningKMSKeyId", f'signing-aws-kms-key="{KMS_KEY}"'),
    ],
)
def test_agent_settings_arrive_in_the_agent_config(booted, reference, line):
    assert line in agent_config(booted), reference


def test_queue_tags_and_the_root_stack_name_arrive_in_the_agent_tags(booted):
    (tags,) = [line for line in agent_config(booted) if line.startswith("tags=")]
    values = tags.removeprefix('tags="').removesuffix('"').split(",")
    assert {"queue=builds", "stack=test-stack", "team=platform", "size=large"} <= set(values)


def test_jwks_parameters_become_the_agents_key_files(booted):
    config = agent_config(booted)
    for kind in ("signing", "verification"):
        path = booted / "etc" / "buildkite-agent" / f"{kind}-key.json"
        assert f'{kind}-jwks-file="{path}"' in config
        assert "signer-1" in path.read_text()


def test_the_env_file_and_sudo_permissions_arrive_on_the_instance(booted):
    env_file = (booted / "etc" / "buildkite-agent" / "env").read_text()
    assert env_file.strip() == 'HTTP_PROXY="http://proxy:3128"'
    sudoers = (booted / "etc" / "sudoers.d" / "buildkite-agent-additional").read_text()
    assert sudoers.strip() == "buildkite-agent ALL=NOPASSWD: /usr/bin/systemctl restart docker"


def test_bucket_settings_reach_the_jobs_settings_file(booted):
    settings = (booted / "etc" / "buildkite-agent" / "cfn-env").read_text().splitlines()
    for line in (
        "export BUILDKITE_SECRETS_BUCKET=ci-secrets",
        "export BUILDKITE_SECRETS_BUCKET_REGION=eu-west-1",
        "export BUILDKITE_ARTIFACTS_BUCKET=ci-artifacts",
        "export BUILDKITE_S3_DEFAULT_REGION=eu-west-2",
        "export BUILDKITE_S3_ACL=bucket-owner-full-control",
    ):
        assert line in settings
    assert TOKEN not in "\n".join(settings)
