"""Suspend the AZRebalance process on an Auto Scaling group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.client import BaseClient

AZ_REBALANCE = "AZRebalance"


class GroupNotFoundError(LookupError):
    """The Auto Scaling group named in the resource properties does not exist."""


def group_name_from(properties: Mapping[str, Any]) -> str:
    """The `AutoScalingGroupName` resource property; ValueError when it is missing or empty."""
    group_name = properties.get("AutoScalingGroupName")
    if not isinstance(group_name, str) or not group_name:
        raise ValueError("resource property AutoScalingGroupName is required")
    return group_name


def suspend_az_rebalancing(autoscaling: BaseClient, group_name: str) -> None:
    """Suspend AZRebalance on `group_name`; GroupNotFoundError when there is no such group.

    Suspending an already suspended process is a no-op in Auto Scaling, so this is idempotent.
    """
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])
    if not groups["AutoScalingGroups"]:
        raise GroupNotFoundError(f"Auto Scaling group {group_name} not found")
    autoscaling.suspend_processes(AutoScalingGroupName=group_name, ScalingProcesses=[AZ_REBALANCE])
