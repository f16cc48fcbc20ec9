"""The values a root stack hands nested/fleet.yaml that have no default, for template tests.

One place, so a parameter added to the fleet stack is added to every test that renders it.
"""

from __future__ import annotations

ROOT_STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/buildkite/0f1e2d3c"
INSTALL_ASSETS_LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:buildkite-InstallAssets:7"

FLEET_PARAMETERS: dict[str, str] = {
    "ParentStackName": "buildkite",
    "ParentStackId": ROOT_STACK_ID,
    "InstanceLogGroupPrefix": "/buildkite/buildkite",
    "AzRebalancingSuspenderFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:a",
    "StopBuildkiteAgentsFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:b",
    "Subnets": "subnet-0123456789abcdef0",
    "SecurityGroupId": "sg-0123456789abcdef0",
    "AgentTokenParameterPath": "/buildkite/agent-token",
    "AgentTokenParameterArn": "arn:aws:ssm:us-east-1:123456789012:parameter/buildkite/agent-token",
    "InstallAssetsLayerArn": INSTALL_ASSETS_LAYER,
}
