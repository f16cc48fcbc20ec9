"""The settings reference-stack users rely on, wired to what they do (issue 14).

Fleet-level behaviour is rendered from nested/fleet.yaml; the outputs and the root-to-fleet
wiring from the root template with its nested stacks (tools.cfn_template.render_tree).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from test_fleet_template import WIRED, exported, launch_data, statements, tags, user_data

from tools.cfn_template import Rendered, constraint_violations, render, render_tree

TOKEN = {"BuildkiteAgentToken": "not-a-real-token"}


@pytest.fixture(scope="module")
def fleet(nested_templates) -> dict[str, Any]:
    return nested_templates["Fleet"]


def rendered(template: dict[str, Any], **parameters: Any) -> Rendered:
    return render(template, {**WIRED, **parameters})


def role(stack: Rendered) -> dict[str, Any]:
    return stack.resources["InstanceRole"]["Properties"]


def managed_policies(stack: Rendered) -> list[str]:
    arns = role(stack).get("ManagedPolicyArns")
    return [] if arns is None else stack.evaluate(arns)


# --- ECR access -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "managed", "pull_through"),
    [
        ("readonly", "AmazonEC2ContainerRegistryReadOnly", False),
        ("readonly-pullthrough", "AmazonEC2ContainerRegistryReadOnly", True),
        ("poweruser", "AmazonEC2ContainerRegistryPowerUser", False),
        ("poweruser-pullthrough", "AmazonEC2ContainerRegistryPowerUser", True),
        ("full", "AmazonEC2ContainerRegistryFullAccess", False),
    ],
)
def test_ecr_access_policy_attaches_the_managed_policy(fleet, policy, managed, pull_through):
    stack = rendered(fleet, ECRAccessPolicy=policy, ManagedPolicyARNs="arn:aws:iam::aws:policy/X")
    assert managed_policies(stack) == [
        f"arn:aws:iam::aws:policy/{managed}",
        "arn:aws:iam::aws:policy/X",
    ]
    by_sid = statements(stack)
    assert ("EcrPullThroughCache" in by_sid) is pull_through
    if pull_through:
        assert set(by_sid["EcrPullThroughCache"]["Action"]) == {
            "ecr:CreateRepository",
            "ecr:BatchImportUpstreamImage",
            "ecr:GetImageCopyStatus",
            "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload",
            "ecr:PutImage",
        }
        assert by_sid["EcrPullThroughCache"]["Resource"] == (
            "arn:aws:ecr:us-east-1:123456789012:repository/*"
        )


def test_no_ecr_policy_by_default(fleet):
    stack = rendered(fleet)
    assert "ManagedPolicyArns" not in role(stack)
    assert "EcrPullThroughCache" not in statements(stack)


# --- the instance role ------------------------------------------------------------------------
def test_instance_role_name_and_tags(fleet):
    stack = rendered(
        fleet,
        InstanceRoleName="ci-agents",
        InstanceRoleTags="Team=platform,cost center=ci:builds,Empty=",
    )
    assert stack.evaluate(role(stack)["RoleName"]) == "ci-agents"
    assert tags(role(stack)["Tags"], stack) == {
        "BuildkiteStack": "buildkite",
        "Team": "platform",
        "cost center": "ci:builds",
        "Empty": "",
    }


def test_instance_role_is_named_by_cloudformation_by_default(fleet):
    stack = rendered(fleet)
    assert "RoleName" not in role(stack)
    assert tags(role(stack)["Tags"], stack) == {"BuildkiteStack": "buildkite"}


def test_five_role_tags_at_most(fleet):
    pattern = fleet["Parameters"]["InstanceRoleTags"]["AllowedPattern"]
    five = ",".join(f"k{i}=v{i}" for i in range(5))
    assert re.fullmatch(pattern, five)
    assert not re.fullmatch(pattern, five + ",k5=v5")
    stack = rendered(fleet, InstanceRoleTags=five)
    assert len(tags(role(stack)["Tags"], stack)) == 6


# --- the launch template ----------------------------------------------------------------------
def instance_and_volume_tags(stack: Rendered) -> dict[str, dict[str, str]]:
    return {
        spec["ResourceType"]: tags(spec["Tags"], stack)
        for spec in launch_data(stack)["TagSpecifications"]
    }


def test_instances_and_volumes_are_named_after_the_root_stack_by_default(fleet):
    tagged = instance_and_volume_tags(rendered(fleet))
    assert tagged["instance"]["Name"] == tagged["volume"]["Name"] == "buildkite"
    assert tagged["instance"]["BuildkiteStack"] == "buildkite"


def test_instance_name_names_instances_and_volumes(fleet):
    tagged = instance_and_volume_tags(rendered(fleet, InstanceName="ci-agent"))
    assert tagged["instance"]["Name"] == tagged["volume"]["Name"] == "ci-agent"


@pytest.mark.parametrize(
    ("instance_types", "credits"),
    [("t3.large", "standard"), ("t4g.medium,t3.large", "standard"), ("m5.large,t3.large", None)],
)
def test_cpu_credits_apply_to_a_burstable_first_type(fleet, instance_types, credits):
    stack = rendered(fleet, InstanceTypes=instance_types, CpuCredits="standard")
    specification = launch_data(stack).get("CreditSpecification")
    assert (specification and stack.evaluate(specification["CpuCredits"])) == credits


def test_cpu_credits_default_to_unlimited(fleet):
    stack = rendered(fleet)
    assert stack.evaluate(launch_data(stack)["CreditSpecification"]) == {"CpuCredits": "unlimited"}


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_detailed_monitoring(fleet, enabled):
    stack = rendered(fleet, EnableDetailedMonitoring=enabled)
    assert stack.evaluate(launch_data(stack)["Monitoring"]) == {"Enabled": enabled}


def test_detailed_monitoring_is_off_by_default(fleet):
    stack = rendered(fleet)
    assert stack.evaluate(launch_data(stack)["Monitoring"]) == {"Enabled": "false"}


# --- Graviton: the image follows the first type's architecture --------------------------------
ARCHITECTURE_IMAGES = {"us-east-1": {"x8664": "ami-0x86", "arm64": "ami-0arm"}}


def image_for(fleet: dict[str, Any], **parameters: Any) -> str:
    template = {**fleet, "Mappings": {**fleet["Mappings"], "AgentImages": ARCHITECTURE_IMAGES}}
    stack = rendered(template, **parameters)
    return stack.evaluate(stack.resources["AgentImage"]["Properties"]["Value"])


@pytest.mark.parametrize(
    "first",
    ["a1.large", "c6g.large", "c7gn.xlarge", "c8g.large", "g5g.xlarge", "i4g.large",
     "im4gn.large", "m6g.large", "m7g.large", "m7gd.2xlarge", "m8g.large", "r6g.large",
     "r7g.large", "r8g.large", "t4g.large", "x2gd.large"],
)  # fmt: skip
def test_graviton_first_type_picks_the_arm64_image(fleet, first):
    assert image_for(fleet, InstanceTypes=f"{first},m5.large") == "ami-0arm"


@pytest.mark.parametrize("first", ["t3.large", "m5.large", "c7i.large", "m7a.large", "g5.xlarge"])
def test_x86_first_type_picks_the_x86_image(fleet, first):
    assert image_for(fleet, InstanceTypes=f"{first},m7g.large") == "ami-0x86"


@pytest.mark.parametrize(("given", "expected"), [("x86_64", "ami-0x86"), ("arm64", "ami-0arm")])
def test_a_given_architecture_wins_over_the_inference(fleet, given, expected):
    assert image_for(fleet, InstanceTypes="m7g.large", InstanceArchitecture=given) == expected
    assert image_for(fleet, InstanceTypes="m5.large", InstanceArchitecture=given) == expected


# --- artifacts, env file, JWKS: only what is used is granted ---------------------------------
def test_a_private_artifacts_acl_grants_no_put_object_acl(fleet):
    by_sid = statements(rendered(fleet, ArtifactsBucket="ci-artifacts"))
    assert "ArtifactsObjectAcl" not in by_sid
    assert all("s3:PutObjectAcl" not in str(s["Action"]) for s in by_sid.values())


def test_a_canned_artifacts_acl_grants_put_object_acl_on_the_bucket(fleet):
    stack = rendered(fleet, ArtifactsBucket="ci-artifacts", ArtifactsS3ACL="public-read")
    statement = statements(stack)["ArtifactsObjectAcl"]
    assert statement["Action"] == "s3:PutObjectAcl"
    assert statement["Resource"] == "arn:aws:s3:::ci-artifacts/*"


def test_an_acl_without_an_artifacts_bucket_grants_nothing(fleet):
    assert "ArtifactsObjectAcl" not in statements(rendered(fleet, ArtifactsS3ACL="public-read"))


def test_an_ssm_env_file_grants_reading_that_path_only(fleet):
    by_sid = statements(rendered(fleet, AgentEnvFileUrl="ssm:/ci/agent-env"))
    assert by_sid["AgentEnvParametersRead"] == {
        "Sid": "AgentEnvParametersRead",
        "Effect": "Allow",
        "Action": "ssm:GetParametersByPath",
        "Resource": "arn:aws:ssm:us-east-1:123456789012:parameter/ci/agent-env",
    }
    assert "AgentEnvFileRead" not in by_sid


@pytest.mark.parametrize(
    "url", ["ssm:/ci/agent-env", "s3://bucket/env", "https://example.com/env", ""]
)
def test_env_file_urls_the_root_accepts(root_template, url):
    assert constraint_violations(root_template, {**TOKEN, "AgentEnvFileUrl": url}) == []


@pytest.mark.parametrize("url", ["ssm:relative", "http://example.com/env", "ssm:/a'b"])
def test_env_file_urls_the_root_refuses(root_template, url):
    assert constraint_violations(root_template, {**TOKEN, "AgentEnvFileUrl": url})


def test_jwks_key_sets_are_readable_and_nothing_else(fleet):
    by_sid = statements(
        rendered(
            fleet,
            BuildkiteAgentSigningKeySSMParameter="/ci/jwks/signing",
            BuildkiteAgentVerificationKeySSMParameter="/ci/jwks/verification",
        )
    )
    assert by_sid["JwksSigningKeyRead"]["Action"] == "ssm:GetParameter"
    assert by_sid["JwksSigningKeyRead"]["Resource"] == (
        "arn:aws:ssm:us-east-1:123456789012:parameter/ci/jwks/signing"
    )
    assert by_sid["JwksVerificationKeyRead"]["Resource"] == (
        "arn:aws:ssm:us-east-1:123456789012:parameter/ci/jwks/verification"
    )
    defaults = statements(rendered(fleet))
    assert not {"JwksSigningKeyRead", "JwksVerificationKeyRead"} & set(defaults)


# --- agent settings reach the boot script ----------------------------------------------------
def test_agent_settings_are_exported_to_the_boot_script(fleet):
    values = dict(
        exported(
            user_data(
                rendered(
                    fleet,
                    BuildkiteAgentExperiments="ansi-timestamps,polyglot-hooks",
                    BuildkiteAgentTimestampLines="true",
                    BuildkiteAgentTracingBackend="datadog",
                    BuildkiteAgentCancelGracePeriod="90",
                    BuildkiteAgentSignalGracePeriod="15",
                    BuildkiteAgentDisconnectAfterUptime="3600",
                    BuildkiteAdditionalSudoPermissions="/usr/bin/dnf, /usr/bin/systemctl",
                    BuildkiteAgentSigningKeySSMParameter="/jwks/sign",
                    BuildkiteAgentSigningKeyID="key-1",
                    BuildkiteAgentVerificationKeySSMParameter="/jwks/verify",
                    PipelineSigningVerificationFailureBehavior="warn",
                    ArtifactsBucketRegion="eu-west-2",
                    ArtifactsS3ACL="bucket-owner-full-control",
                    AgentEnvFileUrl="ssm:/ci/env",
                )
            )
        )
    )
    assert values["BUILDKITE_AGENT_EXPERIMENTS"] == "ansi-timestamps,polyglot-hooks"
    assert values["BUILDKITE_AGENT_TIMESTAMP_LINES"] == "true"
    assert values["BUILDKITE_AGENT_TRACING_BACKEND"] == "datadog"
    assert values["BUILDKITE_AGENT_CANCEL_GRACE_PERIOD"] == "90"
    assert values["BUILDKITE_AGENT_SIGNAL_GRACE_PERIOD"] == "15"
    assert values["BUILDKITE_AGENT_DISCONNECT_AFTER_UPTIME"] == "3600"
    assert values["BUILDKITE_ADDITIONAL_SUDO_PERMISSIONS"] == "/usr/bin/dnf, /usr/bin/systemctl"
    assert values["BUILDKITE_AGENT_SIGNING_KEY_PATH"] == "/jwks/sign"
    assert values["BUILDKITE_AGENT_SIGNING_KEY_ID"] == "key-1"
    assert values["BUILDKITE_AGENT_VERIFICATION_KEY_PATH"] == "/jwks/verify"
    assert values["BUILDKITE_VERIFICATION_FAILURE_BEHAVIOR"] == "warn"
    assert values["BUILDKITE_S3_DEFAULT_REGION"] == "eu-west-2"
    assert values["BUILDKITE_S3_ACL"] == "bucket-owner-full-control"
    assert values["BUILDKITE_ENV_FILE_URL"] == "ssm:/ci/env"


def test_the_artifacts_region_defaults_to_the_stacks_region(fleet):
    values = dict(exported(user_data(rendered(fleet))))
    assert values["BUILDKITE_S3_DEFAULT_REGION"] == "us-east-1"
    assert values["BUILDKITE_S3_ACL"] == "private"


# --- the root: defaults and outputs ------------------------------------------------------------
def test_cost_allocation_tag_value_is_the_references(root_template, fleet):
    expected = "buildkite-elastic-ci-stack-for-aws"
    assert root_template["Parameters"]["CostAllocationTagValue"]["Default"] == expected
    assert fleet["Parameters"]["CostAllocationTagValue"]["Default"] == expected


def test_the_root_passes_its_own_name_to_the_fleet(root_template, nested_templates):
    tree = render_tree(root_template, nested_templates, TOKEN)
    assert tree.child_parameters["Fleet"]["ParentStackName"] == "test-stack"


REFERENCE_OUTPUTS = [
    "VpcId",
    "ManagedSecretsBucket",
    "ManagedSecretsLoggingBucket",
    "PipelineSigningKMSKey",
    "AutoScalingGroupName",
    "InstanceRoleName",
]


def owned(tree, child: str, value: Any, resource_type: str) -> bool:
    """`value` is Ref of a resource of `resource_type` that `child` creates."""
    if not (isinstance(value, dict) and list(value) == ["Ref"]):
        return False
    resource = tree.children[child].resources.get(value["Ref"])
    return resource is not None and resource["Type"] == resource_type


def test_the_reference_outputs_keep_their_names_and_exports(root_template):
    outputs = root_template["Outputs"]
    assert list(outputs)[:6] == REFERENCE_OUTPUTS
    for name in REFERENCE_OUTPUTS:
        assert outputs[name]["Export"]["Name"] == {"Fn::Sub": f"${{AWS::StackName}}-{name}"}


def test_reference_outputs_in_the_default_configuration(root_template, nested_templates):
    tree = render_tree(root_template, nested_templates, TOKEN)
    assert owned(tree, "Network", tree.output("VpcId"), "AWS::EC2::VPC")
    assert owned(tree, "Storage", tree.output("ManagedSecretsBucket"), "AWS::S3::Bucket")
    assert owned(tree, "Storage", tree.output("ManagedSecretsLoggingBucket"), "AWS::S3::Bucket")
    assert tree.output("PipelineSigningKMSKey") == "none"
    assert owned(
        tree, "Fleet", tree.output("AutoScalingGroupName"), "AWS::AutoScaling::AutoScalingGroup"
    )
    assert owned(tree, "Fleet", tree.output("InstanceRoleName"), "AWS::IAM::Role")


def test_reference_outputs_with_an_existing_vpc_and_bucket(root_template, nested_templates):
    tree = render_tree(
        root_template,
        nested_templates,
        {
            **TOKEN,
            "VpcId": "vpc-0123456789abcdef0",
            "Subnets": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
            "SecretsBucket": "my-secrets",
        },
    )
    assert tree.output("VpcId") == "vpc-0123456789abcdef0"
    assert tree.output("ManagedSecretsBucket") == "Undefined"
    assert tree.output("ManagedSecretsLoggingBucket") == "Undefined"
    assert tree.output("AgentSubnets") == "subnet-0123456789abcdef0,subnet-0123456789abcdef1"


@pytest.mark.parametrize(
    ("role_arn", "name"),
    [
        ("arn:aws:iam::123456789012:role/ci-agents", "ci-agents"),
        ("arn:aws:iam::123456789012:role/teams/ci/ci-agents", "ci-agents"),
    ],
)
def test_reference_outputs_with_a_custom_role(root_template, nested_templates, role_arn, name):
    tree = render_tree(root_template, nested_templates, {**TOKEN, "InstanceRoleARN": role_arn})
    assert tree.output("InstanceRoleName") == name
    assert tree.output("InstanceRoleArn") == role_arn
    assert "InstanceRole" not in tree.children["Fleet"].resources


def test_pipeline_signing_key_output_is_the_created_key_id_or_none(root_template, nested_templates):
    created = render_tree(
        root_template, nested_templates, {**TOKEN, "PipelineSigningKMSKeySpec": "ECC_NIST_P256"}
    )
    assert owned(created, "Storage", created.output("PipelineSigningKMSKey"), "AWS::KMS::Key")
    given = render_tree(
        root_template, nested_templates, {**TOKEN, "PipelineSigningKMSKeyId": "1234abcd-12ab"}
    )
    # The reference stack reports "none" when it did not create the key.
    assert given.output("PipelineSigningKMSKey") == "none"
    assert given.output("PipelineSigningKMSKeyArn") == (
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab"
    )


def test_our_extra_outputs_have_names_of_their_own(root_template):
    extras = set(root_template["Outputs"]) - set(REFERENCE_OUTPUTS)
    assert {
        "AgentSecurityGroupIds",
        "AgentSubnets",
        "AgentLaunchTemplateId",
        "InstanceRoleArn",
        "PipelineSigningKMSKeyArn",
    } <= extras
