"""The Auto Scaling group: observing it, and carrying out a decision on it.

Observation is one DescribeAutoScalingGroups call (capacity, bounds, instances with lifecycle
state and protection, and the tags that hold the scaler state), plus DescribeInstances for
launch times when drains are possible (they pick the oldest instances first), plus
DescribeWarmPool (all pages) when the group has a warm pool. Warm instances (lifecycle states
``Warmed:*``) belong to the pool, never to the group's instances: they are not in desired
capacity, run no agent, and are never drained by the scaler. A pool whose Status is
PendingDelete is read as no pool.

Acting: SetDesiredCapacity (HonorCooldown false) to scale out, only upward, through the
protocol in ``agent_scaler.scale_out``: the push trigger and the schedule may overlap, and any
interleaving of their scale-outs ends at the highest capacity either wanted. Drains are
TerminateInstanceInAutoScalingGroup with ShouldDecrementDesiredCapacity, which runs the group's
terminating lifecycle hook; every instance is tried and the ones that drained are reported even
when others failed. Tags change only when the state did. PutWarmPool changes only the pool's
MaxGroupPreparedCapacity, passing MinSize, PoolState and ReuseOnScaleIn back as read (the call
replaces the whole configuration).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from agent_scaler.policy import WARMED_PREFIX, GroupObservation, Instance, WarmPool
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
    autoscaling: Any,
    ec2: Any,
    group_name: str,
    *,
    with_launch_times: bool,
    with_warm_pool: bool = False,
) -> GroupRead:
    """Observe the group (and its warm pool when asked); raises ``GroupNotFoundError``."""
    document = _describe(autoscaling, group_name)
    launch_times: dict[str, float] = {}
    instance_documents = [
        item
        for item in document.get("Instances", [])
        if not str(item.get("LifecycleState", "")).startswith(WARMED_PREFIX)
    ]
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
        warm_pool=read_warm_pool(autoscaling, group_name) if with_warm_pool else None,
    )
    return GroupRead(group=group, tags=tags_by_key(document.get("Tags", [])))


def read_warm_pool(autoscaling: Any, group_name: str) -> WarmPool | None:
    """The group's warm pool and its instances (every page); None when it has none.

    A pool being deleted (Status PendingDelete) is read as none: it takes no new instances.
    """
    configuration: dict[str, Any] | None = None
    instances: list[Instance] = []
    paginator = autoscaling.get_paginator("describe_warm_pool")
    for page in paginator.paginate(AutoScalingGroupName=group_name):
        configuration = page.get("WarmPoolConfiguration") or configuration
        instances.extend(
            Instance(
                instance_id=item["InstanceId"],
                lifecycle_state=item["LifecycleState"],
                protected_from_scale_in=bool(item.get("ProtectedFromScaleIn", False)),
            )
            for item in page.get("Instances", [])
        )
    if not configuration or configuration.get("Status") == "PendingDelete":
        return None
    max_prepared = configuration.get("MaxGroupPreparedCapacity")
    reuse = configuration.get("InstanceReusePolicy") or {}
    return WarmPool(
        min_size=int(configuration.get("MinSize", 0)),
        # Unset is reported as absent or as -1 (the value PutWarmPool takes to unset it).
        max_group_prepared_capacity=None
        if max_prepared is None or max_prepared < 0
        else int(max_prepared),
        pool_state=str(configuration.get("PoolState", "Stopped")),
        reuse_on_scale_in=bool(reuse.get("ReuseOnScaleIn", False)),
        instances=tuple(instances),
    )


def put_warm_pool(autoscaling: Any, group_name: str, max_prepared: int, pool: WarmPool) -> None:
    """Set the warm pool's MaxGroupPreparedCapacity, keeping the rest of it as read.

    Raises ``ScalingActionError`` naming the call when it fails.
    """
    try:
        autoscaling.put_warm_pool(
            AutoScalingGroupName=group_name,
            MaxGroupPreparedCapacity=max_prepared,
            MinSize=pool.min_size,
            PoolState=pool.pool_state,
            InstanceReusePolicy={"ReuseOnScaleIn": pool.reuse_on_scale_in},
        )
    except (ClientError, BotoCoreError) as exc:
        before = pool.max_group_prepared_capacity
        raise ScalingActionError(
            f"setting the warm pool's MaxGroupPreparedCapacity {before} -> {max_prepared} "
            f"failed: {exc}"
        ) from exc


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
