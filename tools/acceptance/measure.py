"""What the acceptance run observes, and the figures it derives from it.

Jobs come from the Buildkite REST API (``scheduled_at`` -> ``started_at`` -> ``finished_at``,
exit status, the agent's ``aws:instance-id`` tag). Instances are observed by polling: the first
poll that lists an instance in the group is its launch, the first that shows it ``InService`` its
entry into service, the first that lists one of its agents (REST ``agents``) its registration,
the first that shows it ``Terminating*`` (or no longer lists it) the start of its drain, and the
first that no longer lists it its end. Instance times are as precise as the poll interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tools.acceptance.aws import GroupView
from tools.simulate.stats import percentile, summarize_waits

INSTANCE_ID_TAG = "aws:instance-id="
TERMINAL_JOB_STATES = ("passed", "failed", "canceled", "timed_out", "skipped", "broken", "expired")


@dataclass(frozen=True)
class JobTiming:
    """One job of the run's build (Unix seconds; None: has not happened)."""

    job_id: str
    name: str
    step_key: str | None
    state: str
    scheduled_at: float | None
    started_at: float | None
    finished_at: float | None
    exit_status: int | None
    instance_id: str | None

    @property
    def wait_s(self) -> float | None:
        if self.scheduled_at is None or self.started_at is None:
            return None
        return self.started_at - self.scheduled_at

    @property
    def run_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_JOB_STATES

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "wait_s": self.wait_s, "run_s": self.run_s}


def job_timings(build: dict[str, Any]) -> list[JobTiming]:
    """The script jobs of a REST build document."""
    timings = []
    for job in build.get("jobs", []):
        if job.get("type", "script") != "script":
            continue
        timings.append(
            JobTiming(
                job_id=str(job["id"]),
                name=str(job.get("name") or job.get("step_key") or job["id"]),
                step_key=job.get("step_key"),
                state=str(job.get("state")),
                scheduled_at=parse_time(job.get("scheduled_at")),
                started_at=parse_time(job.get("started_at")),
                finished_at=parse_time(job.get("finished_at")),
                exit_status=job.get("exit_status"),
                instance_id=agent_instance_id(job.get("agent")),
            )
        )
    return timings


def agent_instance_id(agent: dict[str, Any] | None) -> str | None:
    """The EC2 instance an agent runs on, from its ``aws:instance-id`` meta-data tag."""
    for tag in (agent or {}).get("meta_data") or []:
        if isinstance(tag, str) and tag.startswith(INSTANCE_ID_TAG):
            return tag[len(INSTANCE_ID_TAG) :]
    return None


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class InstanceTiming:
    """One instance of the group, as the polls saw it (Unix seconds)."""

    instance_id: str
    launched_at: float
    in_service_at: float | None = None
    registered_at: float | None = None
    leaving_at: float | None = None
    gone_at: float | None = None

    @property
    def boot_s(self) -> float | None:
        """Launch to the first of its agents connected."""
        return None if self.registered_at is None else self.registered_at - self.launched_at

    @property
    def in_service_s(self) -> float | None:
        return None if self.in_service_at is None else self.in_service_at - self.launched_at

    @property
    def drain_s(self) -> float | None:
        """Leaving service (terminating, or its agents stopped) to gone from the group."""
        if self.leaving_at is None or self.gone_at is None:
            return None
        return self.gone_at - self.leaving_at

    def billed_s(self, end: float) -> float:
        return (self.gone_at if self.gone_at is not None else end) - self.launched_at

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "boot_s": self.boot_s,
            "in_service_s": self.in_service_s,
            "drain_s": self.drain_s,
        }


class InstanceLog:
    """Folds each poll of the group and of the agents into per-instance times."""

    def __init__(self, queue: str) -> None:
        self._queue = queue
        self.instances: dict[str, InstanceTiming] = {}

    def observe(self, at: float, group: GroupView | None, agents: Iterable[dict[str, Any]]) -> None:
        listed = group.instances if group is not None else {}
        for instance_id, state in listed.items():
            timing = self.instances.get(instance_id)
            if timing is None:
                timing = self.instances[instance_id] = InstanceTiming(instance_id, launched_at=at)
            if state == "InService" and timing.in_service_at is None:
                timing.in_service_at = at
            if state.startswith("Terminat") and timing.leaving_at is None:
                timing.leaving_at = at
        connected = {
            agent_instance_id(agent)
            for agent in agents
            if f"queue={self._queue}" in (agent.get("meta_data") or [])
        }
        for instance_id in connected:
            timing = self.instances.get(instance_id) if instance_id else None
            if timing is not None and timing.registered_at is None:
                timing.registered_at = at
        for timing in self.instances.values():
            if timing.gone_at is not None or timing.instance_id in listed:
                continue
            if timing.leaving_at is None:
                timing.leaving_at = at
            timing.gone_at = at


@dataclass(frozen=True)
class Spread:
    """count, mean, median, 95th percentile and maximum of some durations (seconds)."""

    count: int
    mean: float | None
    p50: float | None
    p95: float | None
    max: float | None


def spread(values: Iterable[float | None]) -> Spread:
    ordered = sorted(value for value in values if value is not None)
    if not ordered:
        return Spread(0, None, None, None, None)
    return Spread(
        count=len(ordered),
        mean=sum(ordered) / len(ordered),
        p50=percentile(ordered, 0.50),
        p95=percentile(ordered, 0.95),
        max=ordered[-1],
    )


def wait_spread(jobs: Iterable[JobTiming]) -> Spread:
    """Job waits, with the simulator's statistics (``tools.simulate.stats``)."""
    waits = [job.wait_s for job in jobs if job.wait_s is not None]
    if not waits:
        return Spread(0, None, None, None, None)
    summary = summarize_waits(waits)
    return Spread(len(waits), summary.mean, summary.p50, summary.p95, summary.max)
