"""One evaluation: observe the queue and the group, decide, act, report.

The order keeps the failure policy: every input is read and checked before anything is
changed, so a missing or invalid input (API error, malformed body, group not found) changes
nothing and raises. An action that fails part-way (some drains refused) still records what was
done (the scale-in time, so the cooldown holds) and reports it, then raises. A refused
PutWarmPool (the pool's new size) is such a failure too: the other actions and the state tags
still happen first. Metrics are emitted last and a problem with them is only logged.

The push evaluation (``scale_in=False``) only scales out: it never drains, never reads or
resizes the warm pool and never records demand (the demand history in the state tags is kept as
read; only the scheduled evaluations, which see the whole minute, write it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from aws_lambda_powertools import Logger
from buildkite_api import AuthenticationError

from agent_scaler import group as asg
from agent_scaler.config import Settings
from agent_scaler.policy import ConfigError, Decision, Observation, ScalerState, decide
from agent_scaler.queue_metrics import QueueMetricsReader, TokenError
from agent_scaler.reporting import decision_summary, emit_metrics, observation_summary
from agent_scaler.state_tags import state_from_tags, tag_updates

SCALE_OUT_ONLY_REASON = "push trigger: this evaluation only scales out, never drains"

# Failures the next evaluation of the same invocation would only repeat: the settings, the
# group's existence, the token. Others (API 5xx, throttling, a refused drain) may pass.
PERMANENT_FAILURES: tuple[type[Exception], ...] = (
    ConfigError,
    asg.GroupNotFoundError,
    TokenError,
    AuthenticationError,
)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation saw and did."""

    observation: Observation
    previous_state: ScalerState
    decision: Decision
    scaled_out_from: int | None
    api_poll_interval_s: float | None


@dataclass
class Scaler:
    """Evaluates one queue against one group (the handler builds one per invocation)."""

    settings: Settings
    metrics_reader: QueueMetricsReader
    autoscaling: Any
    ec2: Any
    logger: Logger
    wall_clock: Callable[[], float] = time.time

    def evaluate(self, *, scale_in: bool = True) -> Evaluation:
        """Run one evaluation. ``scale_in=False`` (push trigger) only ever scales out."""
        settings = self.settings
        config = settings.scaler
        if not scale_in:
            # Neither drain rule applies (the demand window's idle tail is off too), and the
            # pool is left alone; ``_scale_out_only`` makes sure of it.
            config = replace(
                config, disable_scale_in=True, scale_in_demand_window=0, size_warm_pool=False
            )
        group_name = settings.auto_scaling_group_name

        metrics = self.metrics_reader.read(settings.queue)
        read = asg.read_group(
            self.autoscaling,
            self.ec2,
            group_name,
            # Launch times choose the drains and find instances that never register; the push
            # evaluation does neither.
            with_launch_times=scale_in,
            with_warm_pool=scale_in and settings.warm_pool_enabled,
        )
        now = self.wall_clock()
        state_read = state_from_tags(read.tags, now)
        for problem in state_read.problems:
            self.logger.error(problem)
        observation = Observation(metrics=metrics, group=read.group)
        decision = decide(observation, config, state_read.state, now)
        if not scale_in:
            decision = _scale_out_only(decision, state_read.state)

        decision, scaled_out_from, problems = self._act(decision, read, state_read.state)
        self._report(observation, state_read.state, decision, scaled_out_from)
        if problems:
            raise asg.ScalingActionError("; ".join(problems))
        return Evaluation(
            observation=observation,
            previous_state=state_read.state,
            decision=decision,
            scaled_out_from=scaled_out_from,
            api_poll_interval_s=metrics.poll_interval_s,
        )

    def _act(
        self, decision: Decision, read: asg.GroupRead, previous: ScalerState
    ) -> tuple[Decision, int | None, list[str]]:
        """Carry the decision out; returns it as done, the capacity scaled out from, problems."""
        group_name = self.settings.auto_scaling_group_name
        scaled_out_from = None
        problems: list[str] = []
        if decision.desired_capacity is not None:
            wanted = decision.desired_capacity
            outcome = asg.scale_out(self.autoscaling, group_name, wanted, clock=self.wall_clock)
            problems.extend(outcome.problems)
            if outcome.writes:
                scaled_out_from = outcome.before
                if outcome.after > wanted:
                    decision = replace(
                        decision,
                        reasons=(
                            *decision.reasons,
                            f"a concurrent evaluation wanted more: desired capacity is "
                            f"{outcome.after}",
                        ),
                    )
            else:
                # Another evaluation raised it already: nothing done, nothing to remember.
                decision = replace(
                    decision,
                    desired_capacity=None,
                    state=replace(decision.state, last_scale_out_at=previous.last_scale_out_at),
                    reasons=(
                        *decision.reasons,
                        f"desired capacity was already raised to {wanted} "
                        "or more by another evaluation: left alone",
                    ),
                )
        if decision.drain_instance_ids:
            decision, failure = self._drain(decision, previous)
            if failure:
                problems.append(failure)
        asg.write_tags(self.autoscaling, tag_updates(group_name, read.tags, decision.state))
        decision, failure = self._resize_warm_pool(decision, read)
        if failure:
            problems.append(failure)
        return decision, scaled_out_from, problems

    def _resize_warm_pool(
        self, decision: Decision, read: asg.GroupRead
    ) -> tuple[Decision, str | None]:
        """PutWarmPool when the decision sizes the pool (the policy does so only on a change).

        Returns the decision as done (no pool change when the call failed) and what failed.
        """
        wanted = decision.warm_pool_max_prepared_capacity
        pool = read.group.warm_pool
        if wanted is None or pool is None:
            return decision, None
        group_name = self.settings.auto_scaling_group_name
        try:
            asg.put_warm_pool(self.autoscaling, group_name, wanted, pool)
        except asg.ScalingActionError as exc:
            failure = str(exc)
            return (
                replace(
                    decision,
                    warm_pool_max_prepared_capacity=None,
                    reasons=(*decision.reasons, failure),
                ),
                failure,
            )
        return decision, None

    def _drain(self, decision: Decision, previous: ScalerState) -> tuple[Decision, str | None]:
        """Drain the chosen instances; the decision as done, and what failed (None: nothing).

        The scale-in time is kept when at least one instance drained, so the cooldown holds.
        """
        chosen = decision.drain_instance_ids
        result = asg.drain(self.autoscaling, chosen)
        if not result.failures:
            return decision, None
        failure = f"draining {len(result.failures)} of {len(chosen)} instance(s) failed: " + (
            "; ".join(result.failures)
        )
        state = decision.state
        if not result.drained:
            state = replace(state, last_scale_in_at=previous.last_scale_in_at)
        done = replace(
            decision,
            drain_instance_ids=result.drained,
            state=state,
            reasons=(*decision.reasons, failure),
        )
        return done, failure

    def _report(
        self,
        observation: Observation,
        previous: ScalerState,
        decision: Decision,
        scaled_out_from: int | None,
    ) -> None:
        actions = []
        if decision.desired_capacity is not None:
            actions.append(f"scale out {scaled_out_from} -> {decision.desired_capacity}")
        if decision.drain_instance_ids:
            actions.append(f"drain {len(decision.drain_instance_ids)} instance(s)")
        if decision.warm_pool_max_prepared_capacity is not None:
            pool = observation.group.warm_pool
            before = None if pool is None else pool.max_group_prepared_capacity
            actions.append(
                f"warm pool MaxGroupPreparedCapacity {_unset(before)} -> "
                f"{decision.warm_pool_max_prepared_capacity}"
            )
        action = ", ".join(actions) or "no change"
        self.logger.info(
            f"Scaling evaluation for queue {self.settings.queue!r}: {action}",
            extra={
                "queue": self.settings.queue,
                "observation": observation_summary(observation, previous),
                "decision": decision_summary(decision, observation, previous),
                "reasons": list(decision.reasons),
            },
        )
        if decision.unregistered_instance_ids:
            ids = decision.unregistered_instance_ids
            self.logger.warning(
                f"{len(ids)} in-service instance(s) of group {observation.group.name!r} have no "
                f"registered agent {self.settings.scaler.instance_registration_timeout:g} s after "
                "launch: check their boot logs (cloud-init output, or the EC2 console output)",
                extra={"unregistered_instance_ids": list(ids), "queue": self.settings.queue},
            )
        try:
            emit_metrics(observation, decision, self.settings.queue)
        except Exception:
            self.logger.exception("Publishing the scaler's metrics failed; scaling is unaffected")


def _unset(value: int | None) -> str:
    return "unset" if value is None else str(value)


def _scale_out_only(decision: Decision, previous: ScalerState) -> Decision:
    """The push evaluation's part of a decision: its scale-out, nothing else.

    No drain, no warm pool change, and the demand history and scale-in time stay as read.
    """
    return replace(
        decision,
        drain_instance_ids=(),
        warm_pool_max_prepared_capacity=None,
        state=replace(
            decision.state,
            demand_peaks=previous.demand_peaks,
            last_scale_in_at=previous.last_scale_in_at,
        ),
        reasons=(*decision.reasons, SCALE_OUT_ONLY_REASON),
    )
