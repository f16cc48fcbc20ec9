"""The demo fleet plays the lifecycle handler's scale-in protection against moto's Auto Scaling.

An instance whose agents have all been idle for the handler's grace gets ProtectedFromScaleIn
false through SetInstanceProtection; one that takes a job gets it back at once; nothing is
called when nothing changes. moto (in process) stores the flag and DescribeAutoScalingGroups
reports it, which is what the scaler's idle-tail rule reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tools.demo.fleet import PROTECTION_GRACE_S, REMOVED_BY_GROUP, EmulatedFleet, InstanceLife
from tools.demo.replay import Decision, ReplayResult
from tools.demo.report import summarize, summary_lines

GROUP = "demo-group"
BOOT_S = 40.0
IDLE_S = 90.0
GRACE_S = PROTECTION_GRACE_S


class SpyAutoScaling:
    """moto's Auto Scaling client, with the SetInstanceProtection calls the fleet made."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.protection_calls: list[tuple[str, bool]] = []

    def set_instance_protection(self, **params: Any) -> Any:
        for instance_id in params["InstanceIds"]:
            self.protection_calls.append((instance_id, params["ProtectedFromScaleIn"]))
        return self._client.set_instance_protection(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@dataclass
class Agents:
    """An instance's agents as the Buildkite emulator reports them."""

    instance_id: str
    state: str = "running"
    idle_since: float | None = None
    running_job_ids: list[str] = field(default_factory=list)

    @property
    def busy_agents(self) -> int:
        return len(self.running_job_ids)


class FakeControl:
    """The emulator calls the fleet makes; a stopped instance with a job leaves once it ends."""

    def __init__(self) -> None:
        self.records: dict[str, Agents] = {}
        self.stopped: list[str] = []

    def instances(self, queue: str) -> list[Agents]:
        return list(self.records.values())

    def register_instance(self, instance_id: str, queue: str, agents: int) -> None:
        self.records[instance_id] = Agents(instance_id)

    def stop_instance(self, instance_id: str) -> None:
        self.stopped.append(instance_id)
        record = self.records[instance_id]
        record.state = "stopping" if record.running_job_ids else "gone"

    def instance(self, instance_id: str) -> Agents:
        return self.records[instance_id]

    def take_job(self, instance_id: str) -> None:
        record = self.records[instance_id]
        record.running_job_ids.append(f"job-{len(record.running_job_ids) + 1}")
        record.idle_since = None

    def finish_job(self, instance_id: str, at: float) -> None:
        record = self.records[instance_id]
        record.running_job_ids.pop()
        if record.state == "stopping":
            record.state = "gone"
        elif not record.running_job_ids:
            record.idle_since = at


@pytest.fixture
def autoscaling() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("autoscaling", region_name="us-east-1")
        client.create_launch_configuration(
            LaunchConfigurationName="demo", ImageId="ami-12c6146b", InstanceType="t3.large"
        )
        client.create_auto_scaling_group(
            AutoScalingGroupName=GROUP,
            LaunchConfigurationName="demo",
            MinSize=0,
            MaxSize=4,
            DesiredCapacity=0,
            AvailabilityZones=["us-east-1a"],
            NewInstancesProtectedFromScaleIn=True,
        )
        yield client


def make_fleet(client: Any) -> tuple[EmulatedFleet, SpyAutoScaling, FakeControl, list[str]]:
    spy = SpyAutoScaling(client)
    control = FakeControl()
    events: list[str] = []
    fleet = EmulatedFleet(
        autoscaling=spy,
        control=control,  # type: ignore[arg-type]
        group_name=GROUP,
        queue="default",
        agents_per_instance=1,
        boot_delay_s=BOOT_S,
        idle_period_s=IDLE_S,
        log=lambda at, line: events.append(f"{at:g} {line}"),
    )
    return fleet, spy, control, events


def protection_in_moto(client: Any) -> dict[str, bool]:
    group = client.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
    return {
        item["InstanceId"]: item["ProtectedFromScaleIn"]
        for item in group["AutoScalingGroups"][0]["Instances"]
    }


def booted(client: Any, count: int) -> tuple[EmulatedFleet, SpyAutoScaling, FakeControl, list[str]]:
    """``count`` instances launched at 0 whose agents connected at BOOT_S, idle since then."""
    fleet, spy, control, events = make_fleet(client)
    client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=count)
    fleet.step(0.0)
    fleet.step(BOOT_S)
    for record in control.records.values():
        record.idle_since = BOOT_S
    assert len(control.records) == count
    return fleet, spy, control, events


def test_an_idle_instance_loses_its_protection_after_the_grace_once(autoscaling: Any) -> None:
    fleet, spy, control, _ = booted(autoscaling, 1)
    [instance_id] = control.records
    fleet.step(BOOT_S + GRACE_S - 5)
    assert spy.protection_calls == []
    assert protection_in_moto(autoscaling) == {instance_id: True}

    fleet.step(BOOT_S + GRACE_S)
    assert spy.protection_calls == [(instance_id, False)]
    assert protection_in_moto(autoscaling) == {instance_id: False}
    assert fleet.lives[instance_id].protected is False

    fleet.step(BOOT_S + GRACE_S + 5)
    fleet.step(BOOT_S + GRACE_S + 10)
    assert spy.protection_calls == [(instance_id, False)], "set again without a change"
    assert fleet.lives[instance_id].protection_dropped == 1


def test_taking_a_job_restores_protection_at_the_next_step(autoscaling: Any) -> None:
    fleet, spy, control, events = booted(autoscaling, 1)
    [instance_id] = control.records
    fleet.step(BOOT_S + GRACE_S)
    control.take_job(instance_id)
    fleet.step(BOOT_S + GRACE_S + 5)
    assert spy.protection_calls == [(instance_id, False), (instance_id, True)]
    assert protection_in_moto(autoscaling) == {instance_id: True}
    life = fleet.lives[instance_id]
    assert (life.protection_dropped, life.protection_restored) == (1, 1)
    assert "on for 1 that took a job" in events[-1]


def test_a_job_that_started_and_ended_between_steps_counts_as_recent_work(
    autoscaling: Any,
) -> None:
    fleet, spy, control, _ = booted(autoscaling, 1)
    [instance_id] = control.records
    fleet.step(BOOT_S + GRACE_S)
    finished_at = BOOT_S + GRACE_S + 2
    control.take_job(instance_id)
    control.finish_job(instance_id, at=finished_at)
    fleet.step(finished_at + 3)
    assert protection_in_moto(autoscaling) == {instance_id: True}
    fleet.step(finished_at + GRACE_S - 1)
    assert protection_in_moto(autoscaling) == {instance_id: True}
    fleet.step(finished_at + GRACE_S)
    assert protection_in_moto(autoscaling) == {instance_id: False}
    assert spy.protection_calls == [(instance_id, False), (instance_id, True), (instance_id, False)]


def test_a_busy_instance_stays_protected_however_long_its_job(autoscaling: Any) -> None:
    fleet, spy, control, _ = booted(autoscaling, 1)
    [instance_id] = control.records
    control.take_job(instance_id)
    for at in range(int(BOOT_S), int(BOOT_S + 10 * GRACE_S), 5):
        fleet.step(float(at))
    assert spy.protection_calls == []
    assert protection_in_moto(autoscaling) == {instance_id: True}


def test_a_booting_instance_keeps_the_groups_protection(autoscaling: Any) -> None:
    fleet, spy, control, _ = make_fleet(autoscaling)
    autoscaling.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
    fleet.step(0.0)
    fleet.step(BOOT_S - 5)
    assert control.records == {}
    assert spy.protection_calls == []
    assert list(protection_in_moto(autoscaling).values()) == [True]


def test_changes_in_one_step_are_one_log_line_with_counts(autoscaling: Any) -> None:
    fleet, _, control, events = booted(autoscaling, 3)
    busy = sorted(control.records)[0]
    control.take_job(busy)
    before = len(events)
    fleet.step(BOOT_S + GRACE_S)
    lines = [line for line in events[before:] if "scale-in protection" in line]
    assert len(lines) == 1
    assert "off for 2 idle 30 s" in lines[0]
    assert "2 of 3 in the group unprotected" in lines[0]
    assert protection_in_moto(autoscaling)[busy] is True


def test_a_drained_unprotected_instance_goes_through_the_terminating_hook(
    autoscaling: Any,
) -> None:
    fleet, _, control, events = booted(autoscaling, 2)
    fleet.step(BOOT_S + GRACE_S)
    drained, kept = sorted(control.records)
    # A job lands on it in the race window, after its protection went and before the drain.
    control.take_job(drained)
    autoscaling.terminate_instance_in_auto_scaling_group(
        InstanceId=drained, ShouldDecrementDesiredCapacity=True
    )
    fleet.step(BOOT_S + GRACE_S + 1)
    life = fleet.lives[drained]
    assert control.stopped == [drained]
    assert life.alive, "it leaves only once its job finished"
    assert life.removed_by_group
    assert life.unprotected_when_removed is True
    assert any(
        "removed by the group (unprotected from scale-in)" in line and "finishing a job" in line
        for line in events
    )
    control.finish_job(drained, at=BOOT_S + GRACE_S + 20)
    fleet.step(BOOT_S + GRACE_S + 20)
    assert life.how_left == REMOVED_BY_GROUP
    assert set(protection_in_moto(autoscaling)) == {kept}
    assert fleet.group.desired_capacity == 1


def test_the_summary_counts_protection_changes_and_drains() -> None:
    never_drained = InstanceLife("i-a", 0.0, protection_dropped=2, protection_restored=1)
    drained_unprotected = InstanceLife(
        "i-b", 0.0, protection_dropped=1, removed_by_group=True, unprotected_when_removed=True
    )
    drained_protected = InstanceLife(
        "i-c", 0.0, removed_by_group=True, unprotected_when_removed=False
    )
    result = ReplayResult(
        decisions=[
            Decision(60.0, "scale out", ("need 2",), 0, 2),
            Decision(
                300.0,
                "no change",
                (
                    "target 0",
                    "demand peaked at 0 instances in the last 1m30s (ScaleInDemandWindow): "
                    "drain 1 idle surplus instance (reporting idle, oldest first: i-b) through "
                    "the terminating lifecycle hook; desired capacity 2 -> 1",
                ),
                2,
                None,
            ),
        ],
        ended_at=600.0,
    )
    summary = summarize(
        [], [never_drained, drained_unprotected, drained_protected], result, submitted=0
    )
    assert (summary.protection_set_off, summary.protection_set_on) == (3, 1)
    assert (summary.drained, summary.drained_unprotected) == (2, 1)
    assert summary.idle_tail_drains == 1
    lines = summary_lines(summary, 1.0, Path("t.png"), Path("s.log"))
    assert any("1 idle-tail drain(s) (ScaleInDemandWindow)" in line for line in lines)
    [protection] = [line for line in lines if line.lstrip().startswith("scale-in")]
    assert "protection set off 3 time(s)" in protection
    assert "back on 1 (took a job)" in protection
    assert "2 instance(s) drained by the scaler through the terminating hook (1 unprotected)" in (
        protection
    )
