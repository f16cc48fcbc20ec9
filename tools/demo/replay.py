"""The replay: one virtual clock for the emulator, the fleet and the real scaler's schedule.

Virtual time starts at 0 and moves only forward, in ticks (``tick_s``), stopping exactly at
each job's submission. At every tick the emulator's clock is advanced to it (jobs finish, idle
agents take scheduled jobs), the fleet steps (boots, idle-outs) and the timeline is sampled.

At every whole minute the scaler is invoked as the EventBridge schedule would: the real
``agent_scaler`` code through ``agent_scaler.handler.run_scheduled`` (what ``lambda_handler``
runs), with a Lambda-like context (``tools.invoke_scaler.LocalContext``) and its environment
pointing at moto and the emulator. Its poll loop's clock is the virtual clock and its sleep
advances the world, so the five evaluations of an invocation happen at 0, 10 ... 40 s of the
minute like in Lambda, but take no wall time. ``speed`` paces the replay (virtual seconds per
wall second; 0 = as fast as possible).

The scaler's log lines (JSON, as in CloudWatch) and EMF metrics go to a log file; the decision
of each evaluation is also captured for the live table and the plot.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from agent_scaler import handler as scaler_handler

from tools.buildkite_emulator import EmulatorControl
from tools.demo.fleet import EmulatedFleet
from tools.invoke_scaler import LocalContext, environment
from tools.simulate.traces import TraceJob

SCHEDULE_PERIOD_S = 60.0
# The scaler's PollInterval in the demo (the stack's default).
POLL_INTERVAL_S = 10
# The scaler function's timeout, as tools.invoke_scaler assumes for a scheduled invocation.
SCALER_TIMEOUT_S = 120.0
FUNCTION_NAME = "AgentScalerFunction"


class ScalerInvocationError(RuntimeError):
    """The scaler's invocation failed (it fails loud); the message says when and why."""


@dataclass(frozen=True)
class Decision:
    """One evaluation's outcome, from the scaler's log line."""

    at: float
    action: str
    reasons: tuple[str, ...]
    desired_capacity_before: int | None
    desired_capacity: int | None


@dataclass(frozen=True)
class Sample:
    """The world at one tick."""

    at: float
    scheduled_jobs: int
    running_jobs: int
    idle_agents: int
    busy_agents: int
    desired_capacity: int
    instances: int
    # The emulated warm pool's instances (0 without a pool), and how many of them are prepared.
    warm_pool_instances: int = 0
    warm_pool_prepared: int = 0


@dataclass
class ReplayResult:
    samples: list[Sample] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    invocations: int = 0
    evaluations: int = 0
    ended_at: float = 0.0
    settled: bool = False


class _DecisionCapture(logging.Handler):
    """Keeps the decision of every scaler log line that carries one."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(level=logging.INFO)
        self._clock = clock
        self.decisions: list[Decision] = []

    def emit(self, record: logging.LogRecord) -> None:
        reasons = getattr(record, "reasons", None)
        decision = getattr(record, "decision", None)
        if reasons is None or not isinstance(decision, dict):
            return
        message = record.getMessage()
        self.decisions.append(
            Decision(
                at=self._clock(),
                action=message.rsplit(": ", 1)[-1],
                reasons=tuple(reasons),
                desired_capacity_before=decision.get("desired_capacity_before"),
                desired_capacity=decision.get("desired_capacity"),
            )
        )


class Replay:
    """Drives the emulator, the fleet and the scaler on one virtual clock."""

    def __init__(
        self,
        *,
        jobs: list[TraceJob],
        fleet: EmulatedFleet,
        control: EmulatorControl,
        queue: str,
        scaler_environment: dict[str, str],
        scaler_log: IO[str],
        tick_s: float,
        speed: float,
        on_sample: Callable[[Sample, Decision | None], None],
    ) -> None:
        self._pending_jobs = list(jobs)
        self._job_count = len(jobs)
        self._fleet = fleet
        self._control = control
        self._queue = queue
        self._scaler_environment = scaler_environment
        self._scaler_log = scaler_log
        self._tick_s = tick_s
        self._speed = speed
        self._on_sample = on_sample
        self._wall_start = time.monotonic()
        self.now = 0.0
        self._next_tick = 0.0
        self._epoch_start = time.time()
        self._capture = _DecisionCapture(lambda: self.now)
        self.result = ReplayResult()

    # --- the run --------------------------------------------------------------------------

    def run(self, duration_s: float) -> ReplayResult:
        """Replay until the work is done and the fleet is back to zero, or ``duration_s``."""
        self._wall_start = time.monotonic()
        self._advance_to(0.0)
        next_invocation = 0.0
        self._epoch_start = time.time()
        with self._scaler_output():
            while self.now < duration_s:
                if self.now >= next_invocation:
                    self._invoke_scaler()
                    next_invocation += SCHEDULE_PERIOD_S
                self._advance_to(min(next_invocation, duration_s))
                if self._settled():
                    self.result.settled = True
                    break
        self.result.ended_at = self.now
        self.result.decisions = list(self._capture.decisions)
        return self.result

    def _settled(self) -> bool:
        if self._pending_jobs:
            return False
        counts = self._control.queue_counts(self._queue)
        group = self._fleet.group
        return (
            counts["scheduled_jobs"] == 0
            and counts["running_jobs"] == 0
            and group.desired_capacity == 0
            and not self._fleet.alive
        )

    # --- the clock ------------------------------------------------------------------------

    def _advance_to(self, target: float) -> None:
        while True:
            submission = self._pending_jobs[0].submit_s if self._pending_jobs else None
            moment = self._next_tick
            if submission is not None and submission < moment:
                moment = submission
            if moment > target:
                break
            self._control.advance_to(moment)
            self.now = moment
            self._submit_due()
            if moment == self._next_tick:
                self._tick()
                self._next_tick += self._tick_s
        if target > self.now:
            self._control.advance_to(target)
            self.now = target

    def _submit_due(self) -> None:
        due = []
        while self._pending_jobs and self._pending_jobs[0].submit_s <= self.now:
            due.append(self._pending_jobs.pop(0))
        if due:
            self._control.enqueue_jobs(self._queue, durations_s=[job.duration_s for job in due])

    def _tick(self) -> None:
        self._fleet.step(self.now)
        counts = self._control.queue_counts(self._queue)
        pool = self._fleet.warm_pool
        sample = Sample(
            at=self.now,
            scheduled_jobs=counts["scheduled_jobs"],
            running_jobs=counts["running_jobs"],
            idle_agents=counts["idle_agents"],
            busy_agents=counts["busy_agents"],
            desired_capacity=self._fleet.group.desired_capacity,
            instances=len(self._fleet.alive),
            warm_pool_instances=len(pool.instances) if pool is not None else 0,
            warm_pool_prepared=pool.prepared_count if pool is not None else 0,
        )
        self.result.samples.append(sample)
        decisions = self._capture.decisions
        self._on_sample(sample, decisions[-1] if decisions else None)
        self._pace()

    def _pace(self) -> None:
        if self._speed <= 0:
            return
        behind = self.now / self._speed - (time.monotonic() - self._wall_start)
        if behind > 0:
            time.sleep(behind)

    # --- the scaler -----------------------------------------------------------------------

    def _invoke_scaler(self) -> None:
        started = self.now
        context = LocalContext(
            function_name=FUNCTION_NAME, deadline_s=SCALER_TIMEOUT_S, clock=lambda: self.now
        )
        event = scheduled_event(started)
        try:
            with environment(self._scaler_environment):
                # The scaler's own clock (cooldowns, the demand window) runs virtual time too.
                outcome = scaler_handler.run_scheduled(
                    event,
                    context,
                    clock=lambda: self.now,
                    sleep=self._sleep_after_evaluation,
                    wall_clock=self.epoch_now,
                )
            self._fleet.step(self.now)
        except Exception as exc:
            raise ScalerInvocationError(
                f"the scaler invocation at {format_clock(started)} failed "
                f"({type(exc).__name__}): {exc}"
            ) from exc
        self.result.invocations += 1
        self.result.evaluations += int(outcome.get("evaluations", 0))

    def _sleep_after_evaluation(self, seconds: float) -> None:
        # Instances launched by the evaluation are seen at once, not at the next tick.
        self._fleet.step(self.now)
        self._advance_to(self.now + seconds)

    def epoch_now(self) -> float:
        """The virtual clock as epoch seconds (the replay's start is its wall-clock start)."""
        return self._epoch_start + self.now

    @contextlib.contextmanager
    def _scaler_output(self) -> Iterator[None]:
        """Send the scaler's log lines and EMF documents to the log file; capture decisions."""
        logger = scaler_handler.logger
        stream_handler = logger.registered_handler
        previous_stream = None
        if isinstance(stream_handler, logging.StreamHandler):
            previous_stream = stream_handler.setStream(self._scaler_log)
        logger.addHandler(self._capture)
        try:
            with contextlib.redirect_stdout(self._scaler_log):
                yield
        finally:
            logger.removeHandler(self._capture)
            if previous_stream is not None and isinstance(stream_handler, logging.StreamHandler):
                stream_handler.setStream(previous_stream)


def scaler_environment(
    *,
    aws_environment: dict[str, str],
    agent_endpoint: str,
    queue: str,
    token_parameter: str,
    group_name: str,
    agents_per_instance: int,
    min_size: int,
    max_size: int,
    scale_in_idle_period: int,
    warm_pool_max_prepared_capacity: int | None = None,
) -> dict[str, str]:
    """The scaler function's environment as the root stack sets it, pointed at emulators.

    ``warm_pool_max_prepared_capacity``: None without a warm pool; else WarmPoolMaxPreparedCapacity
    (-1: the scaler sizes the pool). ScaleInDemandWindow is the compressed ScaleInIdlePeriod, as
    the stack's defaults make them equal.
    """
    return {
        **aws_environment,
        "BUILDKITE_QUEUE": queue,
        "BUILDKITE_AGENT_ENDPOINT": agent_endpoint,
        "BUILDKITE_AGENT_TOKEN_PARAMETER": token_parameter,
        "AUTO_SCALING_GROUP_NAME": group_name,
        "AGENTS_PER_INSTANCE": str(agents_per_instance),
        "MIN_SIZE": str(min_size),
        "MAX_SIZE": str(max_size),
        "INSTANCE_BUFFER": "0",
        "SCALE_OUT_FACTOR": "1.0",
        "SCALE_OUT_FOR_WAITING_JOBS": "false",
        "SCALE_IN_IDLE_PERIOD": str(scale_in_idle_period),
        "DISABLE_SCALE_IN": "true",
        "SCALE_OUT_COOLDOWN_PERIOD": "0",
        "SCALE_IN_COOLDOWN_PERIOD": "3600",
        "POLL_INTERVAL": str(POLL_INTERVAL_S),
        "SCALE_IN_DEMAND_WINDOW": str(scale_in_idle_period),
        "WARM_POOL_ENABLED": str(warm_pool_max_prepared_capacity is not None).lower(),
        "WARM_POOL_MAX_PREPARED_CAPACITY": str(
            -1 if warm_pool_max_prepared_capacity is None else warm_pool_max_prepared_capacity
        ),
        # The demo has no push trigger: the scheduled function polls within its invocation.
        "POLL_WITHIN_INVOCATION": "true",
        "POWERTOOLS_SERVICE_NAME": "agent-scaler",
        "POWERTOOLS_METRICS_NAMESPACE": "Buildkite",
    }


def scheduled_event(at: float) -> dict[str, Any]:
    """An EventBridge scheduled event like the one the scaler's Schedule sends."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": {"demo_virtual_time_s": at},
    }


def format_clock(seconds: float) -> str:
    """Virtual time as ``mm:ss``."""
    whole = round(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"
