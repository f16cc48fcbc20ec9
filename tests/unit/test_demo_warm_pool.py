"""The demo's warm pool emulation (tools.demo.warm_pool): what Auto Scaling does and moto not."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from tools.demo.fleet import (
    COLD,
    IDLE_OUT,
    RESUMED,
    RETURNED_TO_POOL,
    WARMING,
    EmulatedFleet,
)
from tools.demo.warm_pool import (
    WARMED_PENDING,
    PoolSettings,
    WarmPoolEmulation,
)

PREPARE_S = 40.0
RESUME_S = 10.0
RETURN_S = 15.0


def pool(max_size: int = 6, **settings: object) -> WarmPoolEmulation:
    counter = itertools.count(1)
    return WarmPoolEmulation(
        max_size=max_size,
        prepare_s=PREPARE_S,
        resume_s=RESUME_S,
        return_s=RETURN_S,
        new_id=lambda: f"i-warm{next(counter):04d}",
        settings=PoolSettings(**settings),  # type: ignore[arg-type]
    )


def test_the_pool_keeps_max_prepared_capacity_minus_desired_and_at_least_min_size() -> None:
    unset = pool(max_size=6)
    assert unset.target_size(0) == 6
    assert unset.target_size(4) == 2
    assert unset.target_size(6) == 0
    sized = pool(max_size=6, max_group_prepared_capacity=3, min_size=1)
    assert sized.target_size(0) == 3
    assert sized.target_size(3) == 1
    assert sized.target_size(5) == 1


def test_prewarmed_instances_are_stopped_and_ready() -> None:
    emulation = pool(max_group_prepared_capacity=2)
    events = emulation.prewarm(desired_capacity=0)
    assert len(events) == 2
    assert [i.state for i in emulation.instances] == ["Warmed:Stopped", "Warmed:Stopped"]
    assert emulation.prepared_count == 2
    assert emulation.counts.launched_into_pool == 2


def test_a_scale_out_resumes_a_prepared_instance_faster_than_a_cold_boot() -> None:
    emulation = pool(max_group_prepared_capacity=2)
    emulation.prewarm(desired_capacity=0)
    taken = emulation.take(now=100.0)
    assert taken is not None
    assert taken.agents_in_s == RESUME_S
    assert taken.was_prepared
    assert taken.agents_in_s < PREPARE_S
    assert len(emulation.instances) == 1
    assert emulation.counts.resumed == 1


def test_an_empty_pool_means_a_cold_launch() -> None:
    emulation = pool(max_group_prepared_capacity=0)
    emulation.prewarm(desired_capacity=0)
    assert emulation.take(now=0.0) is None
    assert emulation.counts.resumed == 0


def test_an_instance_still_warming_is_taken_after_it_finishes() -> None:
    emulation = pool(max_group_prepared_capacity=1)
    emulation.advance(now=0.0, desired_capacity=0)
    assert [i.state for i in emulation.instances] == [WARMED_PENDING]
    taken = emulation.take(now=30.0)
    assert taken is not None
    assert taken.agents_in_s == pytest.approx(PREPARE_S - 30.0 + RESUME_S)
    assert not taken.was_prepared


def test_the_pool_refills_after_a_scale_out_and_warms_on_the_clock() -> None:
    emulation = pool(max_group_prepared_capacity=3)
    emulation.prewarm(desired_capacity=0)
    assert emulation.take(now=0.0) is not None
    assert emulation.take(now=0.0) is not None
    # Desired 2 of prepared 3: one stays, nothing to refill.
    emulation.advance(now=0.0, desired_capacity=2)
    assert len(emulation.instances) == 1
    # The scaler raises the prepared capacity: the pool launches the difference, warming.
    emulation.settings = PoolSettings(max_group_prepared_capacity=5)
    events = emulation.advance(now=10.0, desired_capacity=2)
    assert len(emulation.instances) == 3
    assert sum(1 for e in events if "launched into the warm pool" in e) == 2
    assert emulation.prepared_count == 1
    emulation.advance(now=10.0 + PREPARE_S, desired_capacity=2)
    assert emulation.prepared_count == 3


def test_the_pool_shrinks_newest_first_when_its_target_falls() -> None:
    emulation = pool(max_group_prepared_capacity=2)
    emulation.prewarm(desired_capacity=0)
    emulation.settings = PoolSettings(max_group_prepared_capacity=3)
    emulation.advance(now=5.0, desired_capacity=0)
    newest = emulation.instances[-1].instance_id
    emulation.settings = PoolSettings(max_group_prepared_capacity=1)
    emulation.advance(now=6.0, desired_capacity=0)
    assert len(emulation.instances) == 1
    assert newest not in {i.instance_id for i in emulation.instances}
    assert emulation.instances[0].prepared
    assert emulation.counts.terminated_from_pool == 2


def test_reuse_on_scale_in_returns_the_instance_to_the_pool() -> None:
    emulation = pool(max_group_prepared_capacity=3, reuse_on_scale_in=True)
    assert emulation.give_back(now=50.0, instance_id="i-abc", desired_capacity=2)
    [returned] = emulation.instances
    assert returned.instance_id == "i-abc"
    assert returned.returned
    assert returned.state == WARMED_PENDING
    emulation.advance(now=50.0 + RETURN_S, desired_capacity=2)
    assert returned.state == "Warmed:Stopped"
    assert emulation.counts.returned == 1


def test_without_reuse_or_room_a_scale_in_terminates() -> None:
    no_reuse = pool(max_group_prepared_capacity=3, reuse_on_scale_in=False)
    assert not no_reuse.give_back(now=0.0, instance_id="i-abc", desired_capacity=0)
    full = pool(max_group_prepared_capacity=1, reuse_on_scale_in=True)
    full.prewarm(desired_capacity=0)
    assert not full.give_back(now=0.0, instance_id="i-abc", desired_capacity=0)
    assert [i.instance_id for i in full.instances] == ["i-warm0001"]


def test_hibernated_pools_warm_into_their_state() -> None:
    emulation = pool(max_group_prepared_capacity=1, pool_state="Hibernated")
    emulation.advance(now=0.0, desired_capacity=0)
    emulation.advance(now=PREPARE_S, desired_capacity=0)
    [listed] = emulation.describe_instances()
    assert listed["InstanceId"] == "i-warm0001"
    assert listed["LifecycleState"] == "Warmed:Hibernated"


def test_settings_are_read_from_describe_warm_pool() -> None:
    settings = PoolSettings.from_describe(
        {
            "MaxGroupPreparedCapacity": 4,
            "MinSize": 1,
            "PoolState": "Stopped",
            "InstanceReusePolicy": {"ReuseOnScaleIn": True},
        }
    )
    assert settings == PoolSettings(1, 4, "Stopped", True)
    unset = PoolSettings.from_describe({"MaxGroupPreparedCapacity": -1, "PoolState": "Stopped"})
    assert unset.max_group_prepared_capacity is None
    assert unset.reuse_on_scale_in is False


# --- the emulated fleet with a pool: moto's instances played as resumed, returned on scale-in ---


class FakeAutoScaling:
    """The Auto Scaling calls the fleet makes, against an in-memory group (moto's behaviour:
    instances are InService at once, a termination removes them at once)."""

    def __init__(self, pool_configuration: dict[str, object]) -> None:
        self.desired = 0
        self.instances: list[str] = []
        self.pool_configuration = pool_configuration
        self._launched = itertools.count(1)

    def set_desired(self, desired: int) -> None:
        while len(self.instances) < desired:
            self.instances.append(f"i-moto{next(self._launched):04d}")
        self.desired = desired

    def describe_auto_scaling_groups(self, **_: object) -> dict[str, object]:
        return {
            "AutoScalingGroups": [
                {
                    "DesiredCapacity": self.desired,
                    "Instances": [
                        {"InstanceId": iid, "LifecycleState": "InService"} for iid in self.instances
                    ],
                }
            ]
        }

    def describe_warm_pool(self, **_: object) -> dict[str, object]:
        return {"WarmPoolConfiguration": self.pool_configuration, "Instances": []}

    def terminate_instance_in_auto_scaling_group(
        self, InstanceId: str, ShouldDecrementDesiredCapacity: bool
    ) -> None:
        self.instances.remove(InstanceId)
        self.desired -= int(ShouldDecrementDesiredCapacity)


@dataclass
class FakeRecord:
    instance_id: str
    state: str = "running"
    idle_since: float | None = None


class FakeControl:
    def __init__(self) -> None:
        self.records: dict[str, FakeRecord] = {}

    def instances(self, queue: str) -> list[FakeRecord]:
        return list(self.records.values())

    def register_instance(self, instance_id: str, queue: str, agents: int) -> None:
        self.records[instance_id] = FakeRecord(instance_id)

    def stop_instance(self, instance_id: str) -> None:
        self.records[instance_id].state = "gone"

    def instance(self, instance_id: str) -> FakeRecord:
        return self.records[instance_id]


BOOT_S = 40.0
IDLE_S = 90.0


def fleet_with_pool(
    prepared: int, reuse: bool
) -> tuple[EmulatedFleet, FakeAutoScaling, FakeControl, list[str]]:
    configuration = {
        "MaxGroupPreparedCapacity": prepared,
        "MinSize": 0,
        "PoolState": "Stopped",
        "InstanceReusePolicy": {"ReuseOnScaleIn": reuse},
    }
    autoscaling = FakeAutoScaling(configuration)
    control = FakeControl()
    emulation = pool()
    emulation.settings = PoolSettings.from_describe(configuration)
    emulation.prewarm(desired_capacity=0)
    events: list[str] = []
    fleet = EmulatedFleet(
        autoscaling=autoscaling,
        control=control,  # type: ignore[arg-type]
        group_name="group",
        queue="default",
        agents_per_instance=1,
        boot_delay_s=BOOT_S,
        idle_period_s=IDLE_S,
        log=lambda at, line: events.append(f"{at:g} {line}"),
        warm_pool=emulation,
    )
    return fleet, autoscaling, control, events


def test_the_fleet_resumes_from_the_pool_then_boots_cold_once_it_is_empty() -> None:
    fleet, autoscaling, control, _ = fleet_with_pool(prepared=2, reuse=True)
    autoscaling.set_desired(3)
    fleet.step(0.0)
    starts = sorted(life.start for life in fleet.lives.values())
    assert starts == [COLD, RESUMED, RESUMED]
    fleet.step(RESUME_S)
    registered = {iid for iid, life in fleet.lives.items() if life.registered_at is not None}
    assert registered == {iid for iid, life in fleet.lives.items() if life.start == RESUMED}
    fleet.step(BOOT_S)
    assert set(control.records) == set(fleet.lives)
    assert fleet.warm_pool is not None
    assert fleet.warm_pool.instances == []


def test_an_idle_instance_goes_back_to_the_pool_with_reuse_on_scale_in() -> None:
    fleet, autoscaling, control, events = fleet_with_pool(prepared=2, reuse=True)
    autoscaling.set_desired(1)
    fleet.step(0.0)
    fleet.step(RESUME_S)
    [instance_id] = control.records
    control.records[instance_id].idle_since = RESUME_S
    fleet.step(RESUME_S + IDLE_S)
    life = fleet.lives[instance_id]
    assert life.how_left == RETURNED_TO_POOL
    assert autoscaling.desired == 0
    assert fleet.warm_pool is not None
    assert instance_id in {i.instance_id for i in fleet.warm_pool.instances}
    assert any("returned to the warm pool" in line for line in events)


def test_without_reuse_an_idle_instance_terminates_and_the_pool_refills_fresh() -> None:
    fleet, autoscaling, control, _ = fleet_with_pool(prepared=1, reuse=False)
    autoscaling.set_desired(1)
    fleet.step(0.0)
    fleet.step(RESUME_S)
    [instance_id] = control.records
    control.records[instance_id].idle_since = RESUME_S
    fleet.step(RESUME_S + IDLE_S)
    assert fleet.lives[instance_id].how_left == IDLE_OUT
    assert fleet.warm_pool is not None
    [refilled] = fleet.warm_pool.instances
    assert refilled.instance_id != instance_id
    assert refilled.state == WARMED_PENDING


def test_an_instance_taken_while_warming_is_told_apart_from_a_resume() -> None:
    fleet, autoscaling, _, _ = fleet_with_pool(prepared=1, reuse=True)
    assert fleet.warm_pool is not None
    fleet.warm_pool.instances[0].state = WARMED_PENDING
    fleet.warm_pool.instances[0].ready_at = 30.0
    autoscaling.set_desired(1)
    fleet.step(0.0)
    [life] = fleet.lives.values()
    assert life.start == WARMING
    assert life.boot_delay_s == pytest.approx(30.0 + RESUME_S)
