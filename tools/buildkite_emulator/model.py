"""The emulated world behind the agent API: a virtual clock, per-queue jobs and agents.

Time moves only when the caller advances it, so a test or the demo can compress hours into
milliseconds. Agents take scheduled jobs first-in first-out the moment they are free; a job
finishes ``duration_s`` virtual seconds after it starts. An instance registers with
``agents_per_instance`` agents; deregistering it puts its running jobs back to scheduled and
records each as interrupted; stopping it gracefully lets its busy agents finish first.

A job can be canceled (the REST API's build cancel): a scheduled one leaves the queue, a
running one stops and frees its agent.

Counts per queue are simulated from that state; any count can be overridden (and the
override cleared) for tests that only need numbers. Not thread-safe: the server holds a lock.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from tools.buildkite_emulator import validation
from tools.buildkite_emulator.validation import ControlError

SCHEDULED = "scheduled"
RUNNING = "running"
FINISHED = "finished"
CANCELED = "canceled"
JOB_STATES = (SCHEDULED, RUNNING, FINISHED, CANCELED)

INSTANCE_RUNNING = "running"
INSTANCE_STOPPING = "stopping"
INSTANCE_GONE = "gone"

BASE_COUNT_FIELDS = (
    "scheduled_jobs",
    "running_jobs",
    "waiting_jobs",
    "idle_agents",
    "busy_agents",
)
COUNT_FIELDS = (*BASE_COUNT_FIELDS, "total_jobs", "total_agents")

MAX_JOBS_PER_REQUEST = 100_000
MAX_AGENTS_PER_INSTANCE = 1_000


@dataclass
class Job:
    """One job's life: when it was submitted, started, finished, and where it ran."""

    job_id: str
    seq: int
    queue: str
    duration_s: float
    submitted_at: float
    state: str = SCHEDULED
    first_started_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    instance_id: str | None = None
    agent_name: str | None = None
    run: int = 0
    interruptions: list[dict[str, Any]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        wait_s = None
        if self.first_started_at is not None:
            wait_s = self.first_started_at - self.submitted_at
        return {
            "job_id": self.job_id,
            "queue": self.queue,
            "state": self.state,
            "duration_s": self.duration_s,
            "submitted_at": self.submitted_at,
            "first_started_at": self.first_started_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "wait_s": wait_s,
            "instance_id": self.instance_id,
            "agent_name": self.agent_name,
            "interruptions": [dict(interruption) for interruption in self.interruptions],
        }


@dataclass
class Instance:
    """An EC2 instance running ``agents_per_instance`` agents; slot -> running job id or None."""

    instance_id: str
    queue: str
    agents_per_instance: int
    registered_at: float
    slots: dict[int, str | None]
    state: str = INSTANCE_RUNNING
    deregistered_at: float | None = None
    idle_since: float | None = None

    def agent_name(self, slot: int) -> str:
        return f"{self.instance_id}-{slot}"

    @property
    def active(self) -> bool:
        return self.state != INSTANCE_GONE

    def snapshot(self) -> dict[str, Any]:
        running = [job_id for job_id in self.slots.values() if job_id is not None]
        return {
            "instance_id": self.instance_id,
            "queue": self.queue,
            "state": self.state,
            "agents_per_instance": self.agents_per_instance,
            "registered_at": self.registered_at,
            "deregistered_at": self.deregistered_at,
            "idle_since": self.idle_since,
            "running_job_ids": running,
            "busy_agents": len(running),
            "idle_agents": len(self.slots) - len(running),
        }


class Simulation:
    """Queues, jobs, instances and the virtual clock (seconds, starting at 0)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._seq = itertools.count(1)
        self._jobs: dict[str, Job] = {}
        self._instances: dict[str, Instance] = {}
        self._scheduled: dict[str, list[tuple[int, str]]] = {}
        self._ends: list[tuple[float, int, str, int]] = []
        self._overrides: dict[str, dict[str, int]] = {}
        self._queues: dict[str, None] = {}

    # --- queues and counts -------------------------------------------------------------

    def queue_names(self) -> list[str]:
        return list(self._queues)

    def simulated_counts(self, queue: str) -> dict[str, int]:
        busy = idle = 0
        for instance in self._instances.values():
            if instance.queue == queue and instance.active:
                running = sum(1 for job_id in instance.slots.values() if job_id is not None)
                busy += running
                idle += len(instance.slots) - running
        scheduled = len(self._scheduled.get(queue, ()))
        return {
            "scheduled_jobs": scheduled,
            "running_jobs": busy,
            "waiting_jobs": 0,
            "idle_agents": idle,
            "busy_agents": busy,
            "total_jobs": scheduled + busy,
            "total_agents": idle + busy,
        }

    def overrides(self, queue: str) -> dict[str, int]:
        return dict(self._overrides.get(queue, {}))

    def counts(self, queue: str) -> dict[str, int]:
        """The counts the API reports: simulated, with any overridden field replaced."""
        overrides = self._overrides.get(queue, {})
        counts = self.simulated_counts(queue)
        counts.update({key: value for key, value in overrides.items()})
        counts["total_jobs"] = overrides.get(
            "total_jobs", counts["scheduled_jobs"] + counts["running_jobs"]
        )
        counts["total_agents"] = overrides.get(
            "total_agents", counts["idle_agents"] + counts["busy_agents"]
        )
        return counts

    def set_overrides(self, queue: str, values: dict[str, Any]) -> None:
        validation.name("queue", queue)
        validation.only_keys("count", values, set(COUNT_FIELDS))
        checked = {
            key: None if value is None else validation.non_negative_int(key, value)
            for key, value in values.items()
        }
        overrides = self._overrides.setdefault(queue, {})
        for key, value in checked.items():
            if value is None:
                overrides.pop(key, None)
            else:
                overrides[key] = value
        self._queues.setdefault(queue)

    def clear_overrides(self, queue: str) -> None:
        self._overrides.pop(queue, None)

    # --- jobs --------------------------------------------------------------------------

    def enqueue(self, queue: str, durations_s: list[float]) -> list[str]:
        validation.name("queue", queue)
        if not durations_s:
            raise ControlError(400, "enqueue at least one job")
        if len(durations_s) > MAX_JOBS_PER_REQUEST:
            raise ControlError(400, f"enqueue at most {MAX_JOBS_PER_REQUEST} jobs per request")
        checked = [validation.seconds("duration_s", duration) for duration in durations_s]
        self._queues.setdefault(queue)
        job_ids = []
        for duration in checked:
            seq = next(self._seq)
            job = Job(
                job_id=f"job-{seq}",
                seq=seq,
                queue=queue,
                duration_s=duration,
                submitted_at=self.now,
            )
            self._jobs[job.job_id] = job
            heapq.heappush(self._scheduled.setdefault(queue, []), (seq, job.job_id))
            job_ids.append(job.job_id)
        self._assign(queue)
        self._run_until(self.now)
        return job_ids

    def job(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise ControlError(404, f"no job {job_id!r}") from None

    def jobs(self, queue: str | None = None, state: str | None = None) -> list[Job]:
        if state is not None and state not in JOB_STATES:
            raise ControlError(400, f"state must be one of {', '.join(JOB_STATES)}")
        return [
            job
            for job in self._jobs.values()
            if (queue is None or job.queue == queue) and (state is None or job.state == state)
        ]

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: it leaves the queue, or stops running and frees its agent."""
        job = self.job(job_id)
        if job.state == SCHEDULED:
            queue = self._scheduled[job.queue]
            queue.remove((job.seq, job.job_id))
            heapq.heapify(queue)
        elif job.state == RUNNING:
            self._release(job)
        else:
            return job
        job.state = CANCELED
        job.finished_at = self.now
        return job

    # --- instances ---------------------------------------------------------------------

    def register(self, instance_id: str, queue: str, agents_per_instance: int) -> Instance:
        validation.name("instance_id", instance_id)
        validation.name("queue", queue)
        validation.positive_int(
            "agents_per_instance", agents_per_instance, maximum=MAX_AGENTS_PER_INSTANCE
        )
        existing = self._instances.get(instance_id)
        if existing is not None and existing.active:
            raise ControlError(409, f"instance {instance_id!r} is already registered")
        self._instances.pop(instance_id, None)
        instance = Instance(
            instance_id=instance_id,
            queue=queue,
            agents_per_instance=agents_per_instance,
            registered_at=self.now,
            slots=dict.fromkeys(range(1, agents_per_instance + 1)),
            idle_since=self.now,
        )
        self._instances[instance_id] = instance
        self._queues.setdefault(queue)
        self._assign(queue)
        self._run_until(self.now)
        return instance

    def instance(self, instance_id: str) -> Instance:
        try:
            return self._instances[instance_id]
        except KeyError:
            raise ControlError(404, f"no instance {instance_id!r}") from None

    def instances(self, queue: str | None = None) -> list[Instance]:
        return [
            instance
            for instance in self._instances.values()
            if queue is None or instance.queue == queue
        ]

    def deregister(self, instance_id: str) -> tuple[Instance, list[str]]:
        """Remove an instance at once; its running jobs go back to scheduled, interrupted."""
        instance = self._active_instance(instance_id)
        interrupted = []
        for slot, job_id in instance.slots.items():
            if job_id is None:
                continue
            job = self._jobs[job_id]
            job.interruptions.append(
                {
                    "instance_id": instance.instance_id,
                    "agent_name": instance.agent_name(slot),
                    "started_at": job.started_at,
                    "interrupted_at": self.now,
                }
            )
            job.state = SCHEDULED
            job.started_at = None
            job.instance_id = None
            job.agent_name = None
            heapq.heappush(self._scheduled.setdefault(job.queue, []), (job.seq, job.job_id))
            interrupted.append(job_id)
        instance.slots = {}
        self._leave(instance)
        self._assign(instance.queue)
        self._run_until(self.now)
        return instance, interrupted

    def stop(self, instance_id: str) -> Instance:
        """Stop gracefully: idle agents leave now, busy agents once their job finishes."""
        instance = self._active_instance(instance_id)
        instance.state = INSTANCE_STOPPING
        instance.slots = {slot: job for slot, job in instance.slots.items() if job is not None}
        if not instance.slots:
            self._leave(instance)
        return instance

    # --- time --------------------------------------------------------------------------

    def advance(self, seconds: float) -> list[str]:
        """Move the clock forward; jobs finish and agents take new jobs on the way."""
        validation.seconds("seconds", seconds)
        return self._run_until(self.now + seconds)

    def advance_to(self, moment: float) -> list[str]:
        validation.seconds("to", moment)
        if moment < self.now:
            raise ControlError(400, f"the clock is at {self.now}; it cannot go back to {moment}")
        return self._run_until(moment)

    # --- internals ---------------------------------------------------------------------

    def _active_instance(self, instance_id: str) -> Instance:
        instance = self.instance(instance_id)
        if not instance.active:
            raise ControlError(409, f"instance {instance_id!r} is already deregistered")
        return instance

    def _leave(self, instance: Instance) -> None:
        instance.state = INSTANCE_GONE
        instance.deregistered_at = self.now
        instance.idle_since = None

    def _assign(self, queue: str) -> None:
        scheduled = self._scheduled.get(queue)
        while scheduled:
            free = self._free_slot(queue)
            if free is None:
                return
            instance, slot = free
            _, job_id = heapq.heappop(scheduled)
            job = self._jobs[job_id]
            job.state = RUNNING
            job.run += 1
            job.started_at = self.now
            if job.first_started_at is None:
                job.first_started_at = self.now
            job.instance_id = instance.instance_id
            job.agent_name = instance.agent_name(slot)
            instance.slots[slot] = job_id
            instance.idle_since = None
            heapq.heappush(self._ends, (self.now + job.duration_s, job.seq, job_id, job.run))

    def _free_slot(self, queue: str) -> tuple[Instance, int] | None:
        for instance in self._instances.values():
            if instance.queue != queue or instance.state != INSTANCE_RUNNING:
                continue
            for slot, job_id in instance.slots.items():
                if job_id is None:
                    return instance, slot
        return None

    def _run_until(self, moment: float) -> list[str]:
        finished = []
        while self._ends and self._ends[0][0] <= moment:
            end, _, job_id, run = heapq.heappop(self._ends)
            job = self._jobs[job_id]
            if job.state != RUNNING or job.run != run:
                continue  # interrupted since this end was planned
            self.now = max(self.now, end)
            self._finish(job)
            finished.append(job_id)
        self.now = max(self.now, moment)
        return finished

    def _finish(self, job: Job) -> None:
        job.state = FINISHED
        job.finished_at = self.now
        self._release(job)

    def _release(self, job: Job) -> None:
        """Free the agent that ran ``job``; a stopping instance leaves once all are free."""
        instance = self._instances[job.instance_id] if job.instance_id else None
        if instance is None:
            return
        slot = next(slot for slot, job_id in instance.slots.items() if job_id == job.job_id)
        if instance.state == INSTANCE_STOPPING:
            del instance.slots[slot]
            if not instance.slots:
                self._leave(instance)
            return
        instance.slots[slot] = None
        if all(job_id is None for job_id in instance.slots.values()):
            instance.idle_since = self.now
        self._assign(instance.queue)
