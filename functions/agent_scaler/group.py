"""The Auto Scaling group: observing it, and carrying out a decision on it.

Observation is one DescribeAutoScalingGroups call (capacity, bounds, instances with lifecycle
state and protection, and the tags that hold the scaler state), plus DescribeInstances for
launch times when drains are possible (they pick the oldest instances first).

Acting: SetDesiredCapacity (HonorCooldown false) to scale out, only upward, through the
protocol in ``agent_scaler.scale_out``: the push trigger and the schedule may overlap, and any
interleaving of their scale-outs ends at the highest capacity either wanted. Drains are
TerminateInstanceInAutoScalingGroup with ShouldDecrementDesiredCapacity, which runs the group's
terminating lifecycle hook; every instance is tried and the ones that drained are reported even
when others failed. Tags change only when the state did.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agent_scaler.policy import GroupObservation, Instance
from agent_scaler.scale_out import (
    ScaleOutError,
    ScaleOutResult,
    new_claim_id,
    run_calls,
    scale_out_calls,
)
from agent_scaler.state_tags import tags_by_key

_EC2_FILTER_VALUES_LIMIT = 200


class GroupNotFoundError(LookupError):
    """The Auto Scaling group named in the settings does not exist (or is being deleted)."""


class ScalingActionError(RuntimeError):
    """An action on the group failed; the message names each failed call."""


@dataclass(frozen=True, slots=True)
class GroupRead:
    """The observed group and its tags (``{Key: Value}``)."""

    group: GroupObservation
    tags: dict[str, str]


def read_group(
    autoscaling: Any, ec2: Any, group_name: str, *, with_launch_times: bool
) -> GroupRead:
    """Observe the group; raises ``GroupNotFoundError`` when it does not exist."""
    document = _describe(autoscaling, group_name)
    launch_times: dict[str, float] = {}
    instance_documents = document.get("Instances", [])
    if with_launch_times and instance_documents:
        launch_times = _launch_times(ec2, [i["InstanceId"] for i in instance_documents])
    instances = tuple(
        Instance(
            instance_id=item["InstanceId"],
            lifecycle_state=item["LifecycleState"],
            launched_at=launch_times.get(item["InstanceId"]),
            protected_from_scale_in=bool(item.get("ProtectedFromScaleIn", False)),
        )
        for item in instance_documents
    )
    group = GroupObservation(
        name=group_name,
        desired_capacity=document["DesiredCapacity"],
        min_size=document["MinSize"],
        max_size=document["MaxSize"],
        instances=instances,
    )
    return GroupRead(group=group, tags=tags_by_key(document.get("Tags", [])))


def scale_out(
    autoscaling: Any,
    group_name: str,
    desired_capacity: int,
    *,
    clock: Callable[[], float] = time.time,
) -> ScaleOutResult:
    """Raise desired capacity to at least ``desired_capacity`` (never lower it).

    Raises ``ScalingActionError`` when capacity could not be raised at all.
    """
    calls = scale_out_calls(group_name, desired_capacity, clock=clock, claim_id=new_claim_id())
    try:
        return run_calls(_GroupApi(autoscaling), calls)
    except ScaleOutError as exc:
        raise ScalingActionError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class DrainResult:
    """The instances that drained, and one message per instance that did not."""

    drained: tuple[str, ...]
    failures: tuple[str, ...]


def drain(autoscaling: Any, instance_ids: Sequence[str]) -> DrainResult:
    """Terminate each instance through the group, lowering desired capacity by one each.

    Tries every instance, even after a failure, and reports which drained and which did not.
    """
    drained = []
    failures = []
    for instance_id in instance_ids:
        try:
            autoscaling.terminate_instance_in_auto_scaling_group(
                InstanceId=instance_id, ShouldDecrementDesiredCapacity=True
            )
        except (ClientError, BotoCoreError) as exc:
            failures.append(f"{instance_id}: {exc}")
        else:
            drained.append(instance_id)
    return DrainResult(tuple(drained), tuple(failures))


def write_tags(autoscaling: Any, updates: list[dict[str, Any]]) -> None:
    """CreateOrUpdateTags with ``updates`` (nothing is called when there are none)."""
    if not updates:
        return
    try:
        autoscaling.create_or_update_tags(Tags=updates)
    except (ClientError, BotoCoreError) as exc:
        keys = ", ".join(update["Key"] for update in updates)
        raise ScalingActionError(f"writing the scaler state tags ({keys}) failed: {exc}") from exc


def _describe(autoscaling: Any, group_name: str) -> dict[str, Any]:
    response = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])
    groups = [g for g in response.get("AutoScalingGroups", []) if not g.get("Status")]
    if not groups:
        raise GroupNotFoundError(
            f"Auto Scaling group {group_name!r} not found (or being deleted): "
            "check AUTO_SCALING_GROUP_NAME and the fleet stack"
        )
    return groups[0]


class _GroupApi:
    """boto3's Auto Scaling client as the scale-out protocol's ``GroupApi``."""

    def __init__(self, autoscaling: Any) -> None:
        self._autoscaling = autoscaling

    def describe_group(self, group_name: str) -> dict[str, Any]:
        return _describe(self._autoscaling, group_name)

    def set_desired_capacity(self, **params: Any) -> Any:
        return self._autoscaling.set_desired_capacity(**params)

    def create_or_update_tags(self, **params: Any) -> Any:
        return self._autoscaling.create_or_update_tags(**params)

    def delete_tags(self, **params: Any) -> Any:
        return self._autoscaling.delete_tags(**params)


def _launch_times(ec2: Any, instance_ids: Iterable[str]) -> dict[str, float]:
    # A filter, unlike InstanceIds, does not fail when an instance has just disappeared.
    ids = list(instance_ids)
    launch_times: dict[str, float] = {}
    paginator = ec2.get_paginator("describe_instances")
    for start in range(0, len(ids), _EC2_FILTER_VALUES_LIMIT):
        chunk = ids[start : start + _EC2_FILTER_VALUES_LIMIT]
        pages = paginator.paginate(Filters=[{"Name": "instance-id", "Values": chunk}])
        for page in pages:
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    launched = instance.get("LaunchTime")
                    if launched is not None:
                        launch_times[instance["InstanceId"]] = launched.timestamp()
    return launch_times
