"""The two scaler models the simulator compares, each observing and acting on the ``Fleet``.

- ``ReferenceScaler``: ``tools.simulate.reference_policy.evaluate`` with the reference stack's
  settings; it acts with SetDesiredCapacity (also downwards when scale-in is enabled, in
  which case the group picks the victims).
- ``ProjectScaler``: the project's real ``agent_scaler.policy.decide`` (imported, never
  copied), fed the same values the Lambda reads (queue metrics, the group with its
  instances' lifecycle states, launch times and protection, the persisted state), acting as
  the Lambda does: SetDesiredCapacity only upwards, drains by TerminateInstanceInAutoScalingGroup
  with decrement through the lifecycle hook (the job finishes, then the instance leaves or,
  with ReuseOnScaleIn, returns to the warm pool). The group's warm pool is observed as
  DescribeWarmPool reports it (``GroupObservation.warm_pool``), and a decided
  MaxGroupPreparedCapacity is applied with PutWarmPool only when it changes. ``ScalerState``
  (including the demand history) is carried between evaluations. A push evaluation never
  drains, never touches the warm pool and never writes the demand history: it runs with
  DisableScaleIn, ScaleInDemandWindow 0 and no pool sizing, and its state keeps the
  scheduled evaluations' demand peaks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from tools.simulate.config import SimConfig
from tools.simulate.fleet import IN_SERVICE, PENDING, Fleet
from tools.simulate.reference_policy import (
    ReferenceGroup,
    ReferenceMetrics,
    ReferenceParams,
    ReferenceState,
)
from tools.simulate.reference_policy import evaluate as reference_evaluate

GROUP_NAME = "simulated-agents"


@dataclass(slots=True)
class ScalerStats:
    """What the scaler did over a run."""

    evaluations: int = 0
    scale_out_actions: int = 0
    scale_in_actions: int = 0
    failed_drains: int = 0
    drained_instances: int = 0
    warm_pool_updates: int = 0


class ScalerModel(Protocol):
    """One scaler: ``evaluate`` observes the fleet now, decides and acts."""

    stats: ScalerStats

    def evaluate(self, now: float, *, scale_in: bool = True) -> None: ...


class ReferenceScaler:
    """The reference scaler (buildkite-agent-scaler v1.12) on the simulated group."""

    def __init__(self, fleet: Fleet, config: SimConfig) -> None:
        self.fleet = fleet
        self.params = ReferenceParams(
            agents_per_instance=config.agents_per_instance,
            include_waiting=config.scale_out_for_waiting_jobs,
            instance_buffer=config.instance_buffer,
            scale_out_factor=config.scale_out_factor,
            scale_in_factor=config.scale_in_factor,
            scale_out_cooldown_s=config.scale_out_cooldown_s,
            scale_in_cooldown_s=config.scale_in_cooldown_s,
            disable_scale_in=config.disable_scale_in,
            availability_threshold=config.availability_threshold,
        )
        self.state = ReferenceState()
        self.stats = ScalerStats()

    def evaluate(self, now: float, *, scale_in: bool = True) -> None:
        fleet = self.fleet
        snapshot = fleet.snapshot()
        states = [instance.lifecycle_state for instance in fleet.instances.values()]
        group = ReferenceGroup(
            desired=fleet.desired_capacity,
            min_size=fleet.min_size,
            max_size=fleet.max_size,
            in_service=states.count(IN_SERVICE),
            pending=states.count(PENDING),
        )
        metrics = ReferenceMetrics(
            scheduled=snapshot.scheduled_jobs,
            running=snapshot.running_jobs,
            waiting=snapshot.waiting_jobs,
            total_agents=snapshot.total_agents,
        )
        params = self.params if scale_in else replace(self.params, disable_scale_in=True)
        decision = reference_evaluate(metrics, group, params, self.state, now)
        self.stats.evaluations += 1
        self.state = decision.state
        new = decision.desired_capacity
        if new is None or new == fleet.desired_capacity:
            return
        if new > fleet.desired_capacity:
            self.stats.scale_out_actions += 1
        else:
            self.stats.scale_in_actions += 1
        fleet.set_desired_capacity(new)


class ProjectScaler:
    """The project's ``decide()`` on the simulated group, acting as the Lambda does."""

    def __init__(self, fleet: Fleet, config: SimConfig) -> None:
        # Imported here so the reference model and the case checker work without the project.
        from agent_scaler import policy

        self._policy = policy
        self.fleet = fleet
        self.config = policy.ScalerConfig(
            agents_per_instance=config.agents_per_instance,
            min_size=config.min_size,
            max_size=config.max_size,
            instance_buffer=config.instance_buffer,
            scale_out_factor=config.scale_out_factor,
            scale_out_for_waiting_jobs=config.scale_out_for_waiting_jobs,
            scale_in_idle_period=config.scale_in_idle_period_s,
            disable_scale_in=config.disable_scale_in,
            scale_out_cooldown_period=config.scale_out_cooldown_s,
            scale_in_cooldown_period=config.scale_in_cooldown_s,
            poll_interval=config.poll_interval_s,
            **self._issue16_settings(policy, config),
        )
        self._api_poll_interval_s = config.poll_interval_s
        push_changes: dict[str, object] = {"disable_scale_in": True}
        push_changes.update(
            {
                name: value
                for name, value in (("scale_in_demand_window", 0), ("size_warm_pool", False))
                if name in getattr(policy.ScalerConfig, "__dataclass_fields__", {})
            }
        )
        self._push_config = replace(self.config, **push_changes)
        self.state = policy.ScalerState()
        self.stats = ScalerStats()

    @staticmethod
    def _issue16_settings(policy: object, config: SimConfig) -> dict[str, object]:
        """Demand window and pool sizing, for a policy that has them (the group has the hook)."""
        fields = getattr(policy.ScalerConfig, "__dataclass_fields__", {})
        wanted = {
            "scale_in_demand_window": config.scale_in_demand_window_s,
            "drains_wait_for_jobs": True,
            "size_warm_pool": config.enable_warm_pool
            and config.warm_pool_max_prepared_capacity < 0,
        }
        return {name: value for name, value in wanted.items() if name in fields}

    def _warm_pool(self) -> object | None:
        """The pool as DescribeWarmPool reports it (None without a pool)."""
        fleet = self.fleet
        if not fleet.warm_pool_enabled:
            return None
        policy = self._policy
        config = fleet.config
        return policy.WarmPool(
            min_size=config.warm_pool_min_size,
            max_group_prepared_capacity=fleet.warm_pool_max_prepared_capacity,
            pool_state=config.warm_pool_state,
            reuse_on_scale_in=config.warm_pool_reuse_on_scale_in,
            instances=tuple(
                policy.Instance(
                    instance_id=instance.instance_id,
                    lifecycle_state=instance.lifecycle_state,
                    launched_at=None,
                    protected_from_scale_in=instance.protected_from_scale_in,
                )
                for instance in fleet.warm_instances.values()
            ),
        )

    def observe(self, now: float, *, with_launch_times: bool) -> object:
        """The ``Observation`` the Lambda would build now."""
        from buildkite_api import QueueMetrics

        policy = self._policy
        fleet = self.fleet
        snapshot = fleet.snapshot()
        metrics = QueueMetrics(
            scheduled_jobs=snapshot.scheduled_jobs,
            running_jobs=snapshot.running_jobs,
            waiting_jobs=snapshot.waiting_jobs,
            idle_agents=snapshot.idle_agents,
            busy_agents=snapshot.busy_agents,
            total_agents=snapshot.total_agents,
            organization_slug="simulated",
            cluster_name=None,
            poll_interval_s=self._api_poll_interval_s,
            fetched_at=now,
        )
        instances = tuple(
            policy.Instance(
                instance_id=instance.instance_id,
                lifecycle_state=instance.lifecycle_state,
                launched_at=instance.launched_at if with_launch_times else None,
                # The project's instances report themselves idle through their protection.
                protected_from_scale_in=not instance.reports_idle(now),
            )
            for instance in fleet.instances.values()
        )
        group = policy.GroupObservation(
            name=GROUP_NAME,
            desired_capacity=fleet.desired_capacity,
            min_size=fleet.min_size,
            max_size=fleet.max_size,
            instances=instances,
            warm_pool=self._warm_pool(),
        )
        return policy.Observation(metrics=metrics, group=group)

    def evaluate(self, now: float, *, scale_in: bool = True) -> None:
        policy = self._policy
        config = self.config if scale_in else self._push_config
        # The Lambda reads launch times when it may drain (rules 5b and 7).
        drains = not config.disable_scale_in or getattr(config, "scale_in_demand_window", 0) > 0
        observation = self.observe(now, with_launch_times=drains)
        decision = policy.decide(observation, config, self.state, now)
        self.stats.evaluations += 1
        fleet = self.fleet
        state = decision.state
        if decision.desired_capacity is not None:
            if decision.desired_capacity > fleet.desired_capacity:
                fleet.set_desired_capacity(decision.desired_capacity)
                self.stats.scale_out_actions += 1
            else:  # already raised that far: the Lambda leaves it and remembers nothing
                state = replace(state, last_scale_out_at=self.state.last_scale_out_at)
        drained = failed = 0
        for instance_id in decision.drain_instance_ids:
            if fleet.drain(instance_id):
                drained += 1
                self.stats.drained_instances += 1
            else:
                failed += 1
        if drained:
            self.stats.scale_in_actions += 1
        self.stats.failed_drains += failed
        if failed and not drained:  # nothing drained: the scale-in time is not recorded
            state = replace(state, last_scale_in_at=self.state.last_scale_in_at)
        prepared = getattr(decision, "warm_pool_max_prepared_capacity", None)
        if (
            scale_in
            and prepared is not None
            and fleet.warm_pool_enabled
            and prepared != fleet.warm_pool_max_prepared_capacity
        ):
            fleet.set_warm_pool_max_prepared_capacity(min(prepared, fleet.max_size))
            self.stats.warm_pool_updates += 1
        if not scale_in and hasattr(state, "demand_peaks"):
            state = replace(state, demand_peaks=self.state.demand_peaks)
        self.state = state
