"""The two scaler models the simulator compares, each observing and acting on the ``Fleet``.

- ``ReferenceScaler``: ``tools.simulate.reference_policy.evaluate`` with the reference stack's
  settings; it acts with SetDesiredCapacity (also downwards when scale-in is enabled, in
  which case the group picks the victims).
- ``ProjectScaler``: the project's real ``agent_scaler.policy.decide`` (imported, never
  copied), fed the same values the Lambda reads (queue metrics, the group with its
  instances' lifecycle states, launch times and protection, the persisted state), acting as
  the Lambda does: SetDesiredCapacity only upwards, drains by TerminateInstanceInAutoScalingGroup
  with decrement through the lifecycle hook; a push evaluation never drains.
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
        )
        self._api_poll_interval_s = config.poll_interval_s
        self.state = policy.ScalerState()
        self.stats = ScalerStats()

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
                protected_from_scale_in=instance.protected_from_scale_in,
            )
            for instance in fleet.instances.values()
        )
        group = policy.GroupObservation(
            name=GROUP_NAME,
            desired_capacity=fleet.desired_capacity,
            min_size=fleet.min_size,
            max_size=fleet.max_size,
            instances=instances,
        )
        return policy.Observation(metrics=metrics, group=group)

    def evaluate(self, now: float, *, scale_in: bool = True) -> None:
        policy = self._policy
        config = self.config if scale_in else replace(self.config, disable_scale_in=True)
        observation = self.observe(now, with_launch_times=not config.disable_scale_in)
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
            else:
                failed += 1
        if drained:
            self.stats.scale_in_actions += 1
        self.stats.failed_drains += failed
        if failed and not drained:  # nothing drained: the scale-in time is not recorded
            state = replace(state, last_scale_in_at=self.state.last_scale_in_at)
        self.state = state
