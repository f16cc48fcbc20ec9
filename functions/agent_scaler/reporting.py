"""What one evaluation reports: the fields of its log line and its EMF metrics.

Metrics go to CloudWatch as Embedded Metric Format on stdout (Powertools Metrics; no
PutMetricData on the hot path), namespace ``Buildkite`` (``POWERTOOLS_METRICS_NAMESPACE``),
dimensions ``Org`` and ``Queue`` only (the reference stack's, so existing dashboards and alarms
keep working): ScheduledJobsCount, RunningJobsCount, WaitingJobsCount, IdleAgentsCount,
BusyAgentsCount, DesiredCapacity (after the decision), ScalingDecision (the signed change of
desired capacity: + instances added, - instances drained, 0 none), ScalerEvaluations (1: the
heartbeat the "scaler stalled" alarm watches), ScheduledJobsAtMaxSize (the scheduled jobs when
desired capacity is at the group's MaxSize after the decision, else 0: the "capacity capped"
alarm) and InstancesNotRegistered (in-service instances past the registration timeout without a
registered agent; 0 when none, so an alarm on it always has data) and WarmPoolInstances (the
instances in the group's warm pool, ``Warmed:*``; only when the evaluation read the pool).
Flushed once per evaluation.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

from agent_scaler.policy import Decision, Observation, ScalerState
from agent_scaler.state_tags import format_time

DEFAULT_NAMESPACE = "Buildkite"


def observation_summary(observation: Observation, state: ScalerState) -> dict[str, Any]:
    """The observation as log fields (counts, not instance lists)."""
    metrics = observation.metrics
    group = observation.group
    return {
        "organization": metrics.organization_slug,
        "cluster": metrics.cluster_name,
        "jobs": {
            "scheduled": metrics.scheduled_jobs,
            "running": metrics.running_jobs,
            "waiting": metrics.waiting_jobs,
        },
        "agents": {
            "idle": metrics.idle_agents,
            "busy": metrics.busy_agents,
            "total": metrics.total_agents,
        },
        "api_poll_interval_s": metrics.poll_interval_s,
        "group": {
            "name": group.name,
            "desired_capacity": group.desired_capacity,
            "min_size": group.min_size,
            "max_size": group.max_size,
            "instances": dict(Counter(i.lifecycle_state for i in group.instances)),
            "unprotected_instances": sum(
                1 for i in group.instances if not i.protected_from_scale_in
            ),
            "warm_pool": _warm_pool_summary(observation),
        },
        "state": {
            "last_scale_out_at": _time(state.last_scale_out_at),
            "last_scale_in_at": _time(state.last_scale_in_at),
            "demand_peaks": len(state.demand_peaks),
        },
    }


def _warm_pool_summary(observation: Observation) -> dict[str, Any] | None:
    """The warm pool as read (None: no pool, or not read by this evaluation)."""
    pool = observation.group.warm_pool
    if pool is None:
        return None
    return {
        "min_size": pool.min_size,
        "max_group_prepared_capacity": pool.max_group_prepared_capacity,
        "pool_state": pool.pool_state,
        "reuse_on_scale_in": pool.reuse_on_scale_in,
        "instances": dict(Counter(i.lifecycle_state for i in pool.instances)),
    }


def decision_summary(
    decision: Decision, observation: Observation, previous: ScalerState
) -> dict[str, Any]:
    """The decision as log fields.

    ``drain_rule`` says which rule drains: "provably idle" (rule 5: DisableScaleIn false, no
    jobs and no busy agents; it records the scale-in time for ScaleInCooldownPeriod) or "idle
    tail" (rule 7: above the most demand wanted over ScaleInDemandWindow; the terminating
    lifecycle hook lets a running job finish first). When the decision resizes the warm pool,
    ``warm_pool_max_prepared_capacity`` is the new MaxGroupPreparedCapacity and ``..._before``
    the value read (None = unset).
    """
    current = observation.group.desired_capacity
    summary: dict[str, Any] = {
        "target_capacity": decision.target_capacity,
        "desired_capacity_before": current,
        "desired_capacity": decision.desired_capacity,
        "drain_instance_ids": list(decision.drain_instance_ids),
        "capacity_change": decision.capacity_change(current),
        "unregistered_instance_ids": list(decision.unregistered_instance_ids),
    }
    if decision.drain_instance_ids:
        provably_idle = decision.state.last_scale_in_at != previous.last_scale_in_at
        summary["drain_rule"] = "provably idle" if provably_idle else "idle tail"
    if decision.warm_pool_max_prepared_capacity is not None:
        pool = observation.group.warm_pool
        summary["warm_pool_max_prepared_capacity"] = decision.warm_pool_max_prepared_capacity
        summary["warm_pool_max_prepared_capacity_before"] = (
            None if pool is None else pool.max_group_prepared_capacity
        )
    return summary


def emit_metrics(observation: Observation, decision: Decision, queue: str) -> None:
    """Print this evaluation's EMF document. Raises on a metrics problem: callers log it."""
    current = observation.group.desired_capacity
    metrics = observation.metrics
    # A provider of its own per evaluation: no state shared with other Metrics users, and no
    # automatic "service" dimension (service=""), so the dimensions are exactly Org and Queue.
    emf = Metrics(
        provider=AmazonCloudWatchEMFProvider(
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
            service="",
            metric_set={},
            dimension_set={},
            metadata_set={},
            default_dimensions={},
        )
    )
    emf.add_dimension(name="Org", value=metrics.organization_slug)
    emf.add_dimension(name="Queue", value=queue)
    new_desired = current + decision.capacity_change(current)
    for name, value in (
        ("ScheduledJobsCount", metrics.scheduled_jobs),
        ("RunningJobsCount", metrics.running_jobs),
        ("WaitingJobsCount", metrics.waiting_jobs),
        ("IdleAgentsCount", metrics.idle_agents),
        ("BusyAgentsCount", metrics.busy_agents),
        ("DesiredCapacity", new_desired),
        ("ScalingDecision", decision.capacity_change(current)),
        ("ScalerEvaluations", 1),
        (
            "ScheduledJobsAtMaxSize",
            _jobs_at_max_size(metrics.scheduled_jobs, new_desired, observation),
        ),
        ("InstancesNotRegistered", len(decision.unregistered_instance_ids)),
    ):
        emf.add_metric(name=name, unit=MetricUnit.Count, value=value)
    pool = observation.group.warm_pool
    if pool is not None:
        emf.add_metric(name="WarmPoolInstances", unit=MetricUnit.Count, value=len(pool.instances))
    emf.flush_metrics(raise_on_empty_metrics=True)


def _jobs_at_max_size(scheduled_jobs: int, new_desired: int, observation: Observation) -> int:
    """Jobs waiting for an agent while the group cannot grow (desired at MaxSize), else 0."""
    return scheduled_jobs if new_desired >= observation.group.max_size else 0


def _time(epoch_s: float | None) -> str | None:
    return None if epoch_s is None else format_time(epoch_s)
