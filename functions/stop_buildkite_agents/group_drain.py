"""Drain a replaced Auto Scaling group: its capacity pinned to zero, agents stopped.

MinSize, MaxSize and desired capacity all go to 0. MaxSize matters: the agent scaler keeps
evaluating the old group until its own function is updated, and it never raises desired
capacity above the group's MaxSize, so a retired group cannot come back to life.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from stop_buildkite_agents.stop_command import send_stop_agent_commands

if TYPE_CHECKING:
    from botocore.client import BaseClient

# Instances whose agent may be running and that are not already on their way out; terminating
# instances pass the fleet's lifecycle hook, which drains them on its own.
RUNNING_STATES = frozenset({"InService"})


@dataclass(frozen=True)
class DrainReport:
    """What draining a group did, for the log."""

    group_name: str
    group_found: bool
    instance_ids: list[str] = field(default_factory=list)
    command_ids: list[str] = field(default_factory=list)
    unreachable_instance_ids: list[str] = field(default_factory=list)

    def as_log_fields(self) -> dict[str, Any]:
        return {
            "auto_scaling_group": self.group_name,
            "group_found": self.group_found,
            "instances_told_to_stop": len(self.instance_ids),
            "command_ids": self.command_ids,
            "instances_ssm_could_not_reach": self.unreachable_instance_ids,
        }


def _describe_group(autoscaling: BaseClient, group_name: str) -> dict[str, Any] | None:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])
    return groups["AutoScalingGroups"][0] if groups["AutoScalingGroups"] else None


def _is_missing_group(error: ClientError) -> bool:
    details = error.response.get("Error", {})
    return details.get("Code") == "ValidationError" and "not found" in details.get("Message", "")


def drain_group(autoscaling: BaseClient, ssm: BaseClient, group_name: str) -> DrainReport:
    """Set the group's min, max and desired capacity to 0 and stop its instances' agents.

    A group that does not exist (or disappears meanwhile) has nothing to drain: that is success.
    """
    group = _describe_group(autoscaling, group_name)
    if group is None:
        return DrainReport(group_name, group_found=False)
    try:
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=group_name, MinSize=0, MaxSize=0, DesiredCapacity=0
        )
    except ClientError as error:
        if _is_missing_group(error):
            return DrainReport(group_name, group_found=False)
        raise
    instance_ids = [
        instance["InstanceId"]
        for instance in group.get("Instances", [])
        if instance.get("LifecycleState") in RUNNING_STATES
    ]
    sent = send_stop_agent_commands(
        ssm, instance_ids, reason=f"Stop Buildkite agents of replaced group {group_name}"
    )
    return DrainReport(
        group_name, True, instance_ids, sent.command_ids, sent.unreachable_instance_ids
    )
