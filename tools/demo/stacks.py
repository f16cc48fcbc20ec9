"""The project's nested templates, created in moto's CloudFormation, and what moto leaves out.

Each of ``nested/network.yaml``, ``nested/storage.yaml``, ``nested/fleet.yaml`` and
``nested/monitoring.yaml`` is sent to moto's CreateStack with demo parameters. Two things are
done to the body first, and reported:

- Its conditions are evaluated locally (``tools.cfn_template.render``) and the template sent is
  the one CloudFormation would act on for these parameters: only the resources whose condition
  holds, with ``Fn::If`` and ``AWS::NoValue`` resolved. moto mis-evaluates conditions built
  from other conditions (``!And [!Not [!Condition A], ...]``) and keeps ``AWS::NoValue`` list
  items as nulls, so the raw bodies fail there.
- Custom resources are left out: their ServiceTokens are the root stack's Lambda functions,
  which moto cannot invoke. The demo does what each function would have done.

Afterwards every resource the rendered template declares is looked up in moto's
ListStackResources; each one moto did not create (and the group's lifecycle hook, which moto
ignores inside an AutoScalingGroup) becomes a ``Gap`` that names the nearest equivalent the demo
created through the API instead. With ``FleetParameters.warm_pool`` the fleet stack gets
EnableWarmPool=true, OnDemandPercentage=100 and one instance type; moto's CloudFormation skips
``AWS::AutoScaling::WarmPool``, so its properties go to PutWarmPool (moto stores the
configuration; ``tools.demo.warm_pool`` plays the instances). The agent token is stored as a
SecureString through the SSM API, as the storage stack's token function does, and handed to the
storage stack as an existing parameter (``BuildkiteAgentTokenParameterStorePath``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from az_rebalancing_suspender.suspender import suspend_az_rebalancing

from tools.cfn_template import Rendered, load_template, render, rule_violations

REPOSITORY = Path(__file__).resolve().parents[2]
NESTED = REPOSITORY / "nested"
CUSTOM_RESOURCE_TYPES = ("AWS::CloudFormation::CustomResource",)
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
# Placeholder ServiceTokens: the root stack would pass its functions' ARNs.
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:{name}"
# The root's install assets layer; unused here, since the demo gives an ImageId.
INSTALL_ASSETS_LAYER_ARN = "arn:aws:lambda:us-east-1:123456789012:layer:{name}:1"
# An AMI moto knows; the template's AgentImages mapping has no row until an image is built.
DEMO_IMAGE_ID = "ami-12c6146b"


class DeploymentError(RuntimeError):
    """A stack could not be created in moto; the message says which and why."""


@dataclass(frozen=True)
class StackResource:
    logical_id: str
    resource_type: str
    physical_id: str
    status: str


@dataclass(frozen=True)
class Gap:
    """A resource of the template that moto did not create, and what the demo did instead."""

    stack: str
    logical_id: str
    resource_type: str
    equivalent: str


@dataclass(frozen=True)
class DeployedStack:
    name: str
    template: str
    resources: tuple[StackResource, ...]
    outputs: dict[str, str]


@dataclass
class Deployment:
    """The nested stacks and every gap that was filled by API calls instead."""

    stacks: list[DeployedStack] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    def stack(self, name: str) -> DeployedStack:
        return next(stack for stack in self.stacks if stack.name == name)

    @property
    def group_name(self) -> str:
        return self.stack("fleet").outputs["AutoScalingGroupName"]

    @property
    def token_parameter(self) -> str:
        return self.stack("storage").outputs["AgentTokenParameterPath"]


@dataclass(frozen=True)
class WarmPoolParameters:
    """The fleet's warm pool parameters (EnableWarmPool=true), by their stack names."""

    min_size: int = 0
    # -1: the scaler sizes the pool from recent demand.
    max_prepared_capacity: int = -1
    pool_state: str = "Stopped"
    reuse_on_scale_in: bool = True
    # A warm pool needs an on-demand group with one instance type.
    instance_type: str = "t3.large"

    def stack_parameters(self) -> dict[str, str]:
        return {
            "EnableWarmPool": "true",
            "WarmPoolMinSize": str(self.min_size),
            "WarmPoolMaxPreparedCapacity": str(self.max_prepared_capacity),
            "WarmPoolState": self.pool_state,
            "WarmPoolReuseOnScaleIn": str(self.reuse_on_scale_in).lower(),
            "OnDemandPercentage": "100",
            "InstanceTypes": self.instance_type,
            # The template's check that InstanceTypes names exactly this one type.
            "WarmPoolInstanceType": self.instance_type,
        }


@dataclass(frozen=True)
class FleetParameters:
    """The demo's choices for the templates' parameters (everything else keeps its default)."""

    parent_stack_name: str
    queue: str
    agent_endpoint: str
    agents_per_instance: int
    max_size: int
    scale_in_idle_period: int
    # BuildkiteAgentTags: it lands in the launch template's user data.
    agent_tags: str = ""
    # A SecureString the caller created; empty: the demo puts the token at its own path.
    token_parameter: str = ""
    # None: no warm pool (the stack's default).
    warm_pool: WarmPoolParameters | None = None


def deploy(
    clients: Callable[[str], Any],
    parameters: FleetParameters,
    token: str | None,
    log: Callable[[str], None],
) -> Deployment:
    """Create network, storage, fleet and monitoring in moto; fill each gap; return them.

    ``token``: put at ``/<ParentStackName>/buildkite/agent-token``; None when
    ``parameters.token_parameter`` names a SecureString the caller created.
    """
    deployment = Deployment()
    prefix = parameters.parent_stack_name

    network = _create(clients, deployment, "network", f"{prefix}-network", {}, log)

    token_parameter = parameters.token_parameter or f"/{prefix}/buildkite/agent-token"
    if token is not None:
        clients("ssm").put_parameter(
            Name=token_parameter,
            Value=token,
            Type="SecureString",
            Description=f"Buildkite agent token of {prefix} (demo)",
            Overwrite=True,
        )
    storage_parameters = {
        "ParentStackName": prefix,
        "BuildkiteAgentTokenParameterStorePath": token_parameter,
        "AgentTokenFunctionArn": FUNCTION_ARN.format(name=f"{prefix}-agent-token"),
    }
    where = (
        "put through the SSM API (what the root's agent token function does; moto cannot invoke it)"
        if token is not None
        else "created by the caller"
    )
    token_gap = Gap(
        "storage",
        "AgentTokenParameter",
        "AWS::CloudFormation::CustomResource",
        f"SecureString {token_parameter} {where} and given to the stack as "
        "BuildkiteAgentTokenParameterStorePath",
    )
    storage = _create(clients, deployment, "storage", f"{prefix}-storage", storage_parameters, log)
    log(f"  {_describe(token_gap)}")
    deployment.gaps.append(token_gap)

    fleet = _create(
        clients,
        deployment,
        "fleet",
        f"{prefix}-fleet",
        _fleet_parameters(parameters, network, storage),
        log,
    )

    monitoring_parameters = {
        "ParentStackName": prefix,
        "BuildkiteQueue": parameters.queue,
        # The root's scheduled scaler function; the demo runs its code in process instead.
        "AgentScalerFunctionName": f"{prefix}-agent-scaler",
        "AutoScalingGroupName": fleet.outputs["AutoScalingGroupName"],
    }
    _create(clients, deployment, "monitoring", f"{prefix}-monitoring", monitoring_parameters, log)
    return deployment


def update_fleet(
    clients: Callable[[str], Any], deployment: Deployment, parameters: FleetParameters
) -> Gap | None:
    """Update the fleet stack in place with ``parameters`` (what a root stack update passes on).

    moto's UpdateStack changes no resource, so a change of the launch template's user data
    (e.g. BuildkiteAgentTags) is made as CloudFormation makes it: a new launch template version
    that the group then uses. Returns that gap (None when the user data did not change).
    Raises ``DeploymentError`` unless the update completes.
    """
    cfn = clients("cloudformation")
    stack_name = f"{parameters.parent_stack_name}-fleet"
    values = _fleet_parameters(parameters, deployment.stack("network"), deployment.stack("storage"))
    template = load_template(NESTED / "fleet.yaml")
    rendered = render(template, values)
    body, _ = _moto_body(template, rendered)
    try:
        cfn.update_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(body),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
            Capabilities=CAPABILITIES,
        )
        status = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
    except Exception as exc:
        raise DeploymentError(f"moto could not update {stack_name}: {exc}") from exc
    if status != "UPDATE_COMPLETE":
        raise DeploymentError(f"{stack_name} ended its update in {status}")
    return _new_launch_template_version(clients, stack_name, rendered, deployment.group_name)


def _new_launch_template_version(
    clients: Callable[[str], Any], stack_name: str, rendered: Rendered, group_name: str
) -> Gap | None:
    ec2 = clients("ec2")
    autoscaling = clients("autoscaling")
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])[
        "AutoScalingGroups"
    ][0]
    # A warm pool fleet has a plain LaunchTemplate; the default one a mixed instances policy.
    policy = group.get("MixedInstancesPolicy")
    specification = (
        policy["LaunchTemplate"]["LaunchTemplateSpecification"]
        if policy is not None
        else group["LaunchTemplate"]
    )
    template_id = specification["LaunchTemplateId"]
    current = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, Versions=[specification["Version"]]
    )["LaunchTemplateVersions"][0]
    user_data_source = rendered.resources["AgentLaunchTemplate"]["Properties"][
        "LaunchTemplateData"
    ]["UserData"]["Fn::Base64"]
    in_this_stack = replace(
        rendered, parameters={**rendered.parameters, "AWS::StackName": stack_name}
    )
    user_data = base64.b64encode(in_this_stack.evaluate(user_data_source).encode()).decode()
    if current["LaunchTemplateData"].get("UserData") == user_data:
        return None
    version = ec2.create_launch_template_version(
        LaunchTemplateId=template_id,
        SourceVersion=str(current["VersionNumber"]),
        LaunchTemplateData={"UserData": user_data},
    )["LaunchTemplateVersion"]["VersionNumber"]
    moved = {"LaunchTemplateId": template_id, "Version": str(version)}
    if policy is None:
        autoscaling.update_auto_scaling_group(AutoScalingGroupName=group_name, LaunchTemplate=moved)
    else:
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=group_name,
            MixedInstancesPolicy={
                "LaunchTemplate": {
                    "LaunchTemplateSpecification": moved,
                    "Overrides": policy["LaunchTemplate"].get("Overrides", []),
                }
            },
        )
    return Gap(
        "fleet",
        "AgentLaunchTemplate",
        "AWS::EC2::LaunchTemplate",
        f"version {version} of {template_id} with the new user data, and the group moved to it "
        "(moto's UpdateStack updates no resource)",
    )


def _fleet_parameters(
    parameters: FleetParameters, network: DeployedStack, storage: DeployedStack
) -> dict[str, str]:
    prefix = parameters.parent_stack_name
    warm_pool = parameters.warm_pool.stack_parameters() if parameters.warm_pool is not None else {}
    return {
        "ParentStackName": prefix,
        # The root stack's id in a real deployment; the demo has no root stack.
        "ParentStackId": f"arn:aws:cloudformation:us-east-1:123456789012:stack/{prefix}/demo",
        "AzRebalancingSuspenderFunctionArn": FUNCTION_ARN.format(name=f"{prefix}-az-rebalancing"),
        "StopBuildkiteAgentsFunctionArn": FUNCTION_ARN.format(name=f"{prefix}-stop-agents"),
        "InstallAssetsLayerArn": INSTALL_ASSETS_LAYER_ARN.format(name=f"{prefix}-install-assets"),
        "Subnets": network.outputs["Subnets"],
        "SecurityGroupId": network.outputs["SecurityGroupId"],
        "AgentTokenParameterPath": storage.outputs["AgentTokenParameterPath"],
        "AgentTokenParameterArn": storage.outputs["AgentTokenParameterArn"],
        "SecretsBucketName": storage.outputs["SecretsBucketName"],
        "InstanceLogGroupPrefix": storage.outputs["InstanceLogGroupPrefix"],
        "InstanceLogRetentionDays": storage.outputs["InstanceLogRetentionDays"],
        "BuildkiteQueue": parameters.queue,
        "AgentEndpoint": parameters.agent_endpoint,
        "AgentsPerInstance": str(parameters.agents_per_instance),
        "ScaleInIdlePeriod": str(parameters.scale_in_idle_period),
        "MaxSize": str(parameters.max_size),
        "BuildkiteAgentTags": parameters.agent_tags,
        "ImageId": DEMO_IMAGE_ID,
        **warm_pool,
    }


def _create(
    clients: Callable[[str], Any],
    deployment: Deployment,
    short_name: str,
    stack_name: str,
    parameters: Mapping[str, str],
    log: Callable[[str], None],
) -> DeployedStack:
    cfn = clients("cloudformation")
    path = NESTED / f"{short_name}.yaml"
    template = load_template(path)
    violations = rule_violations(template, parameters)
    if violations:
        raise DeploymentError(f"{path.name}: the demo parameters break its rules: {violations}")
    rendered = render(template, parameters)
    body, left_out = _moto_body(template, rendered)
    try:
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=json.dumps(body),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=CAPABILITIES,
        )
        description = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except Exception as exc:
        raise DeploymentError(f"moto could not create {path.name} as {stack_name}: {exc}") from exc
    if description["StackStatus"] != "CREATE_COMPLETE":
        raise DeploymentError(
            f"{stack_name} ended in {description['StackStatus']}: "
            f"{description.get('StackStatusReason') or 'no reason given'}"
        )
    listed = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    resources = tuple(
        StackResource(
            item["LogicalResourceId"],
            item["ResourceType"],
            item.get("PhysicalResourceId", ""),
            item["ResourceStatus"],
        )
        for item in listed
        if item.get("LogicalResourceId")
    )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
    stack = DeployedStack(short_name, f"nested/{path.name}", resources, outputs)
    deployment.stacks.append(stack)
    log(
        f"created stack {stack_name} from nested/{path.name}: "
        f"{len(resources)} resources ({', '.join(sorted(r.logical_id for r in resources))})"
    )

    physical = {r.logical_id: r.physical_id for r in resources}
    types = {name: resource["Type"] for name, resource in rendered.resources.items()}
    for logical_id, resource in rendered.resources.items():
        if logical_id in physical and logical_id not in left_out:
            continue
        equivalent = _fill_gap(clients, logical_id, resource, rendered, physical, types)
        deployment.gaps.append(Gap(short_name, logical_id, resource["Type"], equivalent))
    deployment.gaps.extend(_lifecycle_hooks(clients, short_name, rendered, physical))
    for gap in deployment.gaps:
        if gap.stack == short_name:
            log(f"  {_describe(gap)}")
    return stack


def _describe(gap: Gap) -> str:
    return f"not created by moto: {gap.logical_id} ({gap.resource_type}); instead {gap.equivalent}"


def _moto_body(template: Mapping[str, Any], rendered: Rendered) -> tuple[dict[str, Any], set[str]]:
    """The template as CloudFormation would act on it, minus custom resources."""
    left_out = {
        name
        for name, resource in rendered.resources.items()
        if resource["Type"].startswith("Custom::") or resource["Type"] in CUSTOM_RESOURCE_TYPES
    }
    kept = [name for name in rendered.resources if name not in left_out]
    resources = {}
    for name in kept:
        resource = {k: v for k, v in rendered.resources[name].items() if k != "Condition"}
        depends_on = resource.get("DependsOn")
        if depends_on is not None:
            names = [depends_on] if isinstance(depends_on, str) else list(depends_on)
            resource["DependsOn"] = [n for n in names if n in kept]
        resources[name] = resource
    outputs = {
        name: {k: v for k, v in output.items() if k != "Condition"}
        for name, output in rendered.outputs.items()
    }
    body = {
        key: template[key]
        for key in ("AWSTemplateFormatVersion", "Description", "Parameters", "Mappings")
        if key in template
    }
    body["Resources"] = resources
    body["Outputs"] = outputs
    return body, left_out


def _fill_gap(
    clients: Callable[[str], Any],
    logical_id: str,
    resource: Mapping[str, Any],
    rendered: Rendered,
    physical: Mapping[str, str],
    types: Mapping[str, str],
) -> str:
    """Create the nearest equivalent of one resource moto left out; describe what was done."""
    resource_type = resource["Type"]
    properties = _resolve(resource.get("Properties", {}), rendered, physical, types)
    if resource_type == "AWS::S3::BucketPolicy":
        clients("s3").put_bucket_policy(
            Bucket=properties["Bucket"], Policy=json.dumps(properties["PolicyDocument"])
        )
        return f"PutBucketPolicy on {properties['Bucket']} with the template's policy document"
    if resource_type == "AWS::CloudWatch::Alarm":
        clients("cloudwatch").put_metric_alarm(**_alarm_request(properties))
        return f"PutMetricAlarm {properties['AlarmName']} with the template's properties"
    if logical_id == "AzRebalancingSuspender":
        group = properties["AutoScalingGroupName"]
        suspend_az_rebalancing(clients("autoscaling"), group)
        return (
            f"AZRebalance suspended on {group} by the az_rebalancing_suspender function's own "
            "code, called directly (moto cannot invoke the root's function)"
        )
    if resource_type == "AWS::AutoScaling::WarmPool":
        request = _put_warm_pool_request(properties)
        clients("autoscaling").put_warm_pool(**request)
        return (
            f"PutWarmPool on {request['AutoScalingGroupName']} with the template's properties "
            "(moto keeps the configuration but never launches instances into a pool: the demo's "
            "fleet plays the pool, see tools.demo.warm_pool)"
        )
    if logical_id == "StopBuildkiteAgents":
        return "nothing: on Create the stop_buildkite_agents function only records the group"
    return "not needed by the demo: nothing created instead"


def _put_warm_pool_request(properties: Mapping[str, Any]) -> dict[str, Any]:
    """PutWarmPool's arguments from an AWS::AutoScaling::WarmPool's resolved properties."""
    request: dict[str, Any] = {"AutoScalingGroupName": properties["AutoScalingGroupName"]}
    for name in ("MinSize", "MaxGroupPreparedCapacity"):
        if name in properties:
            request[name] = int(properties[name])
    if "PoolState" in properties:
        request["PoolState"] = properties["PoolState"]
    reuse = properties.get("InstanceReusePolicy")
    if reuse is not None:
        value = reuse.get("ReuseOnScaleIn", False)
        request["InstanceReusePolicy"] = {
            "ReuseOnScaleIn": value is True or str(value).lower() == "true"
        }
    return request


def _alarm_request(properties: Mapping[str, Any]) -> dict[str, Any]:
    """PutMetricAlarm's arguments from an alarm's resolved properties (numbers typed)."""
    request = dict(properties)
    for name in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if name in request:
            request[name] = int(request[name])
    request["Threshold"] = float(request["Threshold"])
    if "Metrics" in request:
        request["Metrics"] = [
            {**query, **({"Period": int(query["Period"])} if "Period" in query else {})}
            for query in request["Metrics"]
        ]
    return request


def _lifecycle_hooks(
    clients: Callable[[str], Any],
    stack: str,
    rendered: Rendered,
    physical: Mapping[str, str],
) -> list[Gap]:
    autoscaling = clients("autoscaling")
    gaps = []
    for logical_id, resource in rendered.of_type("AWS::AutoScaling::AutoScalingGroup").items():
        group = physical.get(logical_id)
        if group is None:
            continue
        existing = {
            hook["LifecycleHookName"]
            for hook in autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group)[
                "LifecycleHooks"
            ]
        }
        for spec in resource.get("Properties", {}).get("LifecycleHookSpecificationList", []):
            spec = rendered.evaluate(spec)
            if spec["LifecycleHookName"] in existing:
                continue
            autoscaling.put_lifecycle_hook(
                AutoScalingGroupName=group,
                **{k: int(v) if k == "HeartbeatTimeout" else v for k, v in spec.items()},
            )
            gaps.append(
                Gap(
                    stack,
                    f"{logical_id}.LifecycleHookSpecificationList[{spec['LifecycleHookName']}]",
                    "AWS::AutoScaling::LifecycleHook",
                    f"PutLifecycleHook {spec['LifecycleHookName']} "
                    f"({spec['LifecycleTransition']}, {spec['HeartbeatTimeout']} s) on {group}",
                )
            )
    return gaps


def _resolve(
    value: Any, rendered: Rendered, physical: Mapping[str, str], types: Mapping[str, str]
) -> Any:
    """Resolve references to created resources, then parameters and pseudo parameters."""
    if isinstance(value, list):
        return [_resolve(item, rendered, physical, types) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"} and value["Ref"] in physical:
        return physical[value["Ref"]]
    if set(value) == {"Fn::GetAtt"}:
        name, attribute = value["Fn::GetAtt"]
        return _attribute(name, attribute, physical, types)
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):

        def substitute(match: re.Match[str]) -> str:
            name, _, attribute = match.group(1).partition(".")
            if name not in physical:
                return match.group(0)
            return _attribute(name, attribute, physical, types) if attribute else physical[name]

        text = re.sub(r"\$\{([^}!]+)\}", substitute, value["Fn::Sub"])
        return rendered.evaluate({"Fn::Sub": text})
    resolved = {key: _resolve(item, rendered, physical, types) for key, item in value.items()}
    if len(resolved) == 1 and next(iter(resolved)).startswith(("Fn::", "Ref")):
        return rendered.evaluate(resolved)
    return resolved


def _attribute(
    name: str, attribute: str, physical: Mapping[str, str], types: Mapping[str, str]
) -> str:
    if types.get(name) == "AWS::S3::Bucket" and attribute == "Arn" and name in physical:
        return f"arn:aws:s3:::{physical[name]}"
    raise DeploymentError(f"the demo cannot resolve {name}.{attribute} outside CloudFormation")
