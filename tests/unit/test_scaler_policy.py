"""The scaling policy, rule by rule: demand, buffer, busy floor, clamps, scale-out, drains."""

from __future__ import annotations

import pytest
from agent_scaler.policy import (
    ConfigError,
    Decision,
    GroupObservation,
    Instance,
    Observation,
    ObservationError,
    ScalerConfig,
    ScalerState,
    apply,
    decide,
)
from buildkite_api import QueueMetrics

NOW = 1_724_051_327.0


def metrics(
    scheduled: int = 0,
    running: int = 0,
    waiting: int = 0,
    idle: int = 0,
    busy: int | None = None,
    total: int | None = None,
) -> QueueMetrics:
    busy = running if busy is None else busy
    return QueueMetrics(
        scheduled_jobs=scheduled,
        running_jobs=running,
        waiting_jobs=waiting,
        idle_agents=idle,
        busy_agents=busy,
        total_agents=idle + busy if total is None else total,
        organization_slug="acme",
        cluster_name=None,
        poll_interval_s=10.0,
        fetched_at=NOW,
    )


def group(
    desired: int,
    *,
    min_size: int = 0,
    max_size: int = 10,
    in_service: int | None = None,
    pending: int = 0,
) -> GroupObservation:
    """``in_service`` (default: desired - pending) InService instances, oldest first.

    They launched minutes ago: within the registration timeout, so any without an agent yet
    counts as booting.
    """
    in_service = desired - pending if in_service is None else in_service
    instances = [
        Instance(f"i-{n:03d}", "InService", launched_at=NOW - 300 + n) for n in range(in_service)
    ]
    instances += [Instance(f"i-p{n:02d}", "Pending", launched_at=NOW - 5) for n in range(pending)]
    return GroupObservation("fleet", desired, min_size, max_size, tuple(instances))


def run(
    queue: QueueMetrics,
    asg: GroupObservation,
    state: ScalerState | None = None,
    **config: object,
) -> Decision:
    scaler_config = ScalerConfig(
        **{"min_size": asg.min_size, "max_size": asg.max_size, **config}  # type: ignore[arg-type]
    )
    return decide(Observation(queue, asg), scaler_config, state or ScalerState(), NOW)


def times(state: ScalerState) -> tuple[float | None, float | None]:
    """The scale-out and scale-in times of a state (its demand history is tested apart)."""
    return state.last_scale_out_at, state.last_scale_in_at


# --- demand -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "config", "target"),
    [
        pytest.param(metrics(), {}, 0, id="empty queue needs nothing"),
        pytest.param(metrics(scheduled=4, running=2), {}, 6, id="scheduled + running"),
        pytest.param(metrics(scheduled=5), {"agents_per_instance": 2}, 3, id="rounded up"),
        pytest.param(metrics(scheduled=4), {"agents_per_instance": 4}, 1, id="exact fit"),
        pytest.param(metrics(scheduled=1, waiting=7), {}, 1, id="waiting ignored by default"),
        pytest.param(
            metrics(scheduled=1, waiting=7),
            {"scale_out_for_waiting_jobs": True},
            8,
            id="waiting counted when ScaleOutForWaitingJobs",
        ),
        pytest.param(metrics(waiting=3), {}, 0, id="only waiting jobs: no demand by default"),
    ],
)
def test_demand_is_jobs_needing_an_agent_over_agents_per_instance(
    queue: QueueMetrics, config: dict[str, object], target: int
) -> None:
    assert run(queue, group(0), **config).target_capacity == target


def test_demand_reason_names_the_counts_and_the_booting_instances() -> None:
    decision = run(metrics(scheduled=4, running=2), group(5, max_size=20))
    assert decision.reasons[0] == (
        "4 scheduled + 2 running need 6 agents = 6 instances; 3 booting already counted"
    )


def test_ignored_waiting_jobs_are_named_in_the_reasons() -> None:
    decision = run(metrics(scheduled=1, waiting=7), group(0))
    assert "7 waiting not counted: ScaleOutForWaitingJobs is false" in decision.reasons[0]


# --- buffer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "buffer", "target"),
    [
        pytest.param(metrics(), 3, 0, id="no buffer on an empty queue"),
        pytest.param(metrics(scheduled=1), 3, 2, id="buffer limited to the instances needed"),
        pytest.param(metrics(scheduled=5), 2, 7, id="full buffer"),
        pytest.param(metrics(running=2), 1, 3, id="running jobs are work too"),
        pytest.param(metrics(waiting=4), 2, 0, id="uncounted waiting jobs are no work"),
    ],
)
def test_instance_buffer_keeps_its_reference_meaning(
    queue: QueueMetrics, buffer: int, target: int
) -> None:
    assert run(queue, group(0), instance_buffer=buffer).target_capacity == target


# --- busy floor and clamps ------------------------------------------------------------------------


def test_target_never_below_instances_that_may_hold_busy_agents() -> None:
    # 4 busy agents spread over 4 instances while the queue shows 4 running jobs at 4 agents per
    # instance: demand alone says 1 instance, the busy floor says 4.
    decision = run(metrics(running=4, busy=4), group(4), agents_per_instance=4)
    assert decision.target_capacity == 4
    assert decision.desired_capacity is None
    assert any("busy agents may be on 4" in reason for reason in decision.reasons)


def test_busy_floor_is_limited_to_instances_in_service() -> None:
    decision = run(metrics(running=1, busy=9), group(2), agents_per_instance=4)
    assert decision.target_capacity == 2


@pytest.mark.parametrize(
    ("queue", "asg", "target", "reason"),
    [
        pytest.param(
            metrics(scheduled=14),
            group(4, max_size=10),
            10,
            "MaxSize 10 reached: 14 instances needed, clamped to 10",
            id="max",
        ),
        pytest.param(
            metrics(),
            group(2, min_size=2),
            2,
            "MinSize 2 keeps at least 2 instance(s)",
            id="min",
        ),
    ],
)
def test_target_is_clamped_to_the_group_bounds_and_says_so(
    queue: QueueMetrics, asg: GroupObservation, target: int, reason: str
) -> None:
    decision = run(queue, asg)
    assert decision.target_capacity == target
    assert reason in decision.reasons


def test_group_bounds_win_over_configured_bounds_and_the_difference_is_reported() -> None:
    # A scheduled action raised the group's MinSize to 3; the configured MinSize is 0.
    observation = Observation(metrics(), group(3, min_size=3))
    decision = decide(observation, ScalerConfig(min_size=0, max_size=10), ScalerState(), NOW)
    assert decision.target_capacity == 3
    assert any("differ from the configured 0/10" in reason for reason in decision.reasons)


# --- scale out ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "asg", "config", "desired"),
    [
        pytest.param(metrics(scheduled=6), group(0), {}, 6, id="from zero"),
        pytest.param(metrics(scheduled=6), group(2), {}, 6, id="adds the missing ones"),
        pytest.param(
            metrics(scheduled=6), group(2), {"scale_out_factor": 0.5}, 4, id="half a step"
        ),
        pytest.param(
            metrics(scheduled=6), group(2), {"scale_out_factor": 0.1}, 3, id="step rounded up"
        ),
        pytest.param(metrics(scheduled=6), group(2), {"scale_out_factor": 0}, 6, id="factor 0"),
        pytest.param(
            metrics(scheduled=6), group(2), {"scale_out_factor": 2.0}, 10, id="factor > 1"
        ),
        pytest.param(
            metrics(scheduled=6),
            group(2, max_size=7),
            {"scale_out_factor": 3.0},
            7,
            id="factor > 1 clamped to MaxSize",
        ),
        pytest.param(metrics(scheduled=6), group(6, pending=6), {}, None, id="booting count"),
        pytest.param(metrics(scheduled=3), group(5), {}, None, id="more than enough"),
    ],
)
def test_scale_out_counts_capacity_on_the_way(
    queue: QueueMetrics,
    asg: GroupObservation,
    config: dict[str, object],
    desired: int | None,
) -> None:
    assert run(queue, asg, **config).desired_capacity == desired


def test_scale_out_records_its_time_and_explains_the_step() -> None:
    decision = run(metrics(scheduled=6), group(2), scale_out_factor=0.5)
    assert times(decision.state) == (NOW, None)
    assert "ScaleOutFactor 0.5: adding 2 for 4 missing instance(s)" in decision.reasons
    assert "scale out: desired capacity 2 -> 4" in decision.reasons


@pytest.mark.parametrize(
    ("cooldown", "last_ago", "desired"),
    [
        pytest.param(0, 1, 5, id="no cooldown by default"),
        pytest.param(300, 100, None, id="within the cooldown"),
        pytest.param(300, 300, 5, id="cooldown over"),
        pytest.param(300, None, 5, id="never scaled out"),
    ],
)
def test_scale_out_cooldown(cooldown: float, last_ago: float | None, desired: int | None) -> None:
    state = ScalerState(last_scale_out_at=None if last_ago is None else NOW - last_ago)
    decision = run(metrics(scheduled=5), group(1), state, scale_out_cooldown_period=cooldown)
    assert decision.desired_capacity == desired
    if desired is None:
        assert times(decision.state) == times(state)
        assert any("scale-out cooldown" in reason for reason in decision.reasons)


def test_desired_capacity_is_never_lowered() -> None:
    for disable_scale_in in (True, False):
        decision = run(metrics(), group(6), disable_scale_in=disable_scale_in)
        assert decision.desired_capacity is None


# --- scale in (drains) ----------------------------------------------------------------------------

SCALE_IN = {"disable_scale_in": False, "scale_in_cooldown_period": 0}


def test_scale_in_disabled_leaves_idle_instances_to_their_idle_timeout() -> None:
    decision = run(metrics(idle=4), group(4), disable_scale_in=True, scale_in_idle_period=600)
    assert decision.drain_instance_ids == ()
    assert "scale-in disabled: idle instances leave on their own after 600 s" in decision.reasons


def test_drains_surplus_idle_instances_oldest_first() -> None:
    decision = run(metrics(idle=4), group(4, min_size=1), **SCALE_IN)
    assert decision.drain_instance_ids == ("i-000", "i-001", "i-002")
    assert decision.desired_capacity is None
    assert times(decision.state) == (None, NOW)
    assert any("desired capacity 4 -> 1" in reason for reason in decision.reasons)


def test_drain_order_uses_launch_time_and_puts_unknown_ages_last() -> None:
    instances = (
        Instance("i-young", "InService", launched_at=NOW - 10),
        Instance("i-unknown", "InService", launched_at=None),
        Instance("i-old", "InService", launched_at=NOW - 5000),
    )
    asg = GroupObservation("fleet", 3, 0, 10, instances)
    decision = run(metrics(idle=3), asg, **SCALE_IN)
    assert decision.drain_instance_ids == ("i-old", "i-young", "i-unknown")


@pytest.mark.parametrize(
    "queue",
    [
        pytest.param(metrics(running=1, idle=3), id="a running job"),
        pytest.param(metrics(busy=1, idle=3), id="a busy agent"),
        pytest.param(metrics(scheduled=1, idle=3), id="a scheduled job about to start"),
    ],
)
def test_no_drain_without_proof_that_no_agent_is_busy(queue: QueueMetrics) -> None:
    decision = run(queue, group(4), **SCALE_IN)
    assert decision.drain_instance_ids == ()
    assert any("cannot prove which instances are idle" in reason for reason in decision.reasons)


def test_drains_keep_the_target_and_only_touch_in_service_instances() -> None:
    # 3 in service + 2 pending, queue needs 1 (waiting counted): keep 1 in service, drain 2;
    # the pending ones are not in service yet and are never drained.
    queue = metrics(waiting=1, idle=3)
    decision = run(queue, group(5, pending=2), scale_out_for_waiting_jobs=True, **SCALE_IN)
    assert decision.target_capacity == 1
    assert decision.drain_instance_ids == ("i-000", "i-001")


def test_nothing_to_drain_when_the_surplus_is_still_pending() -> None:
    decision = run(metrics(), group(2, pending=2), **SCALE_IN)
    assert decision.drain_instance_ids == ()
    assert times(decision.state) == (None, None)


@pytest.mark.parametrize(
    ("last_ago", "drains"),
    [pytest.param(100, False, id="within"), pytest.param(3600, True, id="over")],
)
def test_scale_in_cooldown(last_ago: float, drains: bool) -> None:
    state = ScalerState(last_scale_in_at=NOW - last_ago)
    decision = run(
        metrics(idle=2), group(2), state, disable_scale_in=False, scale_in_cooldown_period=3600
    )
    assert bool(decision.drain_instance_ids) is drains


# --- idempotence ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "asg", "config"),
    [
        pytest.param(metrics(scheduled=6), group(2), {}, id="scale out"),
        pytest.param(metrics(idle=4), group(4, min_size=1), SCALE_IN, id="drain"),
        pytest.param(metrics(scheduled=30), group(2), {}, id="clamped"),
    ],
)
def test_second_evaluation_with_the_first_applied_changes_nothing(
    queue: QueueMetrics, asg: GroupObservation, config: dict[str, object]
) -> None:
    first = run(queue, asg, **config)
    assert first.changes_capacity
    observation = apply(Observation(queue, asg), first)
    second = run(queue, observation.group, first.state, **config)
    assert not second.changes_capacity


# --- configuration and observation checks ---------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"min_size": 5, "max_size": 3}, "MinSize (5) must not exceed MaxSize (3)", id="min>max"
        ),
        pytest.param({"agents_per_instance": 0}, "AgentsPerInstance must be", id="agents"),
        pytest.param({"instance_buffer": -1}, "InstanceBuffer must be", id="buffer"),
        pytest.param({"scale_out_factor": -0.5}, "ScaleOutFactor must be", id="factor"),
        pytest.param({"scale_out_factor": float("nan")}, "ScaleOutFactor must be", id="nan"),
        pytest.param({"disable_scale_in": "yes"}, "DisableScaleIn must be", id="bool"),
        pytest.param({"poll_interval": 0}, "PollInterval must be", id="poll"),
        pytest.param({"scale_in_cooldown_period": -1}, "ScaleInCooldownPeriod", id="cooldown"),
        pytest.param({"max_size": True}, "MaxSize must be an integer", id="bool is not int"),
    ],
)
def test_config_errors_name_the_parameter_and_value(
    config: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ScalerConfig(**config)  # type: ignore[arg-type]


def test_an_impossible_group_is_refused() -> None:
    with pytest.raises(ObservationError, match="MinSize 3 > MaxSize 1"):
        GroupObservation("fleet", 1, 3, 1)
    with pytest.raises(ObservationError, match="desired capacity -1"):
        GroupObservation("fleet", -1, 0, 1)


def test_instances_that_never_register_are_reported_not_counted_as_booting_not_replaced() -> None:
    instances = (
        Instance("i-old1", "InService", launched_at=NOW - 3600),
        Instance("i-old2", "InService", launched_at=NOW - 1800),
        Instance("i-new", "InService", launched_at=NOW - 60),
        Instance("i-agent", "InService", launched_at=NOW - 7200),
    )
    fleet = GroupObservation("fleet", 4, 0, 10, instances)
    # One agent registered (on some instance), 6 jobs waiting for an agent.
    decision = run(metrics(scheduled=6, idle=1), fleet)

    # At most 3 instances lack an agent; of those past the 900 s timeout, oldest first.
    assert decision.unregistered_instance_ids == ("i-agent", "i-old1", "i-old2")
    assert decision.reasons[1] == (
        "3 in-service instances launched over 900 s ago without a registered agent "
        "(i-agent, i-old1, i-old2): not counted as booting, not replaced"
    )
    # Scale-out follows demand only: 6 instances, not 6 + 3 replacements.
    assert decision.desired_capacity == 6
    assert "booting" not in decision.reasons[0]


def test_instances_within_the_registration_timeout_are_booting() -> None:
    instances = tuple(Instance(f"i-{n}", "InService", launched_at=NOW - 600) for n in range(3))
    decision = run(metrics(scheduled=3), GroupObservation("fleet", 3, 0, 10, instances))
    assert decision.unregistered_instance_ids == ()
    assert decision.reasons[0].endswith("3 booting already counted")
    shorter = run(
        metrics(scheduled=3),
        GroupObservation("fleet", 3, 0, 10, instances),
        instance_registration_timeout=300,
    )
    assert len(shorter.unregistered_instance_ids) == 3


def test_no_instance_is_reported_while_every_one_has_its_agents() -> None:
    fleet = group(3)  # launched minutes ago; pretend long ago:
    old = GroupObservation(
        "fleet",
        3,
        0,
        10,
        tuple(
            Instance(i.instance_id, "InService", launched_at=NOW - 9999) for i in fleet.instances
        ),
    )
    decision = run(metrics(busy=3, running=3), old)
    assert decision.unregistered_instance_ids == ()
