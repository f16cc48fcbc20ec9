"""The storage stack: what it creates for each choice of token, secrets, signing key and logs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tools.cfn_template import TemplateError, load_template, render

STORAGE = Path(__file__).resolve().parents[2] / "nested" / "storage.yaml"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:fleet-AgentTokenFunction"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:123456789012:key/{KEY_ID}"
BASE = {
    "ParentStackName": "fleet",
    "AgentTokenFunctionArn": FUNCTION_ARN,
    "BuildkiteAgentToken": "t",
}
SECRETS_RESOURCES = {
    "ManagedSecretsBucket",
    "ManagedSecretsBucketPolicy",
    "ManagedSecretsLoggingBucket",
    "ManagedSecretsLoggingBucketPolicy",
}
EC2_LOG_GROUPS = {
    "/buildkite/fleet/buildkite-agent",
    "/buildkite/fleet/cfn-init",
    "/buildkite/fleet/cloud-init",
    "/buildkite/fleet/cloud-init/output",
    "/buildkite/fleet/docker-daemon",
    "/buildkite/fleet/elastic-stack",
    "/buildkite/fleet/system",
    "/buildkite/fleet/auth",
    "/buildkite/fleet/lifecycled",
}
CONTRACT_PARAMETERS = {
    "ParentStackName",
    "BuildkiteAgentToken",
    "BuildkiteAgentTokenParameterStorePath",
    "BuildkiteAgentTokenParameterStoreKMSKey",
    "AgentTokenFunctionArn",
    "EnableSecretsPlugin",
    "SecretsBucket",
    "SecretsLogRetentionDays",
    "PipelineSigningKMSKeyId",
    "PipelineSigningKMSKeySpec",
    "PipelineSigningKMSAccess",
    "EnableEC2LogRetentionPolicy",
    "EC2LogRetentionDays",
    "SkipEC2LogGroupCreation",
}
OUTPUTS = {
    "ManagedSecretsBucket",
    "ManagedSecretsLoggingBucket",
    "SecretsBucketName",
    "AgentTokenParameterPath",
    "AgentTokenParameterArn",
    "AgentTokenKMSKeyArn",
    "PipelineSigningKMSKey",
    "CreatedPipelineSigningKMSKeyId",
    "InstanceLogGroupPrefix",
    "InstanceLogRetentionDays",
}


@pytest.fixture(scope="module")
def storage() -> dict[str, Any]:
    return load_template(STORAGE)


def rendered(storage, **overrides):
    return render(storage, {**BASE, **overrides})


def output(result, name: str) -> Any:
    """An output's value with every parameter-only intrinsic resolved (resource refs kept)."""
    value = result.outputs[name]["Value"]
    try:
        return result.evaluate(value)
    except TemplateError:
        return value


def references(value: Any, name: str) -> bool:
    """Whether `value` mentions parameter/resource `name` via Ref, GetAtt or ${...}."""
    text = json.dumps(value)
    return bool(re.search(rf'"Ref": "{name}"|"Fn::GetAtt": \["{name}"|\$\{{{name}[.}}]', text))


# --- Parameters and outputs ------------------------------------------------------------------
def test_parameters_are_the_agreed_contract(storage):
    parameters = storage["Parameters"]
    assert set(parameters) == CONTRACT_PARAMETERS
    assert parameters["BuildkiteAgentToken"]["NoEcho"] is True
    assert parameters["BuildkiteAgentToken"]["Default"] == ""
    assert parameters["SecretsLogRetentionDays"]["Default"] == 90
    assert parameters["EC2LogRetentionDays"]["Default"] == 30
    assert parameters["PipelineSigningKMSKeySpec"]["AllowedValues"] == ["ECC_NIST_P256", "none"]
    assert "Default" not in parameters["AgentTokenFunctionArn"]


@pytest.mark.parametrize(
    ("parameter", "accepted", "rejected"),
    [
        (
            "BuildkiteAgentTokenParameterStorePath",
            [
                "",
                "/team/buildkite/token",
                "buildkite-token",
                "arn:aws:ssm:eu-west-1:210987654321:parameter/shared/buildkite-token",
            ],
            ["with space", "arn:aws:ssm:eu-west-1:21098765:parameter/x"],
        ),
        (
            "PipelineSigningKMSKeyId",
            ["", KEY_ID, KEY_ARN, "mrk-0123456789abcdef0123456789abcdef"],
            ["alias/signing", "arn:aws:kms:us-east-1:123456789012:alias/signing"],
        ),
        (
            "BuildkiteAgentTokenParameterStoreKMSKey",
            ["", KEY_ID, KEY_ARN],
            ["alias/aws/ssm", "arn:aws:kms:us-east-1:123456789012:alias/x"],
        ),
        ("SecretsBucket", ["", "my-secrets.bucket-1"], ["My_Bucket", "a"]),
        ("ParentStackName", ["fleet", "Build-Kite-2"], ["", "2fleet", "fleet_1"]),
    ],
)
def test_allowed_patterns(storage, parameter, accepted, rejected):
    pattern = storage["Parameters"][parameter]["AllowedPattern"]
    for value in accepted:
        assert re.fullmatch(pattern, value), f"{parameter} should accept {value!r}"
    for value in rejected:
        assert not re.fullmatch(pattern, value), f"{parameter} should reject {value!r}"


CONFIGURATIONS = [
    {},
    {"BuildkiteAgentToken": "", "BuildkiteAgentTokenParameterStorePath": "/x/token"},
    {"EnableSecretsPlugin": "false"},
    {"SecretsBucket": "given-bucket"},
    {"PipelineSigningKMSKeySpec": "ECC_NIST_P256"},
    {"PipelineSigningKMSKeyId": KEY_ID},
    {"EnableEC2LogRetentionPolicy": "true"},
]


@pytest.mark.parametrize("overrides", CONFIGURATIONS)
def test_every_output_exists_in_every_configuration_and_is_never_empty(storage, overrides):
    result = rendered(storage, **overrides)
    assert set(result.outputs) == OUTPUTS  # the root can GetAtt each one unconditionally
    for name, body in result.outputs.items():
        assert len(body.get("Description", "")) > 20, f"{name} needs a Description"
        assert output(result, name) not in ("", None, []), name


def test_the_token_only_reaches_the_custom_resource(storage):
    for name, body in storage["Outputs"].items():
        assert not references(body, "BuildkiteAgentToken"), f"output {name} exposes the token"
    users = [
        name
        for name, resource in storage["Resources"].items()
        if references(resource, "BuildkiteAgentToken")
    ]
    assert users == ["AgentTokenParameter"]
    assert not references(storage.get("Metadata", {}), "BuildkiteAgentToken")


# --- Agent token ----------------------------------------------------------------------------
def test_a_given_token_is_stored_by_the_custom_resource(storage):
    result = rendered(storage, BuildkiteAgentTokenParameterStoreKMSKey=KEY_ID)
    assert result.conditions["CreateAgentTokenParameter"] is True
    resource = result.resources["AgentTokenParameter"]
    assert resource["Type"] == "AWS::CloudFormation::CustomResource"
    assert resource.get("DeletionPolicy", "Delete") == "Delete"  # deleted with the stack
    props = result.evaluate(resource["Properties"])
    assert props == {
        "ServiceToken": FUNCTION_ARN,
        "ParameterName": "/fleet/buildkite/agent-token",
        "AgentToken": "t",
        "KmsKeyId": KEY_ID,
    }
    assert output(result, "AgentTokenParameterPath") == {"Ref": "AgentTokenParameter"}
    assert output(result, "AgentTokenParameterArn") == {
        "Fn::GetAtt": ["AgentTokenParameter", "ParameterArn"]
    }
    assert output(result, "AgentTokenKMSKeyArn") == KEY_ARN


def test_the_aws_managed_key_is_reported_as_none(storage):
    result = rendered(storage)
    assert result.evaluate(result.resources["AgentTokenParameter"]["Properties"]["KmsKeyId"]) == ""
    assert output(result, "AgentTokenKMSKeyArn") == "none"
    assert (
        output(
            rendered(storage, BuildkiteAgentTokenParameterStoreKMSKey=KEY_ARN),
            "AgentTokenKMSKeyArn",
        )
        == KEY_ARN
    )


@pytest.mark.parametrize(
    ("path", "arn"),
    [
        (
            "/team/buildkite/token",
            "arn:aws:ssm:us-east-1:123456789012:parameter/team/buildkite/token",
        ),
        ("buildkite-token", "arn:aws:ssm:us-east-1:123456789012:parameter/buildkite-token"),
        (
            "arn:aws:ssm:eu-west-1:210987654321:parameter/shared/token",
            "arn:aws:ssm:eu-west-1:210987654321:parameter/shared/token",
        ),
    ],
    ids=["absolute-path", "plain-name", "cross-account-arn"],
)
def test_a_given_parameter_path_creates_nothing(storage, path, arn):
    result = rendered(storage, BuildkiteAgentToken="", BuildkiteAgentTokenParameterStorePath=path)
    assert result.conditions["CreateAgentTokenParameter"] is False
    assert "AgentTokenParameter" not in result.resources
    assert result.of_type("AWS::CloudFormation::CustomResource") == {}
    assert output(result, "AgentTokenParameterPath") == path
    assert output(result, "AgentTokenParameterArn") == arn


# --- Secrets buckets ------------------------------------------------------------------------
def test_secrets_plugin_without_a_bucket_creates_both_buckets(storage):
    result = rendered(storage)
    assert set(result.resources) >= SECRETS_RESOURCES
    assert output(result, "ManagedSecretsBucket") == {"Ref": "ManagedSecretsBucket"}
    assert output(result, "ManagedSecretsLoggingBucket") == {"Ref": "ManagedSecretsLoggingBucket"}
    assert output(result, "SecretsBucketName") == {"Ref": "ManagedSecretsBucket"}


@pytest.mark.parametrize("bucket", ["ManagedSecretsBucket", "ManagedSecretsLoggingBucket"])
def test_buckets_are_private_encrypted_versioned_and_retained(storage, bucket):
    resource = rendered(storage).resources[bucket]
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    props = resource["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_secrets_bucket_logs_to_the_logging_bucket(storage):
    props = rendered(storage).resources["ManagedSecretsBucket"]["Properties"]
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": "ManagedSecretsLoggingBucket"},
        "LogFilePrefix": "secrets-bucket/",
    }


@pytest.mark.parametrize(
    ("policy", "bucket"),
    [
        ("ManagedSecretsBucketPolicy", "ManagedSecretsBucket"),
        ("ManagedSecretsLoggingBucketPolicy", "ManagedSecretsLoggingBucket"),
    ],
)
def test_bucket_policies_deny_plain_http(storage, policy, bucket):
    resource = rendered(storage).resources[policy]["Properties"]
    assert resource["Bucket"] == {"Ref": bucket}
    denials = [
        s
        for s in resource["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denials) == 1
    assert denials[0]["Principal"] == "*"
    assert denials[0]["Action"] == "s3:*"
    assert denials[0]["Resource"] == [
        {"Fn::GetAtt": [bucket, "Arn"]},
        {"Fn::Sub": f"${{{bucket}.Arn}}/*"},
    ]


def test_logging_bucket_accepts_only_s3_logs_from_this_account_and_the_secrets_bucket(storage):
    result = rendered(storage)
    statements = result.resources["ManagedSecretsLoggingBucketPolicy"]["Properties"][
        "PolicyDocument"
    ]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allows) == 1
    allow = allows[0]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    prefix = result.resources["ManagedSecretsBucket"]["Properties"]["LoggingConfiguration"][
        "LogFilePrefix"
    ]
    assert allow["Resource"] == {"Fn::Sub": f"${{ManagedSecretsLoggingBucket.Arn}}/{prefix}*"}
    assert allow["Condition"] == {
        "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": ["ManagedSecretsBucket", "Arn"]}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }


@pytest.mark.parametrize(("days", "expected"), [(None, "90"), (14, "14")])
def test_access_logs_expire_after_the_retention_days(storage, days, expected):
    overrides = {} if days is None else {"SecretsLogRetentionDays": days}
    result = rendered(storage, **overrides)
    rules = result.resources["ManagedSecretsLoggingBucket"]["Properties"]["LifecycleConfiguration"][
        "Rules"
    ]
    expiring = [r for r in rules if r["Status"] == "Enabled" and "ExpirationInDays" in r]
    assert [str(result.evaluate(r["ExpirationInDays"])) for r in expiring] == [expected]


def test_a_given_secrets_bucket_is_used_and_nothing_is_created(storage):
    result = rendered(storage, SecretsBucket="given-bucket")
    assert not SECRETS_RESOURCES & set(result.resources)
    assert result.of_type("AWS::S3::Bucket") == {}
    assert output(result, "SecretsBucketName") == "given-bucket"
    # The reference stack's value when it created no bucket.
    assert output(result, "ManagedSecretsBucket") == "Undefined"
    assert output(result, "ManagedSecretsLoggingBucket") == "Undefined"


@pytest.mark.parametrize("bucket", ["", "given-bucket"])
def test_secrets_plugin_off_creates_and_reports_no_bucket(storage, bucket):
    result = rendered(storage, EnableSecretsPlugin="false", SecretsBucket=bucket)
    assert result.of_type("AWS::S3::Bucket") == {}
    assert result.of_type("AWS::S3::BucketPolicy") == {}
    assert output(result, "SecretsBucketName") == "none"
    for name in ("ManagedSecretsBucket", "ManagedSecretsLoggingBucket"):
        assert output(result, name) == "Undefined"


# --- Pipeline signing key -------------------------------------------------------------------
def test_key_spec_creates_an_asymmetric_signing_key_administered_by_the_account(storage):
    result = rendered(storage, PipelineSigningKMSKeySpec="ECC_NIST_P256")
    key = result.resources["PipelineSigningKey"]
    assert key["DeletionPolicy"] == "Retain"
    assert key["UpdateReplacePolicy"] == "Retain"
    props = key["Properties"]
    assert props["KeySpec"] == "ECC_NIST_P256"
    assert props["KeyUsage"] == "SIGN_VERIFY"
    statements = props["KeyPolicy"]["Statement"]
    principals = [result.evaluate(s["Principal"]) for s in statements]
    assert principals == [{"AWS": "arn:aws:iam::123456789012:root"}]
    # No role in the key policy: the fleet's instance role is created after this stack.
    assert "role" not in json.dumps(result.evaluate(props["KeyPolicy"])).lower()
    assert output(result, "PipelineSigningKMSKey") == {"Fn::GetAtt": ["PipelineSigningKey", "Arn"]}
    # The reference stack's PipelineSigningKMSKey output: Ref of the key, i.e. its key id.
    assert output(result, "CreatedPipelineSigningKMSKeyId") == {"Ref": "PipelineSigningKey"}


@pytest.mark.parametrize("access", ["sign-and-verify", "verify"])
def test_key_description_names_the_agents_access(storage, access):
    result = rendered(
        storage, PipelineSigningKMSKeySpec="ECC_NIST_P256", PipelineSigningKMSAccess=access
    )
    description = result.evaluate(
        result.resources["PipelineSigningKey"]["Properties"]["Description"]
    )
    assert access in description
    assert "instance role" in description


@pytest.mark.parametrize(
    ("given", "spec"),
    [(KEY_ID, "none"), (KEY_ID, "ECC_NIST_P256"), (KEY_ARN, "none")],
    ids=["id", "id-with-spec", "arn"],
)
def test_a_given_signing_key_creates_nothing_and_is_reported_as_an_arn(storage, given, spec):
    result = rendered(storage, PipelineSigningKMSKeyId=given, PipelineSigningKMSKeySpec=spec)
    assert result.of_type("AWS::KMS::Key") == {}
    assert output(result, "PipelineSigningKMSKey") == KEY_ARN
    assert output(result, "CreatedPipelineSigningKMSKeyId") == "none"


def test_no_signing_key_by_default(storage):
    result = rendered(storage)
    assert result.of_type("AWS::KMS::Key") == {}
    assert output(result, "PipelineSigningKMSKey") == "none"
    assert output(result, "CreatedPipelineSigningKMSKeyId") == "none"


# --- EC2 log groups -------------------------------------------------------------------------
def test_no_log_groups_without_a_retention_policy(storage):
    assert rendered(storage).of_type("AWS::Logs::LogGroup") == {}


@pytest.mark.parametrize(("days", "expected"), [(None, "30"), (7, "7")])
def test_retention_policy_creates_the_nine_log_groups(storage, days, expected):
    overrides = {"EnableEC2LogRetentionPolicy": "true"}
    if days is not None:
        overrides["EC2LogRetentionDays"] = days
    result = rendered(storage, **overrides)
    groups = result.of_type("AWS::Logs::LogGroup").values()
    assert {result.evaluate(g["Properties"]["LogGroupName"]) for g in groups} == EC2_LOG_GROUPS
    assert len(groups) == len(EC2_LOG_GROUPS)
    assert {str(result.evaluate(g["Properties"]["RetentionInDays"])) for g in groups} == {expected}


def test_existing_log_groups_can_be_skipped(storage):
    result = rendered(storage, EnableEC2LogRetentionPolicy="true", SkipEC2LogGroupCreation="true")
    assert result.of_type("AWS::Logs::LogGroup") == {}
    # The instances still apply the retention to the groups they ship to.
    assert output(result, "InstanceLogRetentionDays") == "30"


@pytest.mark.parametrize(
    "overrides",
    [{}, {"EnableEC2LogRetentionPolicy": "true"}, {"SkipEC2LogGroupCreation": "true"}],
)
def test_two_stacks_in_one_region_never_share_a_log_group(storage, overrides):
    """With the defaults a second stack failed: both created the fixed /buildkite/* groups."""
    first = rendered(storage, **overrides, ParentStackName="ci")
    second = rendered(storage, **overrides, ParentStackName="ci-prod")

    def groups(result):
        return {
            result.evaluate(g["Properties"]["LogGroupName"])
            for g in result.of_type("AWS::Logs::LogGroup").values()
        }

    assert not groups(first) & groups(second)
    first_prefix = output(first, "InstanceLogGroupPrefix")
    second_prefix = output(second, "InstanceLogGroupPrefix")
    assert (first_prefix, second_prefix) == ("/buildkite/ci", "/buildkite/ci-prod")
    assert all(name.startswith(first_prefix + "/") for name in groups(first))


@pytest.mark.parametrize(("enabled", "expected"), [("true", "30"), ("false", "none")])
def test_the_instances_are_told_the_retention_only_when_asked(storage, enabled, expected):
    result = rendered(storage, EnableEC2LogRetentionPolicy=enabled)
    assert output(result, "InstanceLogRetentionDays") == expected


def test_no_lambda_log_groups_here(storage):
    names = [
        r["Properties"].get("LogGroupName", "")
        for r in storage["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup"
    ]
    assert names
    assert all(name["Fn::Sub"].startswith("/buildkite/${ParentStackName}/") for name in names)


# --- checkov skips are justified where they are ---------------------------------------------
def test_every_checkov_skip_has_a_reason_and_s3_rules_are_not_blanket_skipped(storage):
    for name, resource in storage["Resources"].items():
        skips = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
        for skip in skips:
            assert len(skip.get("comment", "")) > 40, f"{name}: {skip['id']} needs a reason"
        if resource["Type"] == "AWS::S3::Bucket":
            assert [s["id"] for s in skips] in ([], ["CKV_AWS_18"]), name
