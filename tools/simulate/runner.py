"""One simulation run: a trace, a policy and a trigger in; a result (and a timeline) out.

The run starts at t = 0 with the group at MinSize and the scheduled invocations starting
at once. It ends when every job has finished and every instance has gone, or ``tail_s``
after the last job finished if instances stay (MinSize, a buffer, a warm pool), or at a hard
horizon (jobs left unfinished then count their wait until the end). Instances are billed until
they are gone or the run ends.

Cost in dollars (``cost_usd``, prices from ``tools.simulate.prices``): compute for the
seconds instances run, EBS for the seconds their root volumes exist (running or stopped in the
warm pool), Lambda for the modelled GB-seconds at the function's architecture (the reference
x86_64, the project arm64) plus one request per invocation.

Job wait is the time a job spends in the queue, summed over its attempts when an
interruption sent it back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.simulate.config import POLICIES, TRIGGERS, SimConfig, build_config
from tools.simulate.engine import ARRIVAL, SAMPLE, EventEngine
from tools.simulate.fleet import Fleet, Job
from tools.simulate.invocations import InvocationError, Invocations, InvocationStats
from tools.simulate.prices import (
    PROJECT_LAMBDA_ARCHITECTURE,
    REFERENCE_LAMBDA_ARCHITECTURE,
    CostUsd,
)
from tools.simulate.scalers import ProjectScaler, ReferenceScaler, ScalerModel, ScalerStats
from tools.simulate.stats import WaitSummary, summarize_waits
from tools.simulate.traces import TraceJob

PROGRESS_EVERY_EVENTS = 20_000
HARD_HORIZON_MARGIN_S = 86_400.0


@dataclass(slots=True)
class Timeline:
    """The fleet sampled every ``sample_interval_s`` (for the plot)."""

    times_s: list[float] = field(default_factory=list)
    scheduled_jobs: list[int] = field(default_factory=list)
    busy_agents: list[int] = field(default_factory=list)
    idle_agents: list[int] = field(default_factory=list)
    desired_capacity: list[int] = field(default_factory=list)
    instances: list[int] = field(default_factory=list)
    warm_instances: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a run measured."""

    policy: str
    trigger: str
    config: SimConfig
    jobs: int
    waits: WaitSummary
    instance_seconds: float
    oracle_instance_seconds: float
    interrupted_jobs: int
    scaler: ScalerStats
    invocations: InvocationStats
    launches: int
    jobs_waited: int
    unfinished_jobs: int
    end_s: float
    timeline: Timeline
    volume_seconds: float = 0.0
    cost: CostUsd = field(default_factory=lambda: CostUsd(0.0, 0.0, 0.0))
    warm_launches: int = 0
    resumes: int = 0
    returned_to_pool: int = 0

    @property
    def cost_efficiency(self) -> float:
        """Oracle instance-seconds / instance-seconds (1.0 = no idle capacity at all)."""
        if self.instance_seconds <= 0:
            return 0.0
        return self.oracle_instance_seconds / self.instance_seconds

    def as_json(self) -> dict[str, Any]:
        """The RESULT.json document (keys as the command-line contract lists them)."""
        return {
            "policy": self.policy,
            "trigger": self.trigger,
            "jobs": self.jobs,
            "wait_s": self.waits.as_json(),
            "instance_seconds": round(self.instance_seconds, 3),
            "oracle_instance_seconds": round(self.oracle_instance_seconds, 3),
            "interrupted_jobs": self.interrupted_jobs,
            "scale_out_actions": self.scaler.scale_out_actions,
            "scale_in_actions": self.scaler.scale_in_actions,
            "evaluations": self.scaler.evaluations,
            "lambda_gb_seconds": round(self.invocations.gb_seconds, 3),
            "lambda_requests": self.invocations.requests,
            "volume_seconds": round(self.volume_seconds, 3),
            "cost_usd": self.cost.as_json(),
            "warm_pool": {
                "enabled": self.config.enable_warm_pool,
                "warm_launches": self.warm_launches,
                "resumes": self.resumes,
                "returned_to_pool": self.returned_to_pool,
            },
        }


class SimulationError(ValueError):
    """The run cannot start (bad policy, trigger or trace)."""


def simulate(
    trace: Sequence[TraceJob],
    policy: str,
    trigger: str = "poll",
    config: SimConfig | None = None,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Run ``trace`` through ``policy`` with ``trigger``; ``progress(fraction)`` now and then."""
    if policy not in POLICIES:
        raise SimulationError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if trigger not in TRIGGERS:
        raise SimulationError(f"unknown trigger {trigger!r}; expected one of {', '.join(TRIGGERS)}")
    if not trace:
        raise SimulationError("the trace has no jobs")
    if config is None:
        config = build_config(policy)

    engine = EventEngine()
    fleet = Fleet(engine, config, lifecycle_hook=policy == "project", seed=seed)
    scaler: ScalerModel = (
        ProjectScaler(fleet, config) if policy == "project" else ReferenceScaler(fleet, config)
    )
    try:
        invocations = Invocations(engine, config, scaler, policy=policy, trigger=trigger)
    except InvocationError as error:
        raise SimulationError(str(error)) from None

    jobs = [
        Job(job_id=index, submit_s=item.submit_s, duration_s=item.duration_s)
        for index, item in enumerate(sorted(trace, key=lambda item: item.submit_s))
    ]
    for job in jobs:
        engine.schedule(job.submit_s, _arrival(fleet, invocations, job), ARRIVAL)
    timeline = Timeline()
    _sample(engine, fleet, timeline, config.sample_interval_s)
    invocations.start()

    last_submit = jobs[-1].submit_s
    total_work = sum(job.duration_s for job in jobs)
    tail_s = config.scale_in_idle_period_s + config.instance_shutdown_s + 300.0
    hard_horizon = last_submit + total_work + tail_s + HARD_HORIZON_MARGIN_S
    expected_end = last_submit + tail_s
    end = _run(engine, fleet, len(jobs), tail_s, hard_horizon, expected_end, progress)
    if progress is not None:
        progress(1.0)

    waits = []
    unfinished = 0
    for job in jobs:
        wait = job.wait_s
        if job.finished_at is None:
            unfinished += 1
            if job.started_at is None and job.submit_s <= end:
                wait += end - job.queued_at
        waits.append(wait)
    architecture = (
        REFERENCE_LAMBDA_ARCHITECTURE if policy == "reference" else PROJECT_LAMBDA_ARCHITECTURE
    )
    prices = config.prices(architecture)
    instance_seconds = fleet.instance_seconds(end)
    volume_seconds = fleet.volume_seconds(end)
    cost = CostUsd(
        compute=prices.compute_usd(instance_seconds),
        ebs=prices.ebs_usd(volume_seconds),
        lambda_=prices.lambda_usd(invocations.stats.gb_seconds, invocations.stats.requests),
    )
    return SimulationResult(
        policy=policy,
        trigger=trigger,
        config=config,
        jobs=len(jobs),
        waits=summarize_waits(waits),
        instance_seconds=instance_seconds,
        oracle_instance_seconds=total_work / config.agents_per_instance,
        interrupted_jobs=fleet.interrupted_jobs,
        scaler=scaler.stats,
        invocations=invocations.stats,
        launches=fleet.launches,
        jobs_waited=sum(1 for wait in waits if wait > 0),
        unfinished_jobs=unfinished,
        end_s=end,
        timeline=timeline,
        volume_seconds=volume_seconds,
        cost=cost,
        warm_launches=fleet.warm_launches,
        resumes=fleet.resumes,
        returned_to_pool=fleet.returned_to_pool,
    )


def _arrival(fleet: Fleet, invocations: Invocations, job: Job) -> Callable[[], None]:
    def arrive() -> None:
        fleet.submit(job)
        invocations.job_scheduled()

    return arrive


def _sample(engine: EventEngine, fleet: Fleet, timeline: Timeline, interval: float) -> None:
    snapshot = fleet.snapshot()
    timeline.times_s.append(engine.now)
    timeline.scheduled_jobs.append(snapshot.scheduled_jobs)
    timeline.busy_agents.append(snapshot.busy_agents)
    timeline.idle_agents.append(snapshot.idle_agents)
    timeline.desired_capacity.append(fleet.desired_capacity)
    timeline.instances.append(fleet.live_instance_count())
    timeline.warm_instances.append(fleet.warm_instance_count())
    engine.after(interval, lambda: _sample(engine, fleet, timeline, interval), SAMPLE)


def _run(
    engine: EventEngine,
    fleet: Fleet,
    job_count: int,
    tail_s: float,
    hard_horizon: float,
    expected_end: float,
    progress: Callable[[float], None] | None,
) -> float:
    """Step the engine until the run is over; returns the end time."""
    finished = fleet.finished_jobs
    while True:
        upcoming = engine.next_time()
        if upcoming is None:
            return engine.now
        if len(finished) == job_count:
            quiet_from = finished[-1].finished_at or engine.now
            if upcoming > quiet_from + tail_s:
                return max(engine.now, quiet_from + tail_s)
        if upcoming > hard_horizon:
            return hard_horizon
        engine.step()
        if len(finished) == job_count and not fleet.instances:
            return engine.now
        if progress is not None and engine.processed % PROGRESS_EVERY_EVENTS == 0:
            progress(min(engine.now / expected_end, 0.99))
