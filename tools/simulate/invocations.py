"""When the scaler evaluates, and what its Lambda invocations cost.

- Reference (EventBridge every ``schedule_period_s``): one invocation evaluates at
  +0, +PollInterval, ... while still inside ``invocation_loop_s`` (10 s and 50 s: +0 ... +40 s)
  and is billed for the whole loop (it sleeps in between), at 128 MB.
- Project, scheduled, poll trigger: the same schedule; the evaluation times inside one
  invocation come from the project's real ``agent_scaler.poll_loop.run_poll_loop``, run on a
  virtual clock with each evaluation taking ``evaluation_duration_s``, the API's poll-duration
  header at ``API_POLL_DURATION_S``, the function's timeout and the handler's evaluation budget.
  Billed for the loop's elapsed time.
- Project, scheduled, push trigger: the scheduled function is only the safety net
  (``POLL_WITHIN_INVOCATION`` "false"): it evaluates once per invocation, no loop, billed
  ``evaluation_duration_s``.
- Project, push: each job submission is a "Job Scheduled" event; the first event after a
  quiet spell opens a batch that collects events for ``push_batch_window_s``, and the batch
  is evaluated once (scale-out only) ``push_event_delay_s`` after that first event. Billed
  ``evaluation_duration_s`` per push invocation.

Cold starts are not modelled. Evaluations are instantaneous in the simulated world: each one
observes and acts at its start time.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.simulate.config import SimConfig
from tools.simulate.engine import SCALER, EventEngine
from tools.simulate.lambda_cost import gb_seconds
from tools.simulate.scalers import ScalerModel

API_POLL_DURATION_S = 10.0  # Buildkite-Agent-Metrics-Poll-Duration, normally 10


class InvocationError(ValueError):
    """A policy/trigger combination that does not exist."""


@dataclass(slots=True)
class InvocationStats:
    """Lambda invocations and their billed GB-seconds."""

    scheduled_invocations: int = 0
    push_invocations: int = 0
    gb_seconds: float = 0.0

    @property
    def requests(self) -> int:
        """Billed Lambda requests: one per invocation."""
        return self.scheduled_invocations + self.push_invocations


@dataclass(frozen=True, slots=True)
class LoopPlan:
    """One scheduled invocation: evaluation offsets from its start, and its billed duration."""

    offsets_s: tuple[float, ...]
    duration_s: float


def reference_loop_plan(config: SimConfig) -> LoopPlan:
    """Evaluate every PollInterval while inside the loop; billed for the whole loop."""
    offsets = []
    offset = 0.0
    interval = max(config.poll_interval_s, API_POLL_DURATION_S)
    while offset < config.invocation_loop_s:
        offsets.append(offset)
        offset += interval
    return LoopPlan(tuple(offsets), config.invocation_loop_s)


def project_loop_plan(config: SimConfig) -> LoopPlan:
    """The project's real poll loop, run on a virtual clock."""
    from agent_scaler.handler import AWS_CALLS_BUDGET_S
    from agent_scaler.poll_loop import run_poll_loop
    from agent_scaler.queue_metrics import QueueMetricsReader

    budget_s = (
        QueueMetricsReader("https://agent.invalid/v3", "/simulated", None).max_call_duration_s
        + AWS_CALLS_BUDGET_S
    )
    clock = [0.0]
    offsets: list[float] = []

    def evaluate() -> float:
        offsets.append(clock[0])
        clock[0] += config.evaluation_duration_s
        return API_POLL_DURATION_S

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    result = run_poll_loop(
        evaluate,
        poll_interval_s=config.poll_interval_s,
        remaining_s=lambda: config.lambda_timeout_s - clock[0],
        evaluation_budget_s=budget_s,
        clock=lambda: clock[0],
        sleep=sleep,
    )
    return LoopPlan(tuple(offsets), result.elapsed_s)


def single_evaluation_plan(config: SimConfig) -> LoopPlan:
    """The scheduled function with the push trigger on: one evaluation, no loop."""
    return LoopPlan((0.0,), config.evaluation_duration_s)


class Invocations:
    """Schedules the scaler's evaluations on the engine and accounts their cost."""

    def __init__(
        self,
        engine: EventEngine,
        config: SimConfig,
        scaler: ScalerModel,
        *,
        policy: str,
        trigger: str,
    ) -> None:
        if policy == "reference" and trigger != "poll":
            raise InvocationError("the reference scaler has no push trigger; use --trigger poll")
        self.engine = engine
        self.config = config
        self.scaler = scaler
        self.trigger = trigger
        if policy == "reference":
            self.plan = reference_loop_plan(config)
        elif trigger == "push":
            self.plan = single_evaluation_plan(config)
        else:
            self.plan = project_loop_plan(config)
        self.stats = InvocationStats()
        self._batch_open_until = -1.0

    def start(self) -> None:
        """The first scheduled invocation fires at the current time."""
        self.engine.after(0.0, self._scheduled_invocation, SCALER)

    def job_scheduled(self) -> None:
        """A job was just submitted (a "Job Scheduled" event for the push trigger)."""
        if self.trigger != "push":
            return
        now = self.engine.now
        if now < self._batch_open_until:
            return  # joins the open batch
        self._batch_open_until = now + self.config.push_batch_window_s
        self.engine.after(self.config.push_event_delay_s, self._push_invocation, SCALER)

    def _scheduled_invocation(self) -> None:
        config = self.config
        self.stats.scheduled_invocations += 1
        self.stats.gb_seconds += gb_seconds(config.lambda_memory_mb, self.plan.duration_s)
        for offset in self.plan.offsets_s:
            self.engine.after(offset, self._scheduled_evaluation, SCALER)
        self.engine.after(config.schedule_period_s, self._scheduled_invocation, SCALER)

    def _scheduled_evaluation(self) -> None:
        self.scaler.evaluate(self.engine.now, scale_in=True)

    def _push_invocation(self) -> None:
        config = self.config
        self.stats.push_invocations += 1
        self.stats.gb_seconds += gb_seconds(
            config.push_lambda_memory_mb, config.evaluation_duration_s
        )
        self.scaler.evaluate(self.engine.now, scale_in=False)
