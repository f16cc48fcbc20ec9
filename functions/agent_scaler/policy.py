"""The scaling policy: a pure function from what the scaler observed to what it should do.

``decide(observation, config, state, now)`` reads plain values and returns a ``Decision`` with
human-readable reasons. No I/O, no logging, no clock: the Lambda, the simulator, the demo and
the tests all call this same function.

Rules (parameter names are the reference stack's):

1. Demand. Jobs that need an agent = scheduled + running (+ waiting only when
   ``ScaleOutForWaitingJobs``). Instances needed = ceil(jobs / ``AgentsPerInstance``).
   ``InstanceBuffer`` adds min(InstanceBuffer, needed) instances, only while there is work.
2. Busy floor. Busy agents may sit on up to min(busy agents, in-service instances) instances;
   the target never goes below that.
3. Target = clamp(max(needed + buffer, busy floor), group MinSize, group MaxSize). The group's
   live bounds are used (scheduled actions change MinSize); the configured ones are checked.
4. Scale out. The group's desired capacity already counts instances that are launching or
   booting (their agents have not registered yet), so the scaler scales out only when the
   target exceeds the current desired capacity D, to D + ceil((target - D) * ScaleOutFactor)
   (factor 0 = no factor), at most MaxSize. Evaluating the same observation again with that
   decision applied changes nothing, so no scale-out cooldown is needed to prevent
   over-provisioning: ``ScaleOutCooldownPeriod`` defaults to 0 and exists for users who want to
   pace scale-out anyway. (With 0 < ScaleOutFactor < 1 each evaluation deliberately takes one
   more partial step until the target is reached.)
5. Never lower desired capacity: AWS would choose which instance dies. Capacity goes down only
   (a) when an idle agent exits after ``ScaleInIdlePeriod`` and its instance terminates itself,
   decrementing desired capacity (not the scaler's doing), or (b) when ``DisableScaleIn`` is
   false and ``ScaleInCooldownPeriod`` has passed, by draining surplus in-service instances the
   policy can prove idle: the queue reports no scheduled and no running jobs and no busy agents,
   so no agent anywhere can be busy or about to take a job. Drains never take the group below
   the target, keep the youngest in-service instances, and go oldest first. A drain is
   TerminateInstanceInAutoScalingGroup with ShouldDecrementDesiredCapacity, which passes the
   group's terminating lifecycle hook, so even a job that starts in the race window finishes.
6. Instances that never register. An in-service instance launched more than
   ``instance_registration_timeout`` seconds ago, while the queue has fewer agents than the
   in-service instances should run, is reported (oldest first, at most as many as agents are
   missing) in ``unregistered_instance_ids``. It is no longer counted as booting, and it is not
   replaced: a boot that fails once (bad settings, a broken AMI) fails on every new instance, so
   launching more would only multiply the cost. The report (log and the InstancesNotRegistered
   metric) is what an operator, or an alarm, acts on.
7. Idle tail. ``ScaleInIdlePeriod`` is how long the user finds idle capacity worth keeping, but
   an agent's own idle timer rarely fires on a large fleet: jobs go to whichever idle agent polls
   first, so every agent takes one now and then. So the fleet as a whole keeps what demand wanted
   (the target of rules 1-3) at its peak over the last ``ScaleInDemandWindow`` seconds and lets
   the rest go: in-service instances above that peak are drained, oldest first. Only instances
   that report themselves idle are candidates: an instance's lifecycle handler keeps it
   protected from scale-in while an agent on it runs a job (or finished one moments ago), so an
   unprotected instance has no job and a drain never has to outwait one (a job running past
   InstanceTerminationGracePeriod would be cancelled). At most as many as the in-service
   instances no busy agent can be on. Only when ``drains_wait_for_jobs`` (the group's
   terminating lifecycle hook lets a job that starts in the race window finish before the
   instance goes); without the hook only rule 5 drains. Independent of ``DisableScaleIn``,
   which governs rule 5. A window of 0 turns the rule off; until the demand
   history covers a whole window (a new scaler, a lost tag) nothing is drained by this rule.
8. Warm pool. With ``size_warm_pool`` the pool's MaxGroupPreparedCapacity follows demand: the
   peak over ``WARM_POOL_WINDOW_FACTOR`` windows, never below desired capacity nor above MaxSize.
   A prepared instance waiting stopped pays for its EBS volumes only (about a quarter of a
   running default instance: t3.large $0.0832/h compute + 250 GB gp3 $0.0274/h in us-east-1), so
   for the same money it can wait about four times as long in the pool as idle in service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from buildkite_api import QueueMetrics

from agent_scaler import demand

IN_SERVICE = "InService"
PENDING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed"})
WARMED_PREFIX = "Warmed:"
WARM_POOL_WINDOW_FACTOR = 4
MAX_DEMAND_WINDOW = 3600


class ConfigError(ValueError):
    """A scaler setting is missing or invalid; the message names it and its value."""


class ObservationError(ValueError):
    """What the scaler observed is not a possible state of the world (never acted on)."""


# --- value types ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of the group: its lifecycle state, launch time (epoch s) and protection."""

    instance_id: str
    lifecycle_state: str
    launched_at: float | None = None
    protected_from_scale_in: bool = True


@dataclass(frozen=True, slots=True)
class WarmPool:
    """The group's warm pool as DescribeWarmPool reported it.

    ``max_group_prepared_capacity`` None means unset (AWS then sizes the pool from the group's
    MaxSize). ``instances`` are the pool's own (lifecycle states ``Warmed:*``); they are not
    part of the group's instances or of its desired capacity.
    """

    min_size: int = 0
    max_group_prepared_capacity: int | None = None
    pool_state: str = "Stopped"
    reuse_on_scale_in: bool = False
    instances: tuple[Instance, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupObservation:
    """The Auto Scaling group as DescribeAutoScalingGroups (and DescribeWarmPool) reported it."""

    name: str
    desired_capacity: int
    min_size: int
    max_size: int
    instances: tuple[Instance, ...] = ()
    warm_pool: WarmPool | None = None

    def __post_init__(self) -> None:
        for label, value in (
            ("desired capacity", self.desired_capacity),
            ("MinSize", self.min_size),
            ("MaxSize", self.max_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ObservationError(
                    f"group {self.name!r} reports {label} {value!r}, expected an integer >= 0"
                )
        if self.min_size > self.max_size:
            raise ObservationError(
                f"group {self.name!r} reports MinSize {self.min_size} > MaxSize {self.max_size}"
            )

    @property
    def in_service(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.lifecycle_state == IN_SERVICE)

    @property
    def pending(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.lifecycle_state in PENDING_STATES)


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one evaluation looked at: the queue and the group."""

    metrics: QueueMetrics
    group: GroupObservation


@dataclass(frozen=True, slots=True)
class ScalerConfig:
    """The user-facing scaling parameters (reference stack names, snake_case), validated.

    ``scale_out_cooldown_period`` defaults to 0: booting instances are counted as capacity on
    the way, so repeated evaluations cannot over-provision and no cooldown is needed.
    ``scale_in_idle_period`` is enforced by the agents themselves (their idle timeout); the
    policy only cites it. ``poll_interval`` is how often the handler re-evaluates.

    ``scale_in_demand_window`` (ScaleInDemandWindow, s; 0 = off): the fleet keeps the most
    instances demand wanted over this window and drains the rest (rule 7).
    ``drains_wait_for_jobs``: the group has the terminating lifecycle hook, so a drained
    instance's running job finishes first; without it only provably idle instances are drained.
    ``size_warm_pool``: the scaler sets the warm pool's MaxGroupPreparedCapacity from demand
    (WarmPoolMaxPreparedCapacity -1 with EnableWarmPool).
    """

    agents_per_instance: int = 1
    min_size: int = 0
    max_size: int = 10
    instance_buffer: int = 0
    scale_out_factor: float = 1.0
    scale_out_for_waiting_jobs: bool = False
    scale_in_idle_period: float = 600
    disable_scale_in: bool = True
    scale_out_cooldown_period: float = 0
    scale_in_cooldown_period: float = 3600
    poll_interval: float = 10
    instance_registration_timeout: float = 900
    scale_in_demand_window: float = 600
    drains_wait_for_jobs: bool = True
    size_warm_pool: bool = False

    def __post_init__(self) -> None:
        _check_int("AgentsPerInstance", self.agents_per_instance, minimum=1)
        _check_int("MinSize", self.min_size, minimum=0)
        _check_int("MaxSize", self.max_size, minimum=0)
        if self.min_size > self.max_size:
            raise ConfigError(
                f"MinSize ({self.min_size}) must not exceed MaxSize ({self.max_size})"
            )
        _check_int("InstanceBuffer", self.instance_buffer, minimum=0)
        _check_number("ScaleOutFactor", self.scale_out_factor, minimum=0)
        _check_bool("ScaleOutForWaitingJobs", self.scale_out_for_waiting_jobs)
        _check_number("ScaleInIdlePeriod", self.scale_in_idle_period, minimum=0)
        _check_bool("DisableScaleIn", self.disable_scale_in)
        _check_number("ScaleOutCooldownPeriod", self.scale_out_cooldown_period, minimum=0)
        _check_number("ScaleInCooldownPeriod", self.scale_in_cooldown_period, minimum=0)
        _check_number("PollInterval", self.poll_interval, minimum=1)
        _check_number("InstanceRegistrationTimeout", self.instance_registration_timeout, minimum=1)
        _check_number("ScaleInDemandWindow", self.scale_in_demand_window, minimum=0)
        if self.scale_in_demand_window > MAX_DEMAND_WINDOW:
            raise ConfigError(
                f"ScaleInDemandWindow must be at most {MAX_DEMAND_WINDOW} s "
                f"(got {self.scale_in_demand_window!r}): its history is kept in one group tag"
            )
        _check_bool("drains_wait_for_jobs", self.drains_wait_for_jobs)
        _check_bool("size_warm_pool", self.size_warm_pool)

    @property
    def demand_horizon(self) -> float:
        """Seconds of demand history the policy needs (rules 7 and 8)."""
        factor = WARM_POOL_WINDOW_FACTOR if self.size_warm_pool else 1
        return self.scale_in_demand_window * factor


@dataclass(frozen=True, slots=True)
class ScalerState:
    """What the scaler remembers between evaluations (epoch seconds; None = never).

    ``demand_peaks``: (bucket start, most instances wanted in that bucket), oldest first, for
    the last ``scale_in_demand_window`` seconds.
    """

    last_scale_out_at: float | None = None
    last_scale_in_at: float | None = None
    demand_peaks: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do: a new desired capacity (None = no change), instances to drain, and why.

    ``unregistered_instance_ids``: in-service instances whose agents never registered (rule 6).
    ``warm_pool_max_prepared_capacity``: the warm pool's new MaxGroupPreparedCapacity (None =
    leave it).
    """

    desired_capacity: int | None
    target_capacity: int
    drain_instance_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    state: ScalerState = field(default_factory=ScalerState)
    unregistered_instance_ids: tuple[str, ...] = ()
    warm_pool_max_prepared_capacity: int | None = None

    @property
    def changes_capacity(self) -> bool:
        return self.desired_capacity is not None or bool(self.drain_instance_ids)

    def capacity_change(self, current_desired: int) -> int:
        """Signed change of desired capacity: + instances added, - instances drained."""
        if self.desired_capacity is not None:
            return self.desired_capacity - current_desired
        return -len(self.drain_instance_ids)


# --- the decision ------------------------------------------------------------------------------


def decide(
    observation: Observation, config: ScalerConfig, state: ScalerState, now: float
) -> Decision:
    """The scaling decision for one observation (see the module docstring for the rules)."""
    metrics = observation.metrics
    group = observation.group
    current = group.desired_capacity
    reasons: list[str] = []

    needed, demand_reason = _instances_needed(metrics, config)
    unregistered = _not_registered(group, metrics, config, now)
    booting = max(
        0, _booting(current, metrics.total_agents, config.agents_per_instance) - len(unregistered)
    )
    reasons.append(demand_reason + (f"; {booting} booting already counted" if booting else ""))
    if unregistered:
        reasons.append(
            f"{_count(len(unregistered), 'in-service instance')} launched over "
            f"{_seconds(config.instance_registration_timeout)} ago without a registered agent "
            f"({', '.join(unregistered)}): not counted as booting, not replaced"
        )
    decision = _decide(observation, config, state, now, needed, reasons)
    return replace(decision, unregistered_instance_ids=unregistered)


def _decide(
    observation: Observation,
    config: ScalerConfig,
    state: ScalerState,
    now: float,
    needed: int,
    reasons: list[str],
) -> Decision:
    """Rules 1-5, once demand (``needed`` instances) is known."""
    metrics = observation.metrics
    group = observation.group
    current = group.desired_capacity

    buffer = min(config.instance_buffer, needed)
    if buffer:
        reasons.append(f"InstanceBuffer adds {_count(buffer, 'instance')}")

    in_service = group.in_service
    busy_floor = min(metrics.busy_agents, len(in_service))
    wanted = needed + buffer
    if busy_floor > wanted:
        reasons.append(
            f"{_count(metrics.busy_agents, 'busy agent')} may be on {busy_floor} in-service "
            f"instance(s): keeping at least {busy_floor}"
        )
        wanted = busy_floor

    target = wanted
    if (group.min_size, group.max_size) != (config.min_size, config.max_size):
        reasons.append(
            f"the group's MinSize/MaxSize {group.min_size}/{group.max_size} differ from the "
            f"configured {config.min_size}/{config.max_size}: using the group's"
        )
    if target > group.max_size:
        reasons.append(
            f"MaxSize {group.max_size} reached: {_count(target, 'instance')} needed, "
            f"clamped to {group.max_size}"
        )
        target = group.max_size
    elif target < group.min_size:
        reasons.append(f"MinSize {group.min_size} keeps at least {group.min_size} instance(s)")
        target = group.min_size

    horizon = config.demand_horizon
    if horizon > 0:
        state = replace(state, demand_peaks=demand.record(state.demand_peaks, now, target, horizon))
    if target > current:
        decision = _scale_out(current, target, group.max_size, config, state, now, reasons)
    elif target == current:
        reasons.append(f"desired capacity {current} matches the target: no change")
        decision = Decision(None, target, (), tuple(reasons), state)
    else:
        decision = _scale_in(observation, target, config, state, now, reasons)
        if not decision.drain_instance_ids:
            decision = _drain_idle_tail(observation, decision, config, now)
    return _size_warm_pool(group, decision, config, now)


def apply(observation: Observation, decision: Decision) -> Observation:
    """The observation as it would look right after ``decision`` was carried out.

    Scaling out raises desired capacity (new instances appear later); each drain removes its
    instance and lowers desired capacity by one. Used by tests, the simulator and the demo.
    """
    group = observation.group
    desired = group.desired_capacity
    if decision.desired_capacity is not None:
        desired = decision.desired_capacity
    drained = set(decision.drain_instance_ids)
    instances = tuple(i for i in group.instances if i.instance_id not in drained)
    pool = group.warm_pool
    if pool is not None and decision.warm_pool_max_prepared_capacity is not None:
        pool = replace(pool, max_group_prepared_capacity=decision.warm_pool_max_prepared_capacity)
    return replace(
        observation,
        group=replace(
            group, desired_capacity=desired - len(drained), instances=instances, warm_pool=pool
        ),
    )


def _instances_needed(metrics: QueueMetrics, config: ScalerConfig) -> tuple[int, str]:
    parts = [f"{metrics.scheduled_jobs} scheduled", f"{metrics.running_jobs} running"]
    jobs = metrics.scheduled_jobs + metrics.running_jobs
    ignored = ""
    if config.scale_out_for_waiting_jobs:
        parts.append(f"{metrics.waiting_jobs} waiting")
        jobs += metrics.waiting_jobs
    elif metrics.waiting_jobs:
        ignored = f" ({metrics.waiting_jobs} waiting not counted: ScaleOutForWaitingJobs is false)"
    needed = math.ceil(jobs / config.agents_per_instance)
    per_instance = (
        f" at {config.agents_per_instance} agents per instance"
        if config.agents_per_instance > 1
        else ""
    )
    reason = (
        f"{' + '.join(parts)} need {_count(jobs, 'agent')} = "
        f"{_count(needed, 'instance')}{per_instance}{ignored}"
    )
    return needed, reason


def _not_registered(
    group: GroupObservation, metrics: QueueMetrics, config: ScalerConfig, now: float
) -> tuple[str, ...]:
    """In-service instances past the registration timeout while agents are missing (rule 6)."""
    in_service = group.in_service
    with_agents = math.ceil(metrics.total_agents / config.agents_per_instance)
    missing = len(in_service) - with_agents
    if missing <= 0:
        return ()
    overdue = sorted(
        (
            instance
            for instance in in_service
            if instance.launched_at is not None
            and now - instance.launched_at > config.instance_registration_timeout
        ),
        key=_age_order,
    )
    return tuple(instance.instance_id for instance in overdue[:missing])


def _booting(desired: int, total_agents: int, agents_per_instance: int) -> int:
    """Instances of the desired capacity whose agents have not registered yet (estimate)."""
    with_agents = math.ceil(total_agents / agents_per_instance)
    return max(0, desired - with_agents)


def _scale_out(
    current: int,
    target: int,
    max_size: int,
    config: ScalerConfig,
    state: ScalerState,
    now: float,
    reasons: list[str],
) -> Decision:
    cooldown = config.scale_out_cooldown_period
    last = state.last_scale_out_at
    if cooldown > 0 and last is not None and now - last < cooldown:
        reasons.append(
            f"scale-out cooldown: last scale-out {_seconds(now - last)} ago, "
            f"ScaleOutCooldownPeriod {_seconds(cooldown)}: desired capacity stays {current}"
        )
        return Decision(None, target, (), tuple(reasons), state)
    missing = target - current
    step = missing
    if config.scale_out_factor > 0:
        step = math.ceil(missing * config.scale_out_factor)
        if step != missing:
            reasons.append(
                f"ScaleOutFactor {config.scale_out_factor:g}: adding {step} for "
                f"{missing} missing instance(s)"
            )
    new_desired = min(current + step, max_size)
    reasons.append(f"scale out: desired capacity {current} -> {new_desired}")
    return Decision(
        new_desired,
        target,
        (),
        tuple(reasons),
        replace(state, last_scale_out_at=now),
    )


def _scale_in(
    observation: Observation,
    target: int,
    config: ScalerConfig,
    state: ScalerState,
    now: float,
    reasons: list[str],
) -> Decision:
    metrics = observation.metrics
    group = observation.group
    current = group.desired_capacity
    surplus = current - target
    leave_alone = f"idle instances leave on their own after {_seconds(config.scale_in_idle_period)}"
    no_change = Decision(None, target, (), (), state)

    if config.disable_scale_in:
        reasons.append(f"scale-in disabled: {leave_alone}")
        return replace(no_change, reasons=tuple(reasons))
    unproven = [
        _count(count, label)
        for count, label in (
            (metrics.scheduled_jobs, "scheduled job"),
            (metrics.running_jobs, "running job"),
            (metrics.busy_agents, "busy agent"),
        )
        if count
    ]
    if unproven:
        reasons.append(
            f"{surplus} instance(s) above the target, but {', '.join(unproven)} on the queue: "
            f"cannot prove which instances are idle; {leave_alone}"
        )
        return replace(no_change, reasons=tuple(reasons))
    cooldown = config.scale_in_cooldown_period
    last = state.last_scale_in_at
    if cooldown > 0 and last is not None and now - last < cooldown:
        reasons.append(
            f"scale-in cooldown: last drain {_seconds(now - last)} ago, "
            f"ScaleInCooldownPeriod {_seconds(cooldown)}; {leave_alone}"
        )
        return replace(no_change, reasons=tuple(reasons))

    # Keep the youngest in-service instances up to the target; drain the rest, oldest first.
    in_service = sorted(group.in_service, key=_age_order)
    kept = min(target, len(in_service))
    drain_count = min(surplus, len(in_service) - kept)
    drained = tuple(i.instance_id for i in in_service[:drain_count])
    if not drained:
        reasons.append(
            f"{surplus} instance(s) above the target are not in service yet: nothing to drain"
        )
        return replace(no_change, reasons=tuple(reasons))
    reasons.append(
        f"drain {_count(len(drained), 'idle instance')} (oldest first: {', '.join(drained)}): "
        f"no scheduled or running jobs and no busy agents; desired capacity {current} -> "
        f"{current - len(drained)}"
    )
    return Decision(None, target, drained, tuple(reasons), replace(state, last_scale_in_at=now))


def _drain_idle_tail(
    observation: Observation, decision: Decision, config: ScalerConfig, now: float
) -> Decision:
    """Rule 7: drain in-service instances above the peak demand of the last window."""
    window = config.scale_in_demand_window
    if window <= 0 or not config.drains_wait_for_jobs:
        return decision
    group = observation.group
    current = group.desired_capacity
    peaks = decision.state.demand_peaks
    reasons = list(decision.reasons)
    if not demand.covers(peaks, now, window):
        # A new scaler, or its history tag was lost: until a whole window has been seen, keep
        # everything (the direction that cannot make a job wait).
        reasons.append(
            f"demand history does not cover the last {_seconds(window)} (ScaleInDemandWindow) "
            f"yet: keeping desired capacity {current}"
        )
        return replace(decision, reasons=tuple(reasons))
    kept = max(decision.target_capacity, demand.peak(peaks, now, window, config.demand_horizon))
    if kept >= current:
        reasons.append(
            f"demand peaked at {_count(kept, 'instance')} in the last {_seconds(window)} "
            f"(ScaleInDemandWindow): keeping desired capacity {current}"
        )
        return replace(decision, reasons=tuple(reasons))
    in_service = group.in_service
    not_busy = len(in_service) - min(observation.metrics.busy_agents, len(in_service))
    idle = sorted((i for i in in_service if not i.protected_from_scale_in), key=_age_order)
    drained = tuple(i.instance_id for i in idle[: min(current - kept, not_busy)])
    if not drained:
        reasons.append(
            f"demand peaked at {_count(kept, 'instance')} in the last {_seconds(window)}, "
            f"{current - kept} fewer than desired, but no in-service instance reports itself "
            "idle (unprotected from scale-in) while free of busy agents: nothing to drain yet"
        )
        return replace(decision, reasons=tuple(reasons))
    reasons.append(
        f"demand peaked at {_count(kept, 'instance')} in the last {_seconds(window)} "
        f"(ScaleInDemandWindow): drain {_count(len(drained), 'idle surplus instance')} "
        f"(reporting idle, oldest first: {', '.join(drained)}) through the terminating "
        f"lifecycle hook; desired capacity {current} -> {current - len(drained)}"
    )
    return replace(decision, drain_instance_ids=drained, reasons=tuple(reasons))


def _size_warm_pool(
    group: GroupObservation, decision: Decision, config: ScalerConfig, now: float
) -> Decision:
    """Rule 8: the warm pool's MaxGroupPreparedCapacity follows the demand of recent windows."""
    pool = group.warm_pool
    if not config.size_warm_pool or pool is None:
        return decision
    desired = group.desired_capacity - len(decision.drain_instance_ids)
    if decision.desired_capacity is not None:
        desired = decision.desired_capacity
    horizon = config.demand_horizon
    recent = demand.peak(decision.state.demand_peaks, now, horizon, horizon)
    prepared = min(max(recent, desired, decision.target_capacity), group.max_size)
    if prepared == pool.max_group_prepared_capacity:
        return decision
    reason = (
        f"warm pool: demand peaked at {_count(recent, 'instance')} in the last "
        f"{_seconds(horizon)}: MaxGroupPreparedCapacity "
        f"{_unset(pool.max_group_prepared_capacity)} -> {prepared} "
        f"({_count(max(prepared - desired, 0), 'instance')} prepared beyond desired capacity "
        f"{desired}, at least the pool's MinSize {pool.min_size})"
    )
    return replace(
        decision,
        warm_pool_max_prepared_capacity=prepared,
        reasons=(*decision.reasons, reason),
    )


def _unset(value: int | None) -> str:
    return "unset" if value is None else str(value)


def _age_order(instance: Instance) -> tuple[bool, float, str]:
    # Oldest first; an instance with no known launch time counts as the youngest.
    unknown = instance.launched_at is None
    return (unknown, instance.launched_at or 0.0, instance.instance_id)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum} (got {value!r})")


def _check_number(name: str, value: object, *, minimum: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ConfigError(f"{name} must be a finite number >= {minimum:g} (got {value!r})")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false (got {value!r})")
