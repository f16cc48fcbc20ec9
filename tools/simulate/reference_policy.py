"""The reference scaler's evaluation (buildkite-agent-scaler v1.12) as a pure function.

Written from ../shared/reference/reference-scaler.md and checked against the scaler's own
table tests (``--check-reference-cases``). One call is one ``Run()``: metrics and group in,
the desired capacity it would set (or None) and its new cooldown state out.

1. ``required = S + (W if include_waiting and W > R else R)``;
   ``desired = ceil(required / agents_per_instance)`` (0 when nothing is required; an
   ``agents_per_instance`` of 0 means one agent per instance; at most 1000), capped by
   ``max_instance_cap`` when set.
2. Availability boost (threshold > 0, something required, the group converged: InService
   count == desired capacity): when ``total_agents / (agents_per_instance x instances)`` is
   below the threshold, ``desired = max(desired, D + 1)``.
3. Buffer, only when S, R or W is non-zero:
   ``desired += min(instance_buffer, ceil((S + R [+ W]) / agents_per_instance))``.
4. Clamp to [min, max]; above D scales out, below D scales in, else nothing.
5. Scale out: skipped when disabled or within the cooldown of the last scale-out (no check
   when it never scaled out); ``scale_only_after_all_events`` measures the cooldown from
   the later of the two last events. A factor f ≠ 0 sets ``D + ceil((desired - D) x f)``,
   capped at max.
6. Scale in: skipped when disabled (the Scaler-level ``elastic_ci_mode`` ignores that flag
   but waits while instances are Pending) or within the scale-in cooldown; a factor f ≠ 0
   sets ``D + floor((desired - D) x f)``, at least min; never below 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MAX_INSTANCES = 1000  # the reference caps any per-instance count at 1000


@dataclass(frozen=True, slots=True)
class ReferenceParams:
    """The scaler's parameters (environment variables of the reference Lambda)."""

    agents_per_instance: int = 1
    include_waiting: bool = False
    instance_buffer: int = 0
    scale_out_factor: float = 0.0
    scale_in_factor: float = 0.0
    scale_out_cooldown_s: float = 0.0
    scale_in_cooldown_s: float = 0.0
    disable_scale_in: bool = False
    disable_scale_out: bool = False
    scale_only_after_all_events: bool = False
    availability_threshold: float = 0.0
    max_instance_cap: int = 0
    elastic_ci_mode: bool = False


@dataclass(frozen=True, slots=True)
class ReferenceMetrics:
    """The queue metrics the scaler reads."""

    scheduled: int
    running: int
    waiting: int
    total_agents: int


@dataclass(frozen=True, slots=True)
class ReferenceGroup:
    """What DescribeAutoScalingGroups tells the scaler."""

    desired: int
    min_size: int
    max_size: int
    in_service: int
    pending: int = 0


@dataclass(frozen=True, slots=True)
class ReferenceState:
    """Last scale-out / scale-in times (virtual seconds); None = never."""

    last_scale_out_at: float | None = None
    last_scale_in_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReferenceDecision:
    """The outcome of one evaluation."""

    desired_capacity: int | None  # the value SetDesiredCapacity is called with, or None
    target: int  # the clamped desired count it computed
    reason: str
    state: ReferenceState


def evaluate(
    metrics: ReferenceMetrics,
    group: ReferenceGroup,
    params: ReferenceParams,
    state: ReferenceState,
    now: float,
) -> ReferenceDecision:
    """One ``Run()`` of the reference scaler."""
    target = desired_count(metrics, group, params)
    current = group.desired
    if target > current:
        return _scale_out(target, group, params, state, now)
    if target < current:
        return _scale_in(target, group, params, state, now)
    return ReferenceDecision(None, target, "no scaling required", state)


def desired_count(metrics: ReferenceMetrics, group: ReferenceGroup, params: ReferenceParams) -> int:
    """Steps 1-4: the instance count the scaler wants, clamped to the group's bounds."""
    per_instance = params.agents_per_instance
    if params.include_waiting and metrics.waiting > metrics.running:
        required = metrics.scheduled + metrics.waiting
    else:
        required = metrics.scheduled + metrics.running
    desired = _instances_for(required, per_instance) if required > 0 else 0
    if params.max_instance_cap > 0:
        desired = min(desired, params.max_instance_cap)

    instances = group.in_service if group.in_service > 0 else group.desired
    expected_agents = per_instance * instances
    if (
        params.availability_threshold > 0
        and required > 0
        and expected_agents > 0
        and group.in_service == group.desired
        and metrics.total_agents / expected_agents < params.availability_threshold
    ):
        desired = max(desired, group.desired + 1)

    if metrics.scheduled > 0 or metrics.running > 0 or metrics.waiting > 0:
        total_jobs = metrics.scheduled + metrics.running
        if params.include_waiting:
            total_jobs += metrics.waiting
        proportional = _instances_for(total_jobs, per_instance)
        if not 0 <= proportional <= MAX_INSTANCES:
            proportional = MAX_INSTANCES
        desired += min(params.instance_buffer, proportional)

    return max(group.min_size, min(group.max_size, desired))


def _instances_for(agents: int, per_instance: int) -> int:
    if per_instance <= 0:
        return agents  # the reference's 1:1 fallback, uncapped
    count = math.ceil(agents / per_instance)
    return count if 0 <= count <= MAX_INSTANCES else MAX_INSTANCES


def _in_cooldown(
    last_own: float | None, last_other: float | None, cooldown: float, after_all: bool, now: float
) -> bool:
    if last_own is None:
        return False
    last = last_own
    if after_all and last_other is not None and last_own < last_other:
        last = last_other
    return cooldown - (now - last) > 0


def _scale_out(
    target: int,
    group: ReferenceGroup,
    params: ReferenceParams,
    state: ReferenceState,
    now: float,
) -> ReferenceDecision:
    if params.disable_scale_out:
        return ReferenceDecision(None, target, "scale-out disabled", state)
    if _in_cooldown(
        state.last_scale_out_at,
        state.last_scale_in_at,
        params.scale_out_cooldown_s,
        params.scale_only_after_all_events,
        now,
    ):
        return ReferenceDecision(None, target, "scale-out in cooldown", state)
    new = target
    if params.scale_out_factor != 0:
        change = target - group.desired
        new = min(group.desired + math.ceil(change * params.scale_out_factor), group.max_size)
    return ReferenceDecision(
        new, target, f"scale out to {new}", replace(state, last_scale_out_at=now)
    )


def _scale_in(
    target: int,
    group: ReferenceGroup,
    params: ReferenceParams,
    state: ReferenceState,
    now: float,
) -> ReferenceDecision:
    if params.elastic_ci_mode and group.pending > 0:
        return ReferenceDecision(None, target, "instances pending; scale-in waits", state)
    if params.disable_scale_in and not params.elastic_ci_mode:
        return ReferenceDecision(None, target, "scale-in disabled", state)
    if _in_cooldown(
        state.last_scale_in_at,
        state.last_scale_out_at,
        params.scale_in_cooldown_s,
        params.scale_only_after_all_events,
        now,
    ):
        return ReferenceDecision(None, target, "scale-in in cooldown", state)
    new = target
    if params.scale_in_factor != 0:
        change = target - group.desired
        new = max(group.desired + math.floor(change * params.scale_in_factor), group.min_size)
    new = max(new, 0)
    new_state = replace(state, last_scale_in_at=now)
    return ReferenceDecision(new, target, f"scale in to {new}", new_state)
