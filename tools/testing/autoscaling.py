"""Auto Scaling groups in moto for the tests: the scaler's and the custom resources'.

The custom resources (AzRebalancingSuspender, StopBuildkiteAgents) take the group as the
`AutoScalingGroupName` property and use it as their physical id.
"""

from __future__ import annotations

from typing import Any

import boto3

from tools.testing.cloudformation import REGION

MOTO_AMI = "ami-12c6146b"  # one of moto's built-in images


def create_group(
    autoscaling: Any,
    name: str,
    *,
    min_size: int,
    max_size: int,
    desired: int,
    ec2: Any | None = None,
    protected_from_scale_in: bool = False,
) -> list[str]:
    """A group in two zones of REGION, from a launch template of its own; its instance ids.

    `ec2` defaults to an in-process client; pass one for another endpoint (moto in server mode).
    """
    ec2 = ec2 or boto3.client("ec2", region_name=REGION)
    template = f"lt-{name}"[:120]
    ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": MOTO_AMI, "InstanceType": "t3.large"},
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=min_size,
        MaxSize=max_size,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{REGION}a", f"{REGION}b"],
        LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
        NewInstancesProtectedFromScaleIn=protected_from_scale_in,
    )
    return [instance["InstanceId"] for instance in describe_group(autoscaling, name)["Instances"]]


def describe_group(autoscaling: Any, name: str) -> dict[str, Any]:
    """The group as DescribeAutoScalingGroups returns it; fails unless exactly one matches."""
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return group


def group_names(event: dict[str, Any]) -> tuple[str, str | None]:
    """The group a request names, and the one its previous properties named (Update only)."""
    old = event.get("OldResourceProperties", {}).get("AutoScalingGroupName")
    return event["ResourceProperties"]["AutoScalingGroupName"], old
