"""Python client of the emulator's control API (JSON over HTTP under ``/_control``).

    control = EmulatorControl("http://127.0.0.1:8123")   # or emulator.control
    control.set_counts("default", scheduled_jobs=4, idle_agents=1)
    control.enqueue_jobs("default", count=3, duration_s=120)
    control.register_instance("i-0abc", queue="default", agents_per_instance=2)
    control.advance(60)
    control.add_fault(status=503, retry_after=2, count=2)
    [job.wait_s for job in control.jobs("default")]

Standard library only, so tools and tests can drive an emulator running in another process.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

_UNSET: Any = object()


class EmulatorControlError(Exception):
    """The emulator refused a control request (status and its message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"emulator control request failed with HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Interruption:
    """A run of a job that ended because its instance went away."""

    instance_id: str
    agent_name: str
    started_at: float
    interrupted_at: float


@dataclass(frozen=True)
class JobRecord:
    """A job's timings in virtual seconds and where it ran (or runs)."""

    job_id: str
    queue: str
    state: str
    duration_s: float
    submitted_at: float
    first_started_at: float | None
    started_at: float | None
    finished_at: float | None
    instance_id: str | None
    agent_name: str | None
    interruptions: tuple[Interruption, ...]

    @property
    def wait_s(self) -> float | None:
        """Seconds from submission to the first start (None while never started)."""
        if self.first_started_at is None:
            return None
        return self.first_started_at - self.submitted_at

    @property
    def interrupted(self) -> bool:
        return bool(self.interruptions)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> JobRecord:
        return cls(
            job_id=document["job_id"],
            queue=document["queue"],
            state=document["state"],
            duration_s=document["duration_s"],
            submitted_at=document["submitted_at"],
            first_started_at=document["first_started_at"],
            started_at=document["started_at"],
            finished_at=document["finished_at"],
            instance_id=document["instance_id"],
            agent_name=document["agent_name"],
            interruptions=tuple(Interruption(**item) for item in document["interruptions"]),
        )


@dataclass(frozen=True)
class InstanceRecord:
    """An instance's agents: ``state`` is running, stopping or gone."""

    instance_id: str
    queue: str
    state: str
    agents_per_instance: int
    registered_at: float
    deregistered_at: float | None
    idle_since: float | None
    running_job_ids: tuple[str, ...]
    busy_agents: int
    idle_agents: int

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> InstanceRecord:
        return cls(**{**document, "running_job_ids": tuple(document["running_job_ids"])})


@dataclass(frozen=True)
class AgentRequest:
    """One request the agent API routes received (the token is never recorded)."""

    seq: int
    method: str
    route: str
    path: str
    queue: str | None
    authorized: bool | None
    status: int | None
    fault_id: str | None
    reset: bool
    virtual_time: float
    wall_time: float

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> AgentRequest:
        return cls(**document)


@dataclass(frozen=True)
class AdvanceResult:
    now: float
    finished_job_ids: tuple[str, ...]


class EmulatorControl:
    """Drives one emulator through its control API; ``base_url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        # The emulator is on loopback: never route control calls through an environment proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"EmulatorControl({self.base_url!r})"

    # --- whole emulator --------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Clock, config (never the token), per-queue counts, instances, jobs, faults."""
        return self._call("GET", "state")

    def reset(self) -> None:
        """Back to the state the emulator started in (config, no queues, jobs, faults, log)."""
        self._call("POST", "reset")

    def configure(
        self,
        *,
        token: str | None = None,
        poll_duration_s: int | None = None,
        organization_slug: str | None = None,
        cluster_name: str | None = _UNSET,
    ) -> dict[str, Any]:
        """Change the accepted token, the poll-duration header, the organization or cluster."""
        document: dict[str, Any] = {}
        if token is not None:
            document["token"] = token
        if poll_duration_s is not None:
            document["poll_duration_s"] = poll_duration_s
        if organization_slug is not None:
            document["organization_slug"] = organization_slug
        if cluster_name is not _UNSET:
            document["cluster_name"] = cluster_name
        return self._call("PUT", "config", body=document)

    # --- counts ------------------------------------------------------------------------------

    def queue_counts(self, queue: str) -> dict[str, int]:
        """The counts the agent API reports for ``queue`` now."""
        return self._call("GET", "queues", queue)["counts"]

    def set_counts(self, queue: str, **counts: int | None) -> dict[str, int]:
        """Override counts (scheduled_jobs, running_jobs, waiting_jobs, total_jobs, idle_agents,
        busy_agents, total_agents); None drops one override. Returns the reported counts."""
        return self._call("PUT", "queues", queue, "counts", body=counts)["counts"]

    def clear_counts(self, queue: str) -> dict[str, int]:
        """Drop every override of ``queue``; counts follow the simulation again."""
        return self._call("DELETE", "queues", queue, "counts")["counts"]

    # --- jobs --------------------------------------------------------------------------------

    def enqueue_jobs(
        self,
        queue: str,
        count: int = 1,
        *,
        duration_s: float = 60.0,
        durations_s: list[float] | None = None,
    ) -> list[str]:
        """Submit jobs (now, on the virtual clock); returns their ids in submission order."""
        if durations_s is not None:
            body: dict[str, Any] = {"durations_s": list(durations_s)}
        else:
            body = {"count": count, "duration_s": duration_s}
        return self._call("POST", "queues", queue, "jobs", body=body)["job_ids"]

    def job(self, job_id: str) -> JobRecord:
        return JobRecord.from_json(self._call("GET", "jobs", job_id))

    def jobs(self, queue: str | None = None, *, state: str | None = None) -> list[JobRecord]:
        query = {key: value for key, value in (("queue", queue), ("state", state)) if value}
        documents = self._call("GET", "jobs", query=query)["jobs"]
        return [JobRecord.from_json(document) for document in documents]

    # --- instances ---------------------------------------------------------------------------

    def register_instance(
        self, instance_id: str, queue: str = "default", agents_per_instance: int = 1
    ) -> InstanceRecord:
        """An instance's agents connect; idle ones take scheduled jobs at once."""
        body = {
            "instance_id": instance_id,
            "queue": queue,
            "agents_per_instance": agents_per_instance,
        }
        return InstanceRecord.from_json(self._call("POST", "instances", body=body))

    def deregister_instance(self, instance_id: str) -> list[str]:
        """The instance vanishes now; returns the ids of the jobs it interrupted (rescheduled)."""
        return self._call("DELETE", "instances", instance_id)["interrupted_job_ids"]

    def stop_instance(self, instance_id: str) -> InstanceRecord:
        """Graceful stop: idle agents leave now, busy ones when their job finishes."""
        return InstanceRecord.from_json(self._call("POST", "instances", instance_id, "stop"))

    def instance(self, instance_id: str) -> InstanceRecord:
        return InstanceRecord.from_json(self._call("GET", "instances", instance_id))

    def instances(self, queue: str | None = None) -> list[InstanceRecord]:
        query = {"queue": queue} if queue else {}
        documents = self._call("GET", "instances", query=query)["instances"]
        return [InstanceRecord.from_json(document) for document in documents]

    # --- time --------------------------------------------------------------------------------

    def now(self) -> float:
        """The virtual clock, in seconds since the emulator started (or was reset)."""
        return self._call("GET", "clock")["now"]

    def advance(self, seconds: float) -> AdvanceResult:
        """Move the virtual clock forward; jobs finish and agents take new ones on the way."""
        return self._advance({"seconds": seconds})

    def advance_to(self, moment: float) -> AdvanceResult:
        return self._advance({"to": moment})

    def _advance(self, body: dict[str, Any]) -> AdvanceResult:
        answer = self._call("POST", "advance", body=body)
        return AdvanceResult(now=answer["now"], finished_job_ids=tuple(answer["finished_job_ids"]))

    # --- faults ------------------------------------------------------------------------------

    def add_fault(
        self,
        route: str = "*",
        *,
        count: int | None = 1,
        queue: str | None = None,
        status: int | None = None,
        message: str | None = None,
        retry_after: int | str | None = None,
        delay_s: float = 0.0,
        reset: bool = False,
        malformed: bool = False,
        body: str | None = None,
        json_body: Any = _UNSET,
        truncate: bool = False,
        headers: dict[str, str | None] | None = None,
    ) -> str:
        """Break the next ``count`` agent API requests on ``route`` (metrics_queue, metrics or
        ``*``); ``count=None`` keeps the fault until removed. Returns the fault id."""
        document: dict[str, Any] = {
            "route": route,
            "count": count,
            "delay_s": delay_s,
            "reset": reset,
            "malformed": malformed,
            "truncate": truncate,
        }
        optional = {
            "queue": queue,
            "status": status,
            "message": message,
            "retry_after": retry_after,
            "body": body,
            "headers": headers,
        }
        document.update({key: value for key, value in optional.items() if value is not None})
        if json_body is not _UNSET:
            document["json"] = json_body
        return self._call("POST", "faults", body=document)["fault_id"]

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")["faults"]

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", "faults", fault_id)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    # --- request log -------------------------------------------------------------------------

    def agent_requests(
        self, *, route: str | None = None, queue: str | None = None
    ) -> list[AgentRequest]:
        """Requests the agent API routes received, oldest first (optionally filtered)."""
        records = [
            AgentRequest.from_json(item) for item in self._call("GET", "requests")["requests"]
        ]
        return [
            record
            for record in records
            if (route is None or record.route == route) and (queue is None or record.queue == queue)
        ]

    def clear_agent_requests(self) -> None:
        self._call("DELETE", "requests")

    # --- REST API ----------------------------------------------------------------------------

    def rest_epoch(self) -> float:
        """Unix seconds of virtual time 0 in the REST API's timestamps."""
        return self._call("GET", "rest")["epoch"]

    def rest_pipelines(self) -> list[str]:
        """Slugs of the pipelines the REST API holds."""
        return self._call("GET", "rest")["pipelines"]

    # --- transport ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        *segments: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        path = "/".join(quote(segment, safe="") for segment in segments)
        url = f"{self.base_url}/_control/{path}"
        if query:
            url = f"{url}?{urlencode(query)}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (http to the emulator on loopback)
            url,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                message = json.loads(raw)["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode("utf-8", errors="replace") or error.reason
            raise EmulatorControlError(error.code, str(message)) from None
