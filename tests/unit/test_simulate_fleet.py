"""The simulated fleet: boot, job dispatch, idle exit, drains and interruption accounting."""

from __future__ import annotations

import pytest

from tools.simulate.config import build_config
from tools.simulate.engine import EventEngine
from tools.simulate.fleet import (
    IN_SERVICE,
    PENDING,
    TERMINATING_WAIT,
    Fleet,
    FleetError,
    Instance,
    Job,
)

FIXED_BOOT = {"BootDelayMedian": 60, "BootDelayP05": 60, "BootDelayP95": 60}


def make_fleet(*, lifecycle_hook: bool = True, **overrides: object) -> tuple[EventEngine, Fleet]:
    config = build_config("project", {**FIXED_BOOT, "MaxSize": 10, **overrides})
    engine = EventEngine()
    return engine, Fleet(engine, config, lifecycle_hook=lifecycle_hook, seed=1)


def run_to(engine: EventEngine, at: float) -> None:
    engine.run_until(lambda: False, horizon=at)


def submit_at(engine: EventEngine, fleet: Fleet, at: float, duration: float) -> Job:
    job = Job(job_id=int(at * 1000), submit_s=at, duration_s=duration)
    engine.schedule(at, lambda: fleet.submit(job))
    return job


def only_instance(fleet: Fleet) -> Instance:
    (instance,) = fleet.instances.values()
    return instance


def test_a_launched_instance_is_in_service_early_and_registers_its_agents_after_booting() -> None:
    engine, fleet = make_fleet(AgentsPerInstance=2)
    fleet.set_desired_capacity(1)
    instance = only_instance(fleet)
    run_to(engine, 14.9)
    assert instance.lifecycle_state == PENDING
    run_to(engine, 15.0)
    assert instance.lifecycle_state == IN_SERVICE
    run_to(engine, 59.9)
    assert fleet.snapshot().total_agents == 0
    run_to(engine, 60.0)
    snapshot = fleet.snapshot()
    assert (snapshot.idle_agents, snapshot.busy_agents, snapshot.total_agents) == (2, 0, 2)


def test_a_queued_job_waits_for_the_boot_then_runs_for_its_duration() -> None:
    engine, fleet = make_fleet()
    job = submit_at(engine, fleet, 0.0, 100.0)
    engine.schedule(0.0, lambda: fleet.set_desired_capacity(1))
    run_to(engine, 59.0)
    assert fleet.snapshot().scheduled_jobs == 1
    run_to(engine, 200.0)
    assert (job.wait_s, job.started_at, job.finished_at) == (60.0, 60.0, 160.0)
    assert fleet.finished_jobs == [job]


def test_an_idle_instance_terminates_itself_with_decrement_after_the_idle_period() -> None:
    engine, fleet = make_fleet(ScaleInIdlePeriod=600, InstanceShutdownDelay=20)
    submit_at(engine, fleet, 0.0, 100.0)
    fleet.set_desired_capacity(1)
    run_to(engine, 759.9)  # job ends at 160; idle until 760
    assert fleet.desired_capacity == 1
    run_to(engine, 760.0)
    assert fleet.desired_capacity == 0
    assert fleet.launches == 1  # no replacement
    run_to(engine, 780.0)
    assert fleet.instances == {}
    assert fleet.instance_seconds(until=5000.0) == pytest.approx(780.0)


def test_a_new_job_resets_the_idle_timer() -> None:
    engine, fleet = make_fleet(ScaleInIdlePeriod=600, InstanceShutdownDelay=20)
    submit_at(engine, fleet, 0.0, 100.0)
    second = submit_at(engine, fleet, 700.0, 50.0)
    fleet.set_desired_capacity(1)
    run_to(engine, 1349.0)
    assert second.wait_s == 0.0
    assert fleet.desired_capacity == 1
    run_to(engine, 1370.0)  # idle from 750, leaves at 1350, gone at 1370
    assert fleet.instances == {}


def test_with_several_agents_the_instance_leaves_only_when_all_have_been_idle_long_enough() -> None:
    engine, fleet = make_fleet(AgentsPerInstance=2, ScaleInIdlePeriod=600)
    submit_at(engine, fleet, 0.0, 100.0)
    submit_at(engine, fleet, 0.0, 300.0)
    fleet.set_desired_capacity(1)
    run_to(engine, 959.0)  # first agent idle since 160, second since 360
    assert fleet.desired_capacity == 1
    run_to(engine, 960.0)
    assert fleet.desired_capacity == 0


def test_an_idle_period_of_zero_means_agents_never_disconnect() -> None:
    engine, fleet = make_fleet(ScaleInIdlePeriod=0)
    fleet.set_desired_capacity(1)
    run_to(engine, 100_000.0)
    assert len(fleet.instances) == 1


def test_at_min_size_the_instance_terminates_without_decrement_and_is_replaced() -> None:
    engine, fleet = make_fleet(MinSize=1, ScaleInIdlePeriod=600)
    assert fleet.desired_capacity == 1
    assert fleet.launches == 1
    run_to(engine, 660.0)  # registered at 60, idle until 660
    assert fleet.desired_capacity == 1
    assert fleet.launches == 2


def test_terminating_a_busy_instance_without_a_lifecycle_hook_interrupts_its_job() -> None:
    engine, fleet = make_fleet(lifecycle_hook=False, InstanceScaleInProtection=False)
    job = submit_at(engine, fleet, 0.0, 1000.0)
    fleet.set_desired_capacity(1)
    run_to(engine, 100.0)

    fleet.set_desired_capacity(0)  # the group picks the only, busy, unprotected instance

    assert fleet.interrupted_jobs == 1
    assert fleet.snapshot().scheduled_jobs == 1  # the job went back to the queue
    fleet.set_desired_capacity(1)
    run_to(engine, 2000.0)
    assert job.attempts == 2
    assert job.wait_s == pytest.approx(60.0 + 60.0)  # first boot, then back in queue at 100
    assert job.finished_at == pytest.approx(160.0 + 1000.0)
    assert fleet.finished_jobs == [job]


def test_the_group_never_scales_in_a_protected_instance() -> None:
    engine, fleet = make_fleet(lifecycle_hook=False, InstanceScaleInProtection=True)
    submit_at(engine, fleet, 0.0, 1000.0)
    fleet.set_desired_capacity(1)
    run_to(engine, 100.0)
    fleet.set_desired_capacity(0)
    run_to(engine, 200.0)
    assert fleet.interrupted_jobs == 0
    assert fleet.snapshot().busy_agents == 1


def test_a_drain_lets_the_running_job_finish_and_takes_no_new_job() -> None:
    engine, fleet = make_fleet(lifecycle_hook=True, InstanceShutdownDelay=20)
    first = submit_at(engine, fleet, 0.0, 300.0)
    second = submit_at(engine, fleet, 110.0, 10.0)
    fleet.set_desired_capacity(1)
    run_to(engine, 100.0)
    instance = only_instance(fleet)

    assert fleet.drain(instance.instance_id)

    assert fleet.desired_capacity == 0
    assert instance.lifecycle_state == TERMINATING_WAIT
    run_to(engine, 359.0)
    assert second.started_at is None
    assert fleet.snapshot().idle_agents == 0
    run_to(engine, 380.0)
    assert first.finished_at == 360.0
    assert fleet.interrupted_jobs == 0
    assert fleet.instances == {}


def test_a_drain_whose_grace_period_ends_first_interrupts_the_job() -> None:
    engine, fleet = make_fleet(lifecycle_hook=True, InstanceTerminationGracePeriod=100)
    job = submit_at(engine, fleet, 0.0, 300.0)
    fleet.set_desired_capacity(1)
    run_to(engine, 100.0)
    fleet.drain(only_instance(fleet).instance_id)
    run_to(engine, 200.0)
    assert fleet.interrupted_jobs == 1
    assert job.started_at is None
    assert fleet.snapshot().scheduled_jobs == 1


def test_a_drain_that_would_go_below_min_size_fails_like_the_real_call() -> None:
    engine, fleet = make_fleet(MinSize=1)
    run_to(engine, 60.0)
    assert not fleet.drain(only_instance(fleet).instance_id)
    assert fleet.desired_capacity == 1


def test_desired_capacity_outside_the_bounds_is_rejected() -> None:
    _, fleet = make_fleet(MaxSize=3)
    with pytest.raises(FleetError, match=r"outside \[0, 3\]"):
        fleet.set_desired_capacity(4)


def test_an_instance_reports_itself_idle_only_30_s_after_its_last_job() -> None:
    # Booted at 60 s; a job 70-170 s. The handler model: idle once nothing ran for 30 s.
    engine, fleet = make_fleet()
    fleet.set_desired_capacity(1)
    instance = only_instance(fleet)
    submit_at(engine, fleet, 70.0, 100.0)
    run_to(engine, 60.0)
    assert not instance.reports_idle(60.0)  # agents just registered
    run_to(engine, 69.0)
    assert not instance.reports_idle(69.0)
    run_to(engine, 120.0)
    assert not instance.reports_idle(120.0)  # running a job
    run_to(engine, 199.0)
    assert not instance.reports_idle(199.0)  # finished 29 s ago
    run_to(engine, 200.0)
    assert instance.reports_idle(200.0)
