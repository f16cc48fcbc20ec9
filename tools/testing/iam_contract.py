"""The IAM contract between the root template's roles and what the functions' code calls.

`ContractStack.from_template` translates template.yaml with SAM's own translator (the offline
transform `sam build`'s library runs, see tools/sar_check/packaged.py), renders it for a set of
parameter values (tools/cfn_template.py) and models one deployment of it (`SimulatedDeployment`:
what each `Ref` and `Fn::GetAtt` resolves to, with the nested stacks' outputs given). The
nested fleet template is rendered with the parameters the root passes it, so the tags this
stack's Auto Scaling group and instances carry are the ones the template really sets.

`requests_for` turns one recorded call (tools/testing/aws_calls.py) into the authorization
requests AWS evaluates for it in that deployment. A test names resources its own way (a group
called "buildkite-agents", a parameter "/fleet/buildkite/agent-token"); what a function acts on
in a deployment is fixed by the wiring (its environment and custom-resource properties), so each
resource kind maps to this stack's resource: any group to the stack's group, any parameter to
the agent token parameter, any table to the stack's table. A call with no rule here fails the
contract (`NoResourceRule`) instead of being waved through.

Some calls are made only in some configurations (`CONFIGURATION_CALLS`: the scaler reads and
resizes the warm pool only when the stack has one, and its role allows that only then). A
recorded call of that kind is checked against the configurations that make it, and skipped in
the others: there, least privilege means the role does not allow it, which
tests/templates/test_iam_contract.py checks separately.

The checks (`call_violations`, `lambda_service_violations`, `functions_without_calls`) return
readable findings; an empty list means the contract holds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tools.cfn_template import Rendered, load_template, render
from tools.sar_check.packaged import sam_transform, with_placeholder_artifacts
from tools.testing.aws_calls import AwsCall
from tools.testing.iam import Request, allows

REPOSITORY = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK_NAME = "ci"
STACK_ID = (
    f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/"
    "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
)

# The configuration with every function: the push trigger on.
PUSH_TRIGGER = {
    "BuildkiteAgentToken": "not-a-real-token",
    "BuildkiteEventBusName": "aws.partner/buildkite.com/example/0123",
}

# What Lambda itself needs from a function's role for each event source it polls.
EVENT_SOURCE_ACTIONS = {
    "sqs": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
}
_DESCRIBE_ONLY = {
    ("autoscaling", "DescribeAutoScalingGroups"),
    ("autoscaling", "DescribeAutoScalingInstances"),
    ("autoscaling", "DescribeLifecycleHooks"),
    ("autoscaling", "DescribeWarmPool"),
    ("ec2", "DescribeInstances"),
    ("ssm", "ListCommandInvocations"),
}
_GROUP_OPERATIONS = {
    "CompleteLifecycleAction",
    "CreateOrUpdateTags",
    "DeleteTags",
    "RecordLifecycleActionHeartbeat",
    "PutWarmPool",
    "ResumeProcesses",
    "SetDesiredCapacity",
    "SetInstanceProtection",
    "SuspendProcesses",
    "TerminateInstanceInAutoScalingGroup",
    "UpdateAutoScalingGroup",
}
_TABLE_OPERATIONS = {"DeleteItem", "GetItem", "PutItem", "UpdateItem"}
_WARM_POOL = ("EnableWarmPool", "true")
# (service, operation) -> the (parameter, value) of the configurations whose functions make it.
CONFIGURATION_CALLS: dict[tuple[str, str], tuple[str, str]] = {
    ("autoscaling", "DescribeWarmPool"): _WARM_POOL,
    ("autoscaling", "PutWarmPool"): _WARM_POOL,
}


class NoResourceRule(LookupError):
    """A recorded call whose resource this model does not know how to name."""


class SimulatedDeployment:
    """What `Ref` and `Fn::GetAtt` resolve to in one deployment of a rendered template."""

    def __init__(self, rendered: Rendered, nested_outputs: Mapping[str, Mapping[str, str]]):
        self.rendered = rendered
        self.nested_outputs = nested_outputs
        self.stack_name = str(rendered.parameters["AWS::StackName"])

    def ref(self, logical_id: str) -> Any:
        resource_type, properties = self._resource(logical_id)
        name = self._name(logical_id, resource_type, properties)
        if resource_type == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        if resource_type == "AWS::CloudFormation::Stack":
            return f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/example"
        if resource_type == "AWS::Lambda::LayerVersion":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{name}:1"
        return name

    def attribute(self, logical_id: str, name: str) -> Any:
        resource_type, properties = self._resource(logical_id)
        if resource_type == "AWS::CloudFormation::Stack" and name.startswith("Outputs."):
            output = name.removeprefix("Outputs.")
            return self.nested_outputs.get(logical_id, {}).get(output, f"{logical_id}.{output}")
        if name != "Arn":
            raise NoResourceRule(f"no value for {logical_id}.{name} ({resource_type})")
        physical = self._name(logical_id, resource_type, properties)
        arns = {
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{physical}:*",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{physical}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{physical}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}",
            "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{physical}",
        }
        if resource_type not in arns:
            raise NoResourceRule(f"no ARN for {logical_id} ({resource_type})")
        return arns[resource_type]

    def _resource(self, logical_id: str) -> tuple[str, dict[str, Any]]:
        resource = self.rendered.resources.get(logical_id)
        if resource is None:
            raise NoResourceRule(f"{logical_id} is not created in this configuration")
        return resource["Type"], resource.get("Properties") or {}

    def _name(self, logical_id: str, resource_type: str, properties: Mapping[str, Any]) -> str:
        name_property = {
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::IAM::Role": "RoleName",
            "AWS::Lambda::Function": "FunctionName",
        }.get(resource_type)
        if name_property and name_property in properties:
            return str(self.rendered.evaluate(properties[name_property], self))
        return f"{self.stack_name}-{logical_id}-1EXAMPLE2ABCD"  # CloudFormation's generated name


@dataclass(frozen=True)
class FunctionUnderContract:
    logical_id: str
    handler: str  # e.g. "agent_scaler.handler.lambda_handler"
    role: str
    policies: tuple[dict[str, Any], ...]

    @property
    def package(self) -> str:
        return self.handler.partition(".")[0]


@dataclass
class ContractStack:
    """The root stack, translated and rendered for one configuration, and its deployment."""

    root: Rendered
    deployment: SimulatedDeployment
    fleet: Rendered
    nested_outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_template(
        cls,
        parameters: Mapping[str, str],
        template: Mapping[str, Any] | None = None,
        stack_name: str = STACK_NAME,
        stack_id: str = STACK_ID,
    ) -> ContractStack:
        submitted = (
            template if template is not None else load_template(REPOSITORY / "template.yaml")
        )
        translated = sam_transform(
            with_placeholder_artifacts(copy.deepcopy(dict(submitted))), REGION
        )
        root = render(translated, parameters)
        root.parameters.update({"AWS::StackName": stack_name, "AWS::StackId": stack_id})
        key = root.parameters.get("BuildkiteAgentTokenParameterStoreKMSKey") or ""
        token_key = key if key.startswith("arn:") else f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}"
        token_name = f"/{stack_name}/buildkite/agent-token"
        nested_outputs = {
            "Fleet": {
                "AutoScalingGroupName": f"{stack_name}-Fleet-1EXAMPLE-AgentAutoScaleGroup-2EXAMPLE"
            },
            "Storage": {
                "AgentTokenParameterPath": token_name,
                "AgentTokenParameterArn": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{token_name}",
                "AgentTokenKMSKeyArn": token_key if key else "none",
                "SecretsBucketName": "none",
                "PipelineSigningKMSKey": "none",
            },
            "Network": {
                "Subnets": "subnet-0example1,subnet-0example2",
                "SecurityGroupId": "sg-0e1",
            },
        }
        deployment = SimulatedDeployment(root, nested_outputs)
        fleet_parameters = root.evaluate(
            root.resources["Fleet"]["Properties"]["Parameters"], deployment
        )
        fleet = render(load_template(REPOSITORY / "nested" / "fleet.yaml"), fleet_parameters)
        fleet.parameters.update({"AWS::StackName": f"{stack_name}-Fleet-1EXAMPLE"})
        return cls(root, deployment, fleet, nested_outputs)

    # --- what the stack holds ------------------------------------------------------------
    def functions(self) -> dict[str, FunctionUnderContract]:
        functions = {}
        for logical_id, resource in self.root.of_type("AWS::Lambda::Function").items():
            properties = resource["Properties"]
            role = properties["Role"]["Fn::GetAtt"][0]
            functions[logical_id] = FunctionUnderContract(
                logical_id, properties["Handler"], role, self.role_policies(role)
            )
        return functions

    def role_policies(self, role: str) -> tuple[dict[str, Any], ...]:
        properties = self.root.resources[role]["Properties"]
        if properties.get("ManagedPolicyArns"):
            raise NoResourceRule(f"{role}: managed policies cannot be evaluated offline")
        return tuple(
            self.root.evaluate(policy["PolicyDocument"], self.deployment)
            for policy in properties.get("Policies", [])
        )

    @property
    def group_arn(self) -> str:
        name = self.nested_outputs["Fleet"]["AutoScalingGroupName"]
        return (
            f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:"
            f"1a2b3c4d-0000-4000-8000-000000000001:autoScalingGroupName/{name}"
        )

    @property
    def group_tags(self) -> dict[str, str]:
        group = self.fleet.resources["AgentAutoScaleGroup"]["Properties"]
        return _tags(self.fleet, group.get("Tags", []))

    @property
    def instance_tags(self) -> dict[str, str]:
        data = self.fleet.resources["AgentLaunchTemplate"]["Properties"]["LaunchTemplateData"]
        (instance,) = [s for s in data["TagSpecifications"] if s["ResourceType"] == "instance"]
        return _tags(self.fleet, instance["Tags"])

    def makes(self, call: AwsCall) -> bool:
        """Whether this configuration's functions make ``call`` at all (`CONFIGURATION_CALLS`)."""
        needed = CONFIGURATION_CALLS.get((call.service, call.operation))
        if needed is None:
            return True
        parameter, value = needed
        return str(self.root.parameters.get(parameter)) == value

    def arn_of_only(self, resource_type: str) -> str:
        found = list(self.root.of_type(resource_type))
        if len(found) != 1:
            raise NoResourceRule(f"expected one {resource_type} in the stack, found {found}")
        return self.deployment.attribute(found[0], "Arn")


@cache
def role_policies(role: str) -> tuple[dict[str, Any], ...]:
    """A role's policy documents as the template gives them (push trigger on), resolved."""
    return ContractStack.from_template(PUSH_TRIGGER).role_policies(role)


def _tags(rendered: Rendered, tags: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    return {str(rendered.evaluate(t["Key"])): str(rendered.evaluate(t["Value"])) for t in tags}


def _tag_context(tags: Mapping[str, str], *prefixes: str) -> dict[str, str]:
    return {f"{prefix}/{key}": value for key, value in tags.items() for prefix in prefixes}


# --- recorded call -> authorization requests ---------------------------------------------------
def requests_for(call: AwsCall, stack: ContractStack) -> list[Request]:
    """What AWS authorizes for `call` when the function makes it in `stack`'s deployment."""
    service, operation, params = call.service, call.operation, call.parameters
    if (service, operation) in _DESCRIBE_ONLY:
        return [Request(call.action, "*")]  # no resource-level permissions for these
    if service == "autoscaling" and operation in _GROUP_OPERATIONS:
        context = _tag_context(stack.group_tags, "autoscaling:ResourceTag", "aws:ResourceTag")
        return [Request(call.action, stack.group_arn, context)]
    if service == "ssm" and operation in {"GetParameter", "PutParameter", "DeleteParameter"}:
        token = stack.nested_outputs["Storage"]
        requests = [Request(call.action, token["AgentTokenParameterArn"])]
        key = token["AgentTokenKMSKeyArn"]
        via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}
        # SSM calls KMS on the caller's behalf for a SecureString under a customer managed key.
        if key != "none" and operation == "GetParameter" and params.get("WithDecryption"):
            requests.append(Request("kms:Decrypt", key, via_ssm))
        if key != "none" and operation == "PutParameter" and params.get("Type") == "SecureString":
            requests.append(Request("kms:Encrypt", key, via_ssm))
        return requests
    if service == "ssm" and operation == "SendCommand":
        document = f"arn:aws:ssm:{REGION}::document/{params['DocumentName']}"
        context = _tag_context(stack.instance_tags, "ssm:resourceTag", "aws:ResourceTag")
        return [Request(call.action, document)] + [
            Request(call.action, f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance}", context)
            for instance in params.get("InstanceIds", [])
        ]
    if service == "dynamodb" and operation in _TABLE_OPERATIONS:
        return [Request(call.action, stack.arn_of_only("AWS::DynamoDB::Table"))]
    raise NoResourceRule(
        f"{call.action} (from {call.package}): tools/testing/iam_contract.py has no rule for "
        "the resource it acts on; add one"
    )


# --- the checks --------------------------------------------------------------------------------
def functions_without_calls(stack: ContractStack, calls: Iterable[AwsCall]) -> list[str]:
    """Functions whose handler made no recorded call (the contract would check nothing)."""
    handlers = {call.entry_point for call in calls}
    return [
        f"{function.logical_id} ({function.handler})"
        for function in stack.functions().values()
        if function.handler not in handlers
    ]


def call_violations(stack: ContractStack, calls: Iterable[AwsCall]) -> list[str]:
    """Recorded calls that the calling function's role would not allow.

    A call made under a function's handler is checked against that function's role. A call
    made by a package's code outside any handler (a test driving a module directly) must be
    allowed by the role of at least one function of that package.
    """
    functions = stack.functions()
    by_handler = {function.handler: function for function in functions.values()}
    findings: set[str] = set()
    for call in calls:
        if not stack.makes(call):
            continue  # made only in other configurations (see CONFIGURATION_CALLS)
        function = by_handler.get(call.entry_point or "")
        candidates = (
            [function]
            if function is not None
            else [f for f in functions.values() if f.package == call.package]
        )
        if not candidates:
            continue  # a package whose functions this configuration does not create
        for request in requests_for(call, stack):
            if not any(allows(candidate.policies, request) for candidate in candidates):
                roles = " or ".join(sorted({c.role for c in candidates}))
                findings.add(
                    f"{call.package} calls {request.describe()}, which {roles} does not allow "
                    f"(recorded in {call.test or 'no test'})"
                )
    return sorted(findings)


def lambda_service_violations(stack: ContractStack) -> list[str]:
    """What Lambda needs from each function's role: its event sources, logs and traces."""
    functions = stack.functions()
    findings = []
    for mapping_id, mapping in stack.root.of_type("AWS::Lambda::EventSourceMapping").items():
        properties = mapping["Properties"]
        function = functions[properties["FunctionName"]["Ref"]]
        source = str(stack.root.evaluate(properties["EventSourceArn"], stack.deployment))
        service = source.split(":")[2]
        if service not in EVENT_SOURCE_ACTIONS:
            findings.append(f"{mapping_id}: no rule for event sources of service {service}")
            continue
        findings.extend(
            f"{mapping_id}: Lambda polls {source} as {function.role}, which does not allow {action}"
            for action in EVENT_SOURCE_ACTIONS[service]
            if not allows(function.policies, Request(action, source))
        )
    for function in functions.values():
        properties = stack.root.resources[function.logical_id]["Properties"]
        needs = []
        log_group = properties.get("LoggingConfig", {}).get("LogGroup")
        if log_group is not None:
            name = stack.root.evaluate(log_group, stack.deployment)
            stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:log-stream:2026/01/01/x"
            needs += [Request("logs:CreateLogStream", stream), Request("logs:PutLogEvents", stream)]
        if properties.get("TracingConfig", {}).get("Mode") == "Active":
            needs += [
                Request("xray:PutTraceSegments", "*"),
                Request("xray:PutTelemetryRecords", "*"),
            ]
        findings.extend(
            f"{function.logical_id}: its role {function.role} does not allow {need.describe()}"
            for need in needs
            if not allows(function.policies, need)
        )
    return findings
