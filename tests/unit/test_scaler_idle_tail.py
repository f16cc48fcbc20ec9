"""Rules 7 (idle tail) and 8 (warm pool size) of the scaling policy, and the demand history."""

from __future__ import annotations

from dataclasses import replace

import pytest
from agent_scaler import demand
from agent_scaler.policy import (
    IN_SERVICE,
    GroupObservation,
    Instance,
    Observation,
    ScalerConfig,
    ScalerState,
    WarmPool,
    apply,
    decide,
)
from buildkite_api import QueueMetrics
from hypothesis import given
from hypothesis import strategies as st

NOW = 1_724_051_327.0
WINDOW = 600.0


def metrics(
    scheduled: int = 0, running: int = 0, idle: int = 0, busy: int = 0, waiting: int = 0
) -> QueueMetrics:
    return QueueMetrics(
        scheduled_jobs=scheduled,
        running_jobs=running,
        waiting_jobs=waiting,
        idle_agents=idle,
        busy_agents=busy,
        total_agents=idle + busy,
        organization_slug="acme",
        cluster_name=None,
        poll_interval_s=10.0,
        fetched_at=NOW,
    )


def group(
    desired: int,
    *,
    min_size: int = 0,
    max_size: int = 20,
    pool: WarmPool | None = None,
    busy: int = 0,
):
    """``desired`` in-service instances, oldest first; the ``busy`` oldest are protected from
    scale-in (their handler reports a job), the others report themselves idle."""
    instances = tuple(
        Instance(
            f"i-{n:03d}", IN_SERVICE, launched_at=NOW - 3000 + n, protected_from_scale_in=n < busy
        )
        for n in range(desired)
    )
    return GroupObservation("fleet", desired, min_size, max_size, instances, pool)


def history(*peaks: int, horizon: float = WINDOW) -> tuple[tuple[float, int], ...]:
    """Peaks for consecutive buckets ending with the current one (the last value)."""
    length = demand.bucket_seconds(horizon)
    current = (NOW // length) * length
    return tuple((current - length * (len(peaks) - 1 - n), peak) for n, peak in enumerate(peaks))


def full_history(peak: int, horizon: float = WINDOW) -> tuple[tuple[float, int], ...]:
    """A history over the whole horizon (and one bucket more) at ``peak`` instances."""
    return history(*[peak] * (demand.BUCKETS + 2), horizon=horizon)


def run(queue, asg, state=None, **config) -> object:
    settings = ScalerConfig(**{"min_size": asg.min_size, "max_size": asg.max_size, **config})
    return decide(Observation(queue, asg), settings, state or ScalerState(), NOW)


# --- the demand history --------------------------------------------------------------------------


def test_history_keeps_the_peak_of_each_bucket_and_forgets_what_is_older_than_the_horizon() -> None:
    peaks = ()
    for second in range(0, 1200, 10):
        peaks = demand.record(peaks, NOW - 1200 + second, second // 100, WINDOW)
    peaks = demand.record(peaks, NOW, 3, WINDOW)
    assert len(peaks) <= demand.BUCKETS + 1
    assert all(start > NOW - WINDOW - demand.bucket_seconds(WINDOW) for start, _ in peaks)
    assert peaks[-1][1] == 11  # the current bucket keeps its highest value
    assert demand.peak(peaks, NOW, WINDOW, WINDOW) == 11
    assert demand.peak(peaks, NOW, 30, WINDOW) == 11
    assert demand.covers(peaks, NOW, WINDOW)
    assert not demand.covers(peaks[-3:], NOW, WINDOW)


def test_history_with_no_horizon_is_empty() -> None:
    assert demand.record(((NOW - 10, 4),), NOW, 2, 0) == ()


# --- rule 7: the idle tail ---------------------------------------------------------------------


def test_drains_what_demand_over_the_window_did_not_want() -> None:
    state = ScalerState(demand_peaks=history(*[3] * 22))
    decision = run(metrics(running=1, idle=7, busy=1), group(8), state)
    # Demand peaked at 3; 8 in service, at most 7 free of busy agents: drain 5, oldest first.
    assert decision.drain_instance_ids == tuple(f"i-{n:03d}" for n in range(5))
    assert decision.desired_capacity is None
    assert any("through the terminating lifecycle hook" in r for r in decision.reasons)


def test_keeps_the_peak_of_the_window_even_when_the_queue_is_empty_now() -> None:
    peaks = history(*[2] * 15, 9, 2, 2, 2, 2, 2, 2)
    decision = run(metrics(idle=10), group(10), ScalerState(demand_peaks=peaks))
    assert len(decision.drain_instance_ids) == 1
    assert any("demand peaked at 9 instances" in r for r in decision.reasons)


def test_drains_only_instances_that_report_themselves_idle() -> None:
    state = ScalerState(demand_peaks=full_history(1))
    decision = run(metrics(running=3, idle=5, busy=3), group(8, busy=3), state)
    # Keeps 3 (the busy floor); of the 5 surplus, the 3 oldest are protected: never chosen.
    assert decision.drain_instance_ids == ("i-003", "i-004", "i-005", "i-006", "i-007")
    all_busy = run(metrics(idle=6), group(6, busy=6), state)
    assert all_busy.drain_instance_ids == ()
    assert any("no in-service instance reports itself idle" in r for r in all_busy.reasons)


def test_never_drains_instances_busy_agents_may_be_on() -> None:
    state = ScalerState(demand_peaks=full_history(0))
    decision = run(metrics(running=6, idle=0, busy=6), group(6), state)
    assert decision.drain_instance_ids == ()


def test_without_a_whole_window_of_history_nothing_is_drained() -> None:
    state = ScalerState(demand_peaks=history(1, 1, 1))
    decision = run(metrics(idle=6), group(6), state)
    assert decision.drain_instance_ids == ()
    assert any("does not cover the last 600 s" in r for r in decision.reasons)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({"scale_in_demand_window": 0}, id="window 0 turns it off"),
        pytest.param({"drains_wait_for_jobs": False}, id="no terminating hook"),
    ],
)
def test_rule_is_off_without_a_window_or_without_the_hook(config) -> None:
    state = ScalerState(demand_peaks=full_history(1))
    decision = run(metrics(running=1, busy=1, idle=5), group(6), state, **config)
    assert decision.drain_instance_ids == ()


def test_a_window_of_zero_leaves_the_history_as_it_was() -> None:
    # The push evaluation runs with no window: it must not erase the scheduled one's history.
    peaks = full_history(4)
    decision = run(
        metrics(scheduled=9), group(2), ScalerState(demand_peaks=peaks), scale_in_demand_window=0
    )
    assert decision.state.demand_peaks == peaks


def test_every_evaluation_records_the_target_in_the_history() -> None:
    decision = run(metrics(scheduled=5), group(2))
    assert decision.state.demand_peaks == history(5)


# --- rule 8: the warm pool ---------------------------------------------------------------------

POOL_HORIZON = WINDOW * 4


def test_pool_follows_the_peak_of_the_longer_horizon() -> None:
    pool = WarmPool(min_size=0, max_group_prepared_capacity=None)
    peaks = history(*[12] * 5, *[3] * 17, horizon=POOL_HORIZON)
    decision = run(
        metrics(running=3, busy=3),
        group(3, pool=pool),
        ScalerState(demand_peaks=peaks),
        size_warm_pool=True,
    )
    assert decision.warm_pool_max_prepared_capacity == 12
    assert any("MaxGroupPreparedCapacity unset -> 12" in r for r in decision.reasons)


def test_pool_size_is_left_alone_when_unchanged_or_not_ours_to_size() -> None:
    pool = WarmPool(max_group_prepared_capacity=4)
    peaks = history(*[4] * 22, horizon=POOL_HORIZON)
    state = ScalerState(demand_peaks=peaks)
    assert (
        run(
            metrics(running=4, busy=4), group(4, pool=pool), state, size_warm_pool=True
        ).warm_pool_max_prepared_capacity
        is None
    )
    assert (
        run(
            metrics(scheduled=9), group(4, pool=pool), state, size_warm_pool=False
        ).warm_pool_max_prepared_capacity
        is None
    )


def test_pool_never_below_the_new_desired_capacity_nor_above_max_size() -> None:
    pool = WarmPool(max_group_prepared_capacity=2)
    up = run(metrics(scheduled=8), group(2, pool=pool), size_warm_pool=True)
    assert up.desired_capacity == 8
    assert up.warm_pool_max_prepared_capacity == 8
    peaks = history(*[50] * 22, horizon=POOL_HORIZON)
    capped = run(
        metrics(),
        group(3, max_size=20, pool=pool),
        ScalerState(demand_peaks=peaks),
        size_warm_pool=True,
    )
    assert capped.warm_pool_max_prepared_capacity == 20


# --- properties ----------------------------------------------------------------------------------

counts = st.integers(min_value=0, max_value=30)


@st.composite
def scenarios(draw: st.DrawFn):
    min_size = draw(st.integers(min_value=0, max_value=3))
    max_size = draw(st.integers(min_value=max(min_size, 1), max_value=30))
    desired = draw(st.integers(min_value=min_size, max_value=max_size))
    pending = draw(st.integers(min_value=0, max_value=desired))
    instances = tuple(
        Instance(
            f"i-{n:03d}",
            "Pending" if n < pending else IN_SERVICE,
            launched_at=draw(st.none() | st.floats(min_value=NOW - 7200, max_value=NOW)),
            protected_from_scale_in=draw(st.booleans()),
        )
        for n in range(desired)
    )
    pool = draw(
        st.none()
        | st.builds(
            WarmPool,
            min_size=st.integers(min_value=0, max_value=3),
            max_group_prepared_capacity=st.none() | st.integers(min_value=0, max_value=30),
        )
    )
    queue = metrics(
        scheduled=draw(counts),
        running=draw(counts),
        idle=draw(counts),
        busy=draw(counts),
        waiting=draw(counts),
    )
    config = ScalerConfig(
        agents_per_instance=draw(st.integers(min_value=1, max_value=4)),
        min_size=min_size,
        max_size=max_size,
        instance_buffer=draw(st.integers(min_value=0, max_value=3)),
        disable_scale_in=draw(st.booleans()),
        scale_in_cooldown_period=draw(st.sampled_from([0, 3600])),
        scale_in_demand_window=draw(st.sampled_from([0, 300, 600])),
        drains_wait_for_jobs=draw(st.booleans()),
        size_warm_pool=draw(st.booleans()),
    )
    horizon = config.demand_horizon or WINDOW
    length = demand.bucket_seconds(horizon)
    start = draw(st.integers(min_value=0, max_value=demand.BUCKETS + 2))
    peaks = tuple(
        ((NOW // length - start + n) * length, draw(st.integers(min_value=0, max_value=30)))
        for n in range(start + 1)
    )
    state = ScalerState(demand_peaks=peaks)
    return (
        Observation(queue, GroupObservation("fleet", desired, min_size, max_size, instances, pool)),
        config,
        state,
    )


def in_service(observation: Observation) -> set[str]:
    return {i.instance_id for i in observation.group.instances if i.lifecycle_state == IN_SERVICE}


@given(scenarios())
def test_never_lowers_capacity_below_the_instances_busy_agents_may_be_on(scenario) -> None:
    observation, config, state = scenario
    decision = decide(observation, config, state, NOW)
    busy_floor = min(observation.metrics.busy_agents, len(in_service(observation)))
    remaining = observation.group.desired_capacity - len(decision.drain_instance_ids)
    assert remaining >= min(busy_floor, observation.group.max_size)
    # The drained instances are in service and none of them can be one a busy agent is on.
    assert set(decision.drain_instance_ids) <= in_service(observation)
    assert len(decision.drain_instance_ids) <= len(in_service(observation)) - busy_floor


@given(scenarios())
def test_the_idle_tail_never_drains_an_instance_that_reports_a_job(scenario) -> None:
    observation, config, state = scenario
    config = replace(config, disable_scale_in=True)  # rule 7 alone
    decision = decide(observation, config, state, NOW)
    protected = {i.instance_id for i in observation.group.instances if i.protected_from_scale_in}
    assert not protected & set(decision.drain_instance_ids)


@given(scenarios())
def test_never_drains_an_instance_that_may_hold_a_job_without_the_hook(scenario) -> None:
    observation, config, state = scenario
    config = replace(config, drains_wait_for_jobs=False)
    decision = decide(observation, config, state, NOW)
    if decision.drain_instance_ids:
        queue = observation.metrics
        assert not config.disable_scale_in
        assert queue.scheduled_jobs == queue.running_jobs == queue.busy_agents == 0


@given(scenarios())
def test_idempotent_on_the_same_observation(scenario) -> None:
    observation, config, state = scenario
    first = decide(observation, config, state, NOW)
    again = decide(observation, config, state, NOW)
    assert again == first
    second = decide(apply(observation, first), config, first.state, NOW)
    assert not second.changes_capacity
    assert second.warm_pool_max_prepared_capacity is None


@given(scenarios())
def test_warm_pool_size_stays_within_desired_capacity_and_max_size(scenario) -> None:
    observation, config, state = scenario
    decision = decide(observation, config, state, NOW)
    prepared = decision.warm_pool_max_prepared_capacity
    if prepared is None:
        return
    assert config.size_warm_pool
    assert observation.group.warm_pool is not None
    after = apply(observation, decision).group.desired_capacity
    assert min(after, observation.group.max_size) <= prepared <= observation.group.max_size
