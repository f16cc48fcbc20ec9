"""The acceptance run's ``sam`` deployer: the commands it runs and what it deletes (no AWS)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tools.acceptance.aws import AwsAccount
from tools.acceptance.deploy import (
    SAM_MANAGED_STACK,
    DeploymentFailed,
    SamDeployer,
    StackSettings,
    run_command,
)

REGION = "eu-west-1"
SETTINGS = StackSettings(
    stack_name="acc",
    queue="acc",
    token_parameter="/acc/buildkite/agent-token",
    agents_per_instance=1,
    min_size=0,
    max_size=4,
    scale_in_idle_period=300,
    agent_tags="",
    image_id="ami-0123456789abcdef0",
)


class FakeAccount(AwsAccount):
    """Outputs of the deployed stack; no SAM managed bucket."""

    def __init__(self) -> None:
        super().__init__(lambda service: None)

    def stack_outputs(self, name: str) -> dict[str, str]:
        assert name == "acc"
        return {"AutoScalingGroupName": "acc-group"}

    def stack_status(self, name: str) -> str | None:
        return None


def option(command: list[str], flag: str) -> list[str]:
    start = command.index(flag) + 1
    values = []
    for item in command[start:]:
        if item.startswith("--"):
            break
        values.append(item)
    return values


def test_deploy_builds_once_then_deploys_with_the_parameter_path() -> None:
    commands: list[list[str]] = []
    deployer = SamDeployer(FakeAccount(), REGION, run=commands.append)

    handle = deployer.deploy(SETTINGS)
    deployer.update(replace(SETTINGS, agent_tags="acceptance=updated"))

    assert handle.group_name == "acc-group"
    assert handle.scaler_log_group == "/aws/lambda/acc-agent-scaler"
    assert [Path(command[0]).name for command in commands] == ["sam", "sam", "sam"]
    assert [command[1] for command in commands] == ["build", "deploy", "deploy"]
    deploy, update = commands[1], commands[2]
    assert option(deploy, "--stack-name") == ["acc"]
    assert option(deploy, "--region") == [REGION]
    assert option(deploy, "--capabilities") == ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
    assert option(deploy, "--s3-prefix") == ["acc"]
    assert "--no-confirm-changeset" in deploy
    overrides = option(deploy, "--parameter-overrides")
    assert "BuildkiteAgentTokenParameterStorePath=/acc/buildkite/agent-token" in overrides
    assert "ImageId=ami-0123456789abcdef0" in overrides
    assert not any(item.startswith("BuildkiteAgentTags=") for item in overrides)
    assert not any(item.startswith("BuildkiteAgentToken=") for item in overrides)
    assert "BuildkiteAgentTags=acceptance=updated" in option(update, "--parameter-overrides")


def test_a_packaged_template_is_deployed_without_building() -> None:
    commands: list[list[str]] = []
    deployer = SamDeployer(
        FakeAccount(), REGION, template=Path("packaged.yaml"), run=commands.append
    )
    deployer.deploy(SETTINGS)
    (command,) = commands
    assert command[1] == "deploy"
    assert option(command, "--template-file") == ["packaged.yaml"]


def test_a_failing_command_is_a_deployment_failure() -> None:
    with pytest.raises(DeploymentFailed, match="exited with 3"):
        run_command(["sh", "-c", "exit 3"])


@mock_aws
def test_delete_removes_the_stack_and_the_runs_artifacts_only() -> None:
    s3 = boto3.client("s3", region_name=REGION)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    bucket = "aws-sam-cli-managed-default-samclisourcebucket-x"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    managed: dict[str, Any] = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"SourceBucket": {"Value": bucket}},
    }
    cloudformation.create_stack(StackName=SAM_MANAGED_STACK, TemplateBody=json.dumps(managed))
    cloudformation.create_stack(
        StackName="acc",
        TemplateBody=json.dumps(
            {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"AutoScalingGroupName": {"Value": "acc-group"}},
            }
        ),
    )
    for key in ("acc/template.yaml", "acc/layer.zip", "someone-else/template.yaml"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    account = AwsAccount.from_region(REGION)
    deployer = SamDeployer(account, REGION, run=lambda command: None)
    deployer.deploy(SETTINGS)
    assert deployer.leftovers() == [
        "stack acc (CREATE_COMPLETE)",
        f"s3://{bucket}/acc/ (2 objects)",
    ]

    deployer.delete()

    assert deployer.leftovers() == []
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["someone-else/template.yaml"]
