"""The acceptance run's only door to AWS (besides ``sam`` in ``tools.acceptance.deploy``).

Each method is one question or one action, through boto3 clients from one factory: the usual
credential chain and the run's region for a real account, an ``endpoint_url`` for moto in tests.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
RETRIES = Config(retries={"mode": "adaptive", "max_attempts": 10})


@dataclass(frozen=True)
class GroupView:
    """The Auto Scaling group now: capacity and each instance's lifecycle state."""

    name: str
    desired_capacity: int
    min_size: int
    max_size: int
    instances: dict[str, str]
    launch_template_id: str | None
    launch_template_version: str | None


@dataclass(frozen=True)
class ScalerDecision:
    """One evaluation of the scaler, from its structured log line."""

    at: float
    action: str
    desired_capacity_before: int | None
    desired_capacity: int | None
    reasons: tuple[str, ...]


class AwsAccount:
    """AWS calls of the acceptance run; ``clients(service)`` makes a boto3 client."""

    def __init__(self, clients: Callable[[str], Any]) -> None:
        self._clients = clients

    @classmethod
    def from_region(cls, region: str, endpoint_url: str | None = None) -> AwsAccount:
        session = boto3.session.Session(region_name=region)

        @functools.cache
        def clients(service: str) -> Any:
            return session.client(service, endpoint_url=endpoint_url, config=RETRIES)

        return cls(clients)

    def client(self, service: str) -> Any:
        return self._clients(service)

    # --- the agent token's SecureString --------------------------------------------------

    def put_secure_parameter(self, name: str, value: str, description: str) -> None:
        """Create it; fails when it exists already (never overwrites someone's parameter)."""
        self._clients("ssm").put_parameter(
            Name=name, Value=value, Type="SecureString", Description=description, Overwrite=False
        )

    def delete_parameter(self, name: str) -> bool:
        """False when it was already gone."""
        try:
            self._clients("ssm").delete_parameter(Name=name)
        except ClientError as error:
            if _code(error) == "ParameterNotFound":
                return False
            raise
        return True

    def parameter_exists(self, name: str) -> bool:
        try:
            self._clients("ssm").describe_parameters(
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
            )["Parameters"][0]
        except IndexError:
            return False
        return True

    # --- the group -----------------------------------------------------------------------

    def group(self, name: str) -> GroupView | None:
        groups = self._clients("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[name]
        )["AutoScalingGroups"]
        if not groups:
            return None
        group = groups[0]
        template = group.get("LaunchTemplate") or (
            group.get("MixedInstancesPolicy", {})
            .get("LaunchTemplate", {})
            .get("LaunchTemplateSpecification", {})
        )
        return GroupView(
            name=name,
            desired_capacity=group["DesiredCapacity"],
            min_size=group["MinSize"],
            max_size=group["MaxSize"],
            instances={
                item["InstanceId"]: item["LifecycleState"] for item in group.get("Instances", [])
            },
            launch_template_id=template.get("LaunchTemplateId"),
            launch_template_version=template.get("Version"),
        )

    def launch_template_user_data(self, template_id: str, version: str) -> tuple[str, str]:
        """``(version number, user data)`` of one version of a launch template."""
        versions = self._clients("ec2").describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=[version]
        )["LaunchTemplateVersions"]
        found = versions[0]
        return str(found["VersionNumber"]), found["LaunchTemplateData"].get("UserData", "")

    def scaling_activities(self, group_name: str) -> list[dict[str, Any]]:
        """The group's Auto Scaling activities, oldest first (times as ISO 8601)."""
        paginator = self._clients("autoscaling").get_paginator("describe_scaling_activities")
        activities = []
        for page in paginator.paginate(AutoScalingGroupName=group_name):
            for item in page["Activities"]:
                activities.append(
                    {
                        "description": item.get("Description", ""),
                        "status": item.get("StatusCode", ""),
                        "cause": item.get("Cause", ""),
                        "start": _iso(item.get("StartTime")),
                        "end": _iso(item.get("EndTime")),
                    }
                )
        return sorted(activities, key=lambda activity: activity["start"] or "")

    def instances_left(self, group_name: str) -> list[str]:
        """Instances the group launched that are not terminated."""
        reservations = self._clients("ec2").describe_instances(
            Filters=[
                {"Name": "tag:aws:autoscaling:groupName", "Values": [group_name]},
                {"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)},
            ]
        )["Reservations"]
        return sorted(
            instance["InstanceId"]
            for reservation in reservations
            for instance in reservation["Instances"]
        )

    # --- the scaler's log ----------------------------------------------------------------

    def scaler_decisions(self, log_group: str, since: float) -> list[ScalerDecision]:
        """Every evaluation the scaler logged since ``since`` (Unix seconds), oldest first."""
        paginator = self._clients("logs").get_paginator("filter_log_events")
        decisions = []
        try:
            for page in paginator.paginate(
                logGroupName=log_group, startTime=int(since * 1000), filterPattern='"decision"'
            ):
                for event in page["events"]:
                    decision = _decision(event)
                    if decision is not None:
                        decisions.append(decision)
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                return []
            raise
        return sorted(decisions, key=lambda decision: decision.at)

    # --- stacks --------------------------------------------------------------------------

    def stack_status(self, name: str) -> str | None:
        """The stack's status; None when no such stack exists (or it is deleted)."""
        try:
            stacks = self._clients("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as error:
            if "does not exist" in str(error):
                return None
            raise
        status = stacks[0]["StackStatus"] if stacks else None
        return None if status == "DELETE_COMPLETE" else status

    def stack_outputs(self, name: str) -> dict[str, str]:
        stack = self._clients("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
        return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def _decision(event: dict[str, Any]) -> ScalerDecision | None:
    try:
        line = json.loads(event["message"])
    except (ValueError, KeyError):
        return None
    decision = line.get("decision") if isinstance(line, dict) else None
    reasons = line.get("reasons") if isinstance(line, dict) else None
    if not isinstance(decision, dict) or not isinstance(reasons, list):
        return None
    return ScalerDecision(
        at=event["timestamp"] / 1000.0,
        action=str(line.get("message", "")).rsplit(": ", 1)[-1],
        desired_capacity_before=decision.get("desired_capacity_before"),
        desired_capacity=decision.get("desired_capacity"),
        reasons=tuple(str(reason) for reason in reasons),
    )


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
