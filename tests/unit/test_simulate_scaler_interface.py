"""The project scaler model speaks the policy's issue-16 interface: pool, state, drains."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.simulate.config import build_config
from tools.simulate.engine import EventEngine
from tools.simulate.fleet import WARMED_STOPPED, Fleet, Job
from tools.simulate.runner import simulate
from tools.simulate.scalers import ProjectScaler
from tools.simulate.traces import TraceJob

FIXED = {
    "BootDelayMedian": 60,
    "BootDelayP05": 60,
    "BootDelayP95": 60,
    "ResumeDelayMedian": 20,
    "ResumeDelayP05": 20,
    "ResumeDelayP95": 20,
    "MaxSize": 10,
}


def make(**overrides: object) -> tuple[EventEngine, Fleet, ProjectScaler]:
    config = build_config("project", {**FIXED, **overrides})
    engine = EventEngine()
    fleet = Fleet(engine, config, lifecycle_hook=True, seed=1)
    return engine, fleet, ProjectScaler(fleet, config)


def record_decide(monkeypatch: pytest.MonkeyPatch, change: object = None) -> list[tuple]:
    """Replace decide() by the real one (optionally changing its decision); log its inputs."""
    from agent_scaler import policy

    calls: list[tuple] = []
    real = policy.decide

    def decide(observation, config, state, now):  # type: ignore[no-untyped-def]
        decision = real(observation, config, state, now)
        if change is not None:
            decision = change(decision, observation)  # type: ignore[operator]
        calls.append((observation, config, state, decision))
        return decision

    monkeypatch.setattr(policy, "decide", decide)
    return calls


def test_the_config_carries_the_demand_window_and_pool_sizing() -> None:
    _, _, scaler = make(ScaleInDemandWindow=900, EnableWarmPool=True)
    assert scaler.config.scale_in_demand_window == 900
    assert scaler.config.drains_wait_for_jobs is True
    assert scaler.config.size_warm_pool is True
    _, _, fixed = make(EnableWarmPool=True, WarmPoolMaxPreparedCapacity=3)
    assert fixed.config.size_warm_pool is False
    _, _, plain = make()
    assert plain.config.size_warm_pool is False


def test_the_warm_pool_is_observed_as_describe_warm_pool_reports_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = record_decide(monkeypatch)
    engine, _, scaler = make(EnableWarmPool=True, WarmPoolMaxPreparedCapacity=2, WarmPoolMinSize=1)
    engine.run_until(lambda: False, horizon=100.0)
    scaler.evaluate(100.0)
    observation = calls[-1][0]
    pool = observation.group.warm_pool
    assert (pool.min_size, pool.max_group_prepared_capacity) == (1, 2)
    assert (pool.pool_state, pool.reuse_on_scale_in) == ("Stopped", True)
    assert sorted(i.lifecycle_state for i in pool.instances) == [WARMED_STOPPED] * 2
    assert all(i.lifecycle_state.startswith("Warmed:") for i in pool.instances)
    # pool instances are not group instances
    assert not observation.group.instances


def test_without_a_pool_the_observation_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_decide(monkeypatch)
    _, _, scaler = make()
    scaler.evaluate(0.0)
    assert calls[-1][0].group.warm_pool is None


def test_the_decided_prepared_capacity_is_applied_on_scheduled_evaluations_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record_decide(monkeypatch, lambda d, _: replace(d, warm_pool_max_prepared_capacity=4))
    _, fleet, scaler = make(EnableWarmPool=True)
    scaler.evaluate(0.0, scale_in=False)  # push: never touches the pool
    assert fleet.warm_pool_max_prepared_capacity == 0
    scaler.evaluate(0.0)
    assert fleet.warm_pool_max_prepared_capacity == 4
    assert len(fleet.warm_instances) == 4
    scaler.evaluate(10.0)  # unchanged: no second PutWarmPool
    assert scaler.stats.warm_pool_updates == 1


def test_decided_drains_go_through_the_hook_and_return_to_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def drain_all(decision, observation):  # type: ignore[no-untyped-def]
        ids = tuple(i.instance_id for i in observation.group.in_service)
        return replace(decision, desired_capacity=None, drain_instance_ids=ids)

    engine, fleet, scaler = make(EnableWarmPool=True, WarmPoolMaxPreparedCapacity=1)
    fleet.set_desired_capacity(1)
    engine.run_until(lambda: False, horizon=100.0)
    job = Job(job_id=1, submit_s=100.0, duration_s=50.0)
    fleet.submit(job)
    record_decide(monkeypatch, drain_all)
    scaler.evaluate(100.0)
    assert scaler.stats.drained_instances == 1
    assert fleet.desired_capacity == 0
    engine.run_until(lambda: False, horizon=200.0)
    assert job.finished_at == 150.0
    assert fleet.interrupted_jobs == 0
    assert fleet.returned_to_pool == 1


def test_state_is_carried_and_push_keeps_the_scheduled_demand_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent_scaler import policy

    peaks = ((0.0, 3),)

    def with_peaks(decision, _):  # type: ignore[no-untyped-def]
        return replace(decision, state=replace(decision.state, demand_peaks=peaks))

    calls = record_decide(monkeypatch, with_peaks)
    _, _, scaler = make()
    scaler.evaluate(0.0)
    assert scaler.state.demand_peaks == peaks
    scaler.evaluate(10.0)
    assert calls[-1][2].demand_peaks == peaks  # the next evaluation sees it

    def push_writes_peaks(observation, config, state, now):  # type: ignore[no-untyped-def]
        return policy.Decision(None, 0, (), (), replace(state, demand_peaks=((5.0, 9),)))

    monkeypatch.setattr(policy, "decide", push_writes_peaks)
    scaler.evaluate(20.0, scale_in=False)
    assert scaler.state.demand_peaks == peaks
    scaler.evaluate(30.0)
    assert scaler.state.demand_peaks == ((5.0, 9),)


def test_push_evaluations_never_drain_and_never_size_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = record_decide(monkeypatch)
    _, _, scaler = make(EnableWarmPool=True)
    scaler.evaluate(0.0, scale_in=False)
    config = calls[-1][1]
    assert config.disable_scale_in is True
    assert config.scale_in_demand_window == 0
    assert config.size_warm_pool is False


@given(
    jobs=st.lists(st.tuples(st.floats(0, 1800), st.floats(5, 900)), min_size=1, max_size=25),
    warm=st.booleans(),
    window=st.sampled_from([0, 300, 600]),
)
@settings(max_examples=15, deadline=None)
def test_with_the_real_policy_every_job_finishes_and_none_is_interrupted(
    jobs: list[tuple[float, float]], warm: bool, window: int
) -> None:
    """Rule 7 drains and the warm pool never cost a job: the hook lets each one finish."""
    overrides = {**FIXED, "ScaleInDemandWindow": window}
    if warm:
        overrides["EnableWarmPool"] = True
    config = build_config("project", overrides)
    trace = [TraceJob(submit, duration) for submit, duration in jobs]
    result = simulate(trace, "project", "poll", config, seed=1)
    assert result.interrupted_jobs == 0
    assert result.unfinished_jobs == 0
    assert result.volume_seconds >= result.instance_seconds - 1e-6
