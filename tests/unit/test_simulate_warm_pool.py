"""The simulated warm pool: refill, resume, reuse on scale-in, costs and config refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.simulate.config import ConfigError, build_config
from tools.simulate.engine import EventEngine
from tools.simulate.fleet import (
    IN_SERVICE,
    PENDING,
    WARMED_HIBERNATED,
    WARMED_PENDING,
    WARMED_STOPPED,
    Fleet,
    Job,
)
from tools.simulate.runner import simulate
from tools.simulate.traces import TraceJob

FIXED = {
    "BootDelayMedian": 60,
    "BootDelayP05": 60,
    "BootDelayP95": 60,
    "ResumeDelayMedian": 20,
    "ResumeDelayP05": 20,
    "ResumeDelayP95": 20,
    "InstanceShutdownDelay": 20,
}
POOL = {"EnableWarmPool": True, "MaxSize": 10}


def make_fleet(**overrides: object) -> tuple[EventEngine, Fleet]:
    config = build_config("project", {**FIXED, **POOL, **overrides})
    engine = EventEngine()
    return engine, Fleet(engine, config, lifecycle_hook=True, seed=1)


def run_to(engine: EventEngine, at: float) -> None:
    engine.run_until(lambda: False, horizon=at)


def states(fleet: Fleet) -> list[str]:
    return sorted(instance.lifecycle_state for instance in fleet.warm_instances.values())


def test_a_fixed_pool_fills_to_prepared_capacity_minus_desired_after_a_paid_boot() -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=3)
    assert states(fleet) == [WARMED_PENDING] * 3
    assert fleet.desired_capacity == 0
    assert not fleet.instances
    run_to(engine, 60.0)
    assert states(fleet) == [WARMED_STOPPED] * 3
    run_to(engine, 3600.0)
    # Each warm instance ran its 60 s boot, then only its volume is billed.
    assert fleet.instance_seconds(3600.0) == pytest.approx(3 * 60.0)
    assert fleet.volume_seconds(3600.0) == pytest.approx(3 * 3600.0)


def test_the_pool_keeps_its_minimum_size_even_when_prepared_capacity_is_used_up() -> None:
    _, fleet = make_fleet(WarmPoolMaxPreparedCapacity=0, WarmPoolMinSize=2)
    assert len(fleet.warm_instances) == 2


def test_hibernated_instances_wait_in_the_hibernated_state() -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=1, WarmPoolState="Hibernated")
    run_to(engine, 61.0)
    assert states(fleet) == [WARMED_HIBERNATED]


def test_scale_out_takes_stopped_pool_instances_first_and_they_resume_quickly() -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=2)
    run_to(engine, 100.0)
    warm_ids = set(fleet.warm_instances)
    fleet.set_desired_capacity(3)
    # two resume from the pool, one launches cold; the pool refills to 2 - 3 -> MinSize 0
    assert set(fleet.instances) >= warm_ids
    assert fleet.resumes == 2
    assert fleet.launches == 1
    assert not fleet.warm_instances
    run_to(engine, 115.0)
    assert {i.lifecycle_state for i in fleet.instances.values()} == {IN_SERVICE}
    run_to(engine, 119.9)
    assert fleet.snapshot().total_agents == 0
    run_to(engine, 120.0)  # resume 20 s
    assert fleet.snapshot().total_agents == 2
    run_to(engine, 160.0)  # cold boot 60 s
    assert fleet.snapshot().total_agents == 3
    # a resumed instance reports its last start as its launch time
    assert {fleet.instances[i].launched_at for i in warm_ids} == {100.0}


def test_a_pool_instance_still_warming_is_not_taken() -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=1)
    run_to(engine, 30.0)
    fleet.set_desired_capacity(1)
    assert fleet.resumes == 0
    assert fleet.launches == 1
    (instance,) = fleet.instances.values()
    assert instance.lifecycle_state == PENDING


def test_a_drained_instance_finishes_its_job_then_returns_to_the_pool() -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=1)
    run_to(engine, 60.0)
    fleet.set_desired_capacity(1)  # resumes the warm instance (20 s)
    run_to(engine, 80.0)
    (instance,) = fleet.instances.values()
    assert not fleet.warm_instances  # prepared capacity 1 is the group's instance
    job = Job(job_id=1, submit_s=80.0, duration_s=300.0)
    fleet.submit(job)
    warm_launches = fleet.warm_launches
    assert fleet.drain(instance.instance_id)
    # the pool has room (1 - 0) but the returning instance holds it: no new warm launch
    assert not fleet.warm_instances
    assert fleet.warm_launches == warm_launches
    run_to(engine, 379.0)
    assert job.finished_at is None
    assert fleet.interrupted_jobs == 0
    assert fleet.desired_capacity == 0
    run_to(engine, 380.0)
    assert job.finished_at == 380.0
    assert instance.instance_id in fleet.warm_instances
    assert fleet.returned_to_pool == 1
    run_to(engine, 400.0)
    assert instance.lifecycle_state == WARMED_STOPPED
    # warm boot 60 s, then running from the resume at 60 s until it stopped at 400 s
    assert fleet.instance_seconds(10_000.0) == pytest.approx(60.0 + 340.0)
    # and it serves again
    fleet.set_desired_capacity(1)
    assert (fleet.resumes, fleet.launches) == (2, 0)


def test_without_reuse_or_without_room_a_drained_instance_terminates() -> None:
    for overrides in ({"WarmPoolReuseOnScaleIn": False}, {"WarmPoolMaxPreparedCapacity": 0}):
        engine, fleet = make_fleet(**{"WarmPoolMaxPreparedCapacity": 1, **overrides})
        fleet.set_desired_capacity(1)
        run_to(engine, 200.0)
        (instance,) = fleet.instances.values()
        assert fleet.drain(instance.instance_id)
        run_to(engine, 1000.0)
        assert fleet.returned_to_pool == 0
        assert instance.instance_id not in fleet.warm_instances
        assert instance.instance_id not in fleet.instances


def test_an_idle_exit_also_returns_the_instance_to_the_pool() -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=1, ScaleInIdlePeriod=300)
    fleet.set_desired_capacity(1)
    run_to(engine, 361.0)  # boot 60 + idle 300
    assert fleet.desired_capacity == 0
    assert fleet.returned_to_pool == 1
    assert len(fleet.warm_instances) == 1


def test_shrinking_prepared_capacity_terminates_surplus_pool_instances() -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=4)
    run_to(engine, 100.0)
    fleet.set_warm_pool_max_prepared_capacity(1)
    assert len(fleet.warm_instances) == 1
    run_to(engine, 200.0)
    # the three surplus volumes existed 100 s + 20 s shutdown; the kept one all along
    assert fleet.volume_seconds(200.0) == pytest.approx(3 * 120.0 + 200.0)


def test_the_scaler_sized_pool_starts_at_min_size() -> None:
    _, fleet = make_fleet(MinSize=2)
    assert fleet.warm_pool_max_prepared_capacity == 2
    assert fleet.desired_capacity == 2
    assert not fleet.warm_instances


@given(
    prepared=st.integers(0, 10),
    min_size=st.integers(0, 4),
    desired=st.integers(0, 10),
)
@settings(max_examples=40, deadline=None)
def test_the_pool_size_follows_the_aws_rule(prepared: int, min_size: int, desired: int) -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=prepared, WarmPoolMinSize=min_size)
    run_to(engine, 100.0)
    fleet.set_desired_capacity(desired)
    assert len(fleet.warm_instances) == max(min_size, prepared - desired)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"OnDemandPercentage": 70}, "OnDemandPercentage"),
        ({"InstanceTypes": "t3.large,t3a.large"}, "InstanceTypes"),
        ({"WarmPoolMaxPreparedCapacity": 11}, "MaxSize"),
    ],
)
def test_a_warm_pool_on_a_spot_or_mixed_group_is_refused(overrides: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_config("project", {**POOL, **overrides})


def test_without_the_pool_spot_and_several_types_are_accepted() -> None:
    config = build_config(
        "project", {"OnDemandPercentage": 0, "InstanceTypes": "t3.large,m5.large"}
    )
    assert not config.enable_warm_pool


def test_a_warm_pool_run_reports_pool_activity_and_ebs() -> None:
    trace = [TraceJob(float(t), 120.0) for t in range(0, 7200, 900)]
    config = build_config("project", {**FIXED, **POOL, "WarmPoolMaxPreparedCapacity": 2})
    result = simulate(trace, "project", "poll", config, seed=1)
    assert result.resumes > 0
    assert result.volume_seconds > result.instance_seconds
    assert result.cost.ebs > 0
    assert result.interrupted_jobs == 0
    assert result.as_json()["warm_pool"]["resumes"] == result.resumes


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"ScaleInDemandWindow": 3601}, "ScaleInDemandWindow must be at most 3600"),
        ({"WarmPoolState": "Running"}, "WarmPoolState must be one of Stopped, Hibernated"),
        ({"WarmPoolMaxPreparedCapacity": -2}, "WarmPoolMaxPreparedCapacity must be at least -1"),
        ({"OnDemandPercentage": 101}, "OnDemandPercentage must be at most 100"),
        ({"InstanceTypes": ""}, "InstanceTypes must be a non-empty string"),
    ],
)
def test_new_settings_are_checked_with_the_stack_names(overrides: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_config("project", overrides)


def test_instance_types_may_be_a_json_list_as_in_a_parameters_file() -> None:
    config = build_config("project", {"InstanceTypes": ["t3.large"], **POOL})
    assert config.instance_type == "t3.large"


operations = st.lists(
    st.one_of(
        st.tuples(st.just("desired"), st.integers(0, 10)),
        st.tuples(st.just("prepared"), st.integers(0, 10)),
        st.tuples(st.just("drain"), st.integers(0, 9)),
        st.tuples(st.just("job"), st.integers(10, 400)),
        st.tuples(st.just("wait"), st.integers(1, 300)),
    ),
    max_size=25,
)


@given(operations)
@settings(max_examples=60, deadline=None)
def test_any_sequence_keeps_jobs_safe_and_the_books_balanced(ops: list[tuple[str, int]]) -> None:
    engine, fleet = make_fleet(WarmPoolMaxPreparedCapacity=3, ScaleInIdlePeriod=120)
    jobs: list[Job] = []
    for kind, value in ops:
        if kind == "desired":
            fleet.set_desired_capacity(value)
        elif kind == "prepared":
            fleet.set_warm_pool_max_prepared_capacity(value)
        elif kind == "drain":
            ids = sorted(fleet.instances)
            if ids:
                fleet.drain(ids[value % len(ids)])
        elif kind == "job":
            job = Job(job_id=len(jobs), submit_s=engine.now, duration_s=float(value))
            jobs.append(job)
            fleet.submit(job)
        else:
            run_to(engine, engine.now + value)
        # the pool never holds more than its size, and group and pool never share an instance
        assert len(fleet.warm_instances) <= fleet.warm_pool_size()
        assert not set(fleet.warm_instances) & set(fleet.instances)
    fleet.set_desired_capacity(max(fleet.desired_capacity, 1))
    run_to(engine, engine.now + 5000)
    assert fleet.interrupted_jobs == 0  # the hook lets every job finish
    assert all(job.finished_at is not None for job in jobs)
    until = engine.now
    assert fleet.volume_seconds(until) >= fleet.instance_seconds(until) - 1e-6


@pytest.mark.parametrize("policy", ["project", "reference"])
def test_the_configuration_round_trips_through_its_stack_names(policy: str) -> None:
    from tools.simulate.config import config_as_dict

    config = build_config(
        policy,
        {**POOL, "WarmPoolState": "Hibernated", "ResumeDelayMedian": 40, "ScaleInDemandWindow": 0},
    )
    assert build_config(policy, config_as_dict(config)) == config
