"""Properties of the scaling policy that hold for every observation (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

from agent_scaler.policy import (
    IN_SERVICE,
    GroupObservation,
    Instance,
    Observation,
    ScalerConfig,
    ScalerState,
    apply,
    decide,
)
from buildkite_api import QueueMetrics
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = 1_724_051_327.0
LIFECYCLE_STATES = ("InService", "Pending", "Pending:Wait", "Terminating:Wait", "Standby")

counts = st.integers(min_value=0, max_value=60)


@st.composite
def queue_metrics(draw: st.DrawFn) -> QueueMetrics:
    idle, busy = draw(counts), draw(counts)
    return QueueMetrics(
        scheduled_jobs=draw(counts),
        running_jobs=draw(counts),
        waiting_jobs=draw(counts),
        idle_agents=idle,
        busy_agents=busy,
        total_agents=idle + busy,
        organization_slug="acme",
        cluster_name=None,
        poll_interval_s=10.0,
        fetched_at=NOW,
    )


@st.composite
def groups(draw: st.DrawFn) -> GroupObservation:
    min_size = draw(st.integers(min_value=0, max_value=5))
    max_size = draw(st.integers(min_value=max(min_size, 1), max_value=40))
    desired = draw(st.integers(min_value=min_size, max_value=max_size))
    states = draw(st.lists(st.sampled_from(LIFECYCLE_STATES), max_size=desired + 3))
    instances = tuple(
        Instance(
            f"i-{index:04d}",
            state,
            launched_at=draw(st.none() | st.floats(min_value=NOW - 86_400, max_value=NOW)),
        )
        for index, state in enumerate(states)
    )
    return GroupObservation("fleet", desired, min_size, max_size, instances)


@st.composite
def configs(draw: st.DrawFn, group: GroupObservation) -> ScalerConfig:
    return ScalerConfig(
        agents_per_instance=draw(st.integers(min_value=1, max_value=8)),
        min_size=group.min_size,
        max_size=group.max_size,
        instance_buffer=draw(st.integers(min_value=0, max_value=5)),
        scale_out_factor=draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 3.0])),
        scale_out_for_waiting_jobs=draw(st.booleans()),
        disable_scale_in=draw(st.booleans()),
        scale_out_cooldown_period=draw(st.sampled_from([0, 300])),
        scale_in_cooldown_period=draw(st.sampled_from([0, 3600])),
    )


states = st.builds(
    ScalerState,
    last_scale_out_at=st.none() | st.floats(min_value=NOW - 7200, max_value=NOW),
    last_scale_in_at=st.none() | st.floats(min_value=NOW - 7200, max_value=NOW),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Observation, ScalerConfig, ScalerState]:
    group = draw(groups())
    return Observation(draw(queue_metrics()), group), draw(configs(group)), draw(states)


def busy_floor(observation: Observation) -> int:
    in_service = sum(1 for i in observation.group.instances if i.lifecycle_state == IN_SERVICE)
    return min(observation.metrics.busy_agents, in_service)


@given(scenarios())
def test_target_within_the_group_bounds(scenario) -> None:
    observation, config, state = scenario
    decision = decide(observation, config, state, NOW)
    assert observation.group.min_size <= decision.target_capacity <= observation.group.max_size
    if decision.desired_capacity is not None:
        assert decision.desired_capacity <= observation.group.max_size


@given(scenarios())
def test_target_never_below_the_busy_floor(scenario) -> None:
    observation, config, state = scenario
    decision = decide(observation, config, state, NOW)
    assert decision.target_capacity >= min(busy_floor(observation), observation.group.max_size)


@given(scenarios(), counts, counts, counts, counts)
def test_more_demand_never_lowers_the_target(
    scenario, more_scheduled: int, more_running: int, more_waiting: int, more_busy: int
) -> None:
    observation, config, state = scenario
    metrics = observation.metrics
    busier = replace(
        metrics,
        scheduled_jobs=metrics.scheduled_jobs + more_scheduled,
        running_jobs=metrics.running_jobs + more_running,
        waiting_jobs=metrics.waiting_jobs + more_waiting,
        busy_agents=metrics.busy_agents + more_busy,
        total_agents=metrics.total_agents + more_busy,
    )
    before = decide(observation, config, state, NOW)
    after = decide(replace(observation, metrics=busier), config, state, NOW)
    assert after.target_capacity >= before.target_capacity


@given(scenarios())
def test_desired_capacity_only_ever_goes_up(scenario) -> None:
    observation, config, state = scenario
    decision = decide(observation, config, state, NOW)
    if decision.desired_capacity is not None:
        assert decision.desired_capacity > observation.group.desired_capacity
        assert not decision.drain_instance_ids


@given(scenarios())
def test_drains_only_proven_idle_in_service_instances_and_never_below_target(scenario) -> None:
    observation, config, state = scenario
    decision = decide(observation, config, state, NOW)
    if not decision.drain_instance_ids:
        return
    metrics = observation.metrics
    assert not config.disable_scale_in
    assert metrics.scheduled_jobs == metrics.running_jobs == metrics.busy_agents == 0
    in_service = {
        i.instance_id for i in observation.group.instances if i.lifecycle_state == IN_SERVICE
    }
    assert set(decision.drain_instance_ids) <= in_service
    assert len(set(decision.drain_instance_ids)) == len(decision.drain_instance_ids)
    remaining = observation.group.desired_capacity - len(decision.drain_instance_ids)
    assert remaining >= decision.target_capacity >= observation.group.min_size


@given(scenarios())
def test_second_evaluation_with_the_first_applied_changes_nothing(scenario) -> None:
    observation, config, state = scenario
    if 0 < config.scale_out_factor < 1:
        # Partial steps by design: covered by the convergence property below.
        config = replace(config, scale_out_factor=1.0)
    first = decide(observation, config, state, NOW)
    second = decide(apply(observation, first), config, first.state, NOW)
    assert not second.changes_capacity


@settings(max_examples=50)
@given(scenarios())
def test_partial_scale_out_steps_converge_on_the_target_without_overshooting(scenario) -> None:
    observation, config, state = scenario
    config = replace(config, scale_out_factor=0.25, scale_out_cooldown_period=0)
    decision = decide(observation, config, state, NOW)
    target = decision.target_capacity
    for _ in range(math.ceil(math.log(max(target, 2)) / math.log(4 / 3)) + 2):
        if decision.desired_capacity is None:
            break
        assert decision.desired_capacity <= max(target, observation.group.desired_capacity)
        observation = apply(observation, decision)
        decision = decide(observation, config, decision.state, NOW)
    assert decision.desired_capacity is None
