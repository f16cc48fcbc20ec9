"""The demo's warm pool emulation (tools.demo.warm_pool): what Auto Scaling does and moto not."""

from __future__ import annotations

import itertools

import pytest

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
