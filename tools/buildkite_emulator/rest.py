"""The emulator's slice of the Buildkite REST API (v2): pipelines, builds, their jobs, agents.

Enough for a client that creates a throwaway pipeline, triggers builds, follows each job's
scheduled -> started -> finished times, watches agents connect, cancels and deletes:

    POST   /v2/organizations/<org>/pipelines                       {name, repository,
                                                                    configuration} -> 201
    GET    /v2/organizations/<org>/pipelines/<slug>
    DELETE /v2/organizations/<org>/pipelines/<slug>                -> 204
    POST   /v2/organizations/<org>/pipelines/<slug>/builds         {commit, branch, message?,
                                                                    env?} -> 201
    GET    /v2/organizations/<org>/pipelines/<slug>/builds/<n>
    PUT    /v2/organizations/<org>/pipelines/<slug>/builds/<n>/cancel  (422 when finished)
    GET    /v2/organizations/<org>/agents[?page=&per_page=]         connected agents, paginated
                                                                    (``Link: <...>; rel="next"``)

Requests carry the REST API access token (``Authorization: Bearer <token>``), a different
secret from the agent token. Errors are ``{"message": ...}`` with 401, 404 or 422, like the
real API.

A build's jobs are the pipeline's command steps (``configuration`` is the pipeline's YAML;
``parallelism`` gives several jobs per step; ``agents: {queue: q}`` or ``["queue=q"]`` picks
the queue, ``default`` otherwise). Every job of a build is scheduled when the build is created
(the emulator has no ``wait`` steps and refuses step types other than commands) and runs on
the emulated agents of its queue for as long as its command's ``sleep N`` says (the sum of
them; ``DEFAULT_JOB_S`` when there is none). A job that finishes after an instance vanished
under it (the emulator runs it again) is reported failed with exit status -1, as Buildkite
reports a job whose agent was lost; other finished jobs passed with exit status 0.
Timestamps are ISO 8601 UTC: ``epoch`` (Unix seconds) plus the virtual clock.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from tools.buildkite_emulator.model import CANCELED, FINISHED, RUNNING, SCHEDULED, Job, Simulation
from tools.buildkite_emulator.validation import ControlError

REST_PREFIX = "/v2/"
DEFAULT_JOB_S = 60.0
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
_SLEEP = re.compile(r"(?:^|[\s;&|(])sleep\s+(\d+(?:\.\d+)?)\b")
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class StepJob:
    """One job a build of the pipeline creates."""

    label: str
    key: str | None
    command: str
    queue: str
    duration_s: float


@dataclass
class Pipeline:
    slug: str
    name: str
    repository: str
    jobs: tuple[StepJob, ...]
    created_at: float
    builds: dict[int, Build] = field(default_factory=dict)


@dataclass
class Build:
    build_id: str
    number: int
    commit: str
    branch: str
    message: str
    env: dict[str, str]
    created_at: float
    job_ids: list[tuple[str, StepJob]]
    canceled: bool = False


class RestWorld:
    """Pipelines and builds on top of the simulation; answers REST requests (caller locks)."""

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch
        self.pipelines: dict[str, Pipeline] = {}

    def handle(
        self,
        simulation: Simulation,
        organization: str,
        method: str,
        segments: list[str],
        query: dict[str, list[str]],
        body: Any,
        base_url: str,
    ) -> tuple[int, Any, dict[str, str]]:
        """``(status, document, headers)`` for ``/v2/<segments>``; raises ``ControlError``."""
        match segments:
            case ["organizations", org, *rest] if org == organization:
                pass
            case _:
                raise ControlError(404, "Not Found")
        match (method, rest):
            case ("POST", ["pipelines"]):
                return 201, self._pipeline_json(self._create_pipeline(body, simulation.now)), {}
            case ("GET", ["pipelines", slug]):
                return 200, self._pipeline_json(self._pipeline(slug)), {}
            case ("DELETE", ["pipelines", slug]):
                pipeline = self._pipeline(slug)
                for build in pipeline.builds.values():
                    self._cancel(simulation, build)
                del self.pipelines[slug]
                return 204, None, {}
            case ("POST", ["pipelines", slug, "builds"]):
                build = self._create_build(simulation, self._pipeline(slug), body)
                return 201, self._build_json(simulation, slug, build), {}
            case ("GET", ["pipelines", slug, "builds", number]):
                build = self._build(slug, number)
                return 200, self._build_json(simulation, slug, build), {}
            case ("PUT", ["pipelines", slug, "builds", number, "cancel"]):
                build = self._build(slug, number)
                if all(
                    simulation.job(job_id).state in (FINISHED, CANCELED)
                    for job_id, _ in build.job_ids
                ):
                    raise ControlError(422, "Build can't be canceled because it's already finished")
                self._cancel(simulation, build)
                return 200, self._build_json(simulation, slug, build), {}
            case ("GET", ["agents"]):
                return self._agents(simulation, query, f"{base_url}/v2/organizations/{org}/agents")
        raise ControlError(404, "Not Found")

    # --- pipelines ---------------------------------------------------------------------

    def _create_pipeline(self, body: Any, now: float) -> Pipeline:
        if not isinstance(body, dict):
            raise ControlError(422, "Validation Failed: the body must be a JSON object")
        name, repository = body.get("name"), body.get("repository")
        if not isinstance(name, str) or not name.strip():
            raise ControlError(422, "Validation Failed: name can't be blank")
        if not isinstance(repository, str) or not repository.strip():
            raise ControlError(422, "Validation Failed: repository can't be blank")
        slug = _SLUG.sub("-", name.lower()).strip("-")
        if not slug or slug in self.pipelines:
            raise ControlError(422, f"Validation Failed: name {name!r} has already been taken")
        jobs = _step_jobs(body.get("configuration"))
        pipeline = Pipeline(slug, name, repository, jobs, created_at=now)
        self.pipelines[slug] = pipeline
        return pipeline

    def _pipeline(self, slug: str) -> Pipeline:
        pipeline = self.pipelines.get(slug)
        if pipeline is None:
            raise ControlError(404, "Not Found")
        return pipeline

    def _pipeline_json(self, pipeline: Pipeline) -> dict[str, Any]:
        return {
            "id": pipeline.slug,
            "slug": pipeline.slug,
            "name": pipeline.name,
            "repository": pipeline.repository,
            "created_at": self._time(pipeline.created_at),
            "builds_count": len(pipeline.builds),
        }

    # --- builds ------------------------------------------------------------------------

    def _create_build(self, simulation: Simulation, pipeline: Pipeline, body: Any) -> Build:
        if not isinstance(body, dict):
            raise ControlError(422, "Validation Failed: the body must be a JSON object")
        for key in ("commit", "branch"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise ControlError(422, f"Validation Failed: {key} can't be blank")
        env = body.get("env") or {}
        if not isinstance(env, dict):
            raise ControlError(422, "Validation Failed: env must be an object")
        job_ids = []
        for step_job in pipeline.jobs:
            (job_id,) = simulation.enqueue(step_job.queue, [step_job.duration_s])
            job_ids.append((job_id, step_job))
        number = len(pipeline.builds) + 1
        build = Build(
            build_id=str(uuid.uuid4()),
            number=number,
            commit=body["commit"],
            branch=body["branch"],
            message=str(body.get("message", "")),
            env={str(k): str(v) for k, v in env.items()},
            created_at=simulation.now,
            job_ids=job_ids,
        )
        pipeline.builds[number] = build
        return build

    def _build(self, slug: str, number: str) -> Build:
        build = self._pipeline(slug).builds.get(int(number)) if number.isdigit() else None
        if build is None:
            raise ControlError(404, "Not Found")
        return build

    def _cancel(self, simulation: Simulation, build: Build) -> None:
        build.canceled = True
        for job_id, _ in build.job_ids:
            simulation.cancel(job_id)

    def _build_json(self, simulation: Simulation, slug: str, build: Build) -> dict[str, Any]:
        jobs = [(simulation.job(job_id), step) for job_id, step in build.job_ids]
        documents = [self._job_json(simulation, job, step) for job, step in jobs]
        states = {document["state"] for document in documents}
        done = all(job.state in (FINISHED, CANCELED) for job, _ in jobs)
        starts = [job.first_started_at for job, _ in jobs if job.first_started_at is not None]
        ends = [job.finished_at for job, _ in jobs if job.finished_at is not None]
        if build.canceled:
            state = "canceled"
        elif not done:
            state = "scheduled" if states == {"scheduled"} else "running"
        else:
            state = "passed" if states == {"passed"} else "failed"
        return {
            "id": build.build_id,
            "number": build.number,
            "state": state,
            "message": build.message,
            "commit": build.commit,
            "branch": build.branch,
            "env": dict(build.env),
            "source": "api",
            "pipeline": {"slug": slug},
            "created_at": self._time(build.created_at),
            "scheduled_at": self._time(build.created_at),
            "started_at": self._time(min(starts)) if starts else None,
            "finished_at": self._time(max(ends)) if done and ends else None,
            "jobs": documents,
        }

    def _job_json(self, simulation: Simulation, job: Job, step: StepJob) -> dict[str, Any]:
        exit_status: int | None = None
        if job.state == FINISHED:
            exit_status = -1 if job.interruptions else 0
            state = "failed" if job.interruptions else "passed"
        elif job.state == CANCELED:
            state = "canceled"
        else:
            state = {SCHEDULED: "scheduled", RUNNING: "running"}[job.state]
        instance_id = job.instance_id or (
            job.interruptions[-1]["instance_id"] if job.interruptions else None
        )
        agent = None
        if instance_id is not None:
            agent_name = job.agent_name or job.interruptions[-1]["agent_name"]
            agent = _agent_summary(agent_name, instance_id, job.queue)
        return {
            "id": job.job_id,
            "type": "script",
            "name": step.label,
            "step_key": step.key,
            "command": step.command,
            "agent_query_rules": [f"queue={step.queue}"],
            "state": state,
            "exit_status": exit_status,
            "created_at": self._time(job.submitted_at),
            "scheduled_at": self._time(job.submitted_at),
            "runnable_at": self._time(job.submitted_at),
            "started_at": self._time(job.first_started_at),
            "finished_at": self._time(job.finished_at),
            "agent": agent,
        }

    # --- agents ------------------------------------------------------------------------

    def _agents(
        self, simulation: Simulation, query: dict[str, list[str]], url: str
    ) -> tuple[int, Any, dict[str, str]]:
        page = _page_number(query, "page", 1, None)
        per_page = _page_number(query, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
        agents = []
        for instance in simulation.instances():
            if not instance.active:
                continue
            for slot in sorted(instance.slots):
                summary = _agent_summary(
                    instance.agent_name(slot), instance.instance_id, instance.queue
                )
                summary["connection_state"] = "connected"
                summary["created_at"] = self._time(instance.registered_at)
                summary["job"] = (
                    {"id": instance.slots[slot]} if instance.slots[slot] is not None else None
                )
                agents.append(summary)
        start = (page - 1) * per_page
        headers = {}
        if start + per_page < len(agents):
            headers["Link"] = f'<{url}?page={page + 1}&per_page={per_page}>; rel="next"'
        return 200, agents[start : start + per_page], headers

    def _time(self, virtual: float | None) -> str | None:
        if virtual is None:
            return None
        moment = datetime.fromtimestamp(self.epoch + virtual, tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _agent_summary(name: str, instance_id: str, queue: str) -> dict[str, Any]:
    # The stack's agents run with tags-from-ec2-meta-data, which adds aws:instance-id.
    return {
        "id": name,
        "name": name,
        "hostname": instance_id,
        "meta_data": [f"queue={queue}", f"aws:instance-id={instance_id}"],
    }


def _page_number(query: dict[str, list[str]], key: str, default: int, maximum: int | None) -> int:
    raw = (query.get(key) or [str(default)])[0]
    if not raw.isdigit() or int(raw) < 1:
        raise ControlError(422, f"Validation Failed: {key} must be a whole number >= 1")
    return min(int(raw), maximum) if maximum is not None else int(raw)


def _step_jobs(configuration: Any) -> tuple[StepJob, ...]:
    """The jobs one build creates, from the pipeline's YAML configuration."""
    if not isinstance(configuration, str) or not configuration.strip():
        raise ControlError(422, "Validation Failed: configuration can't be blank")
    try:
        document = yaml.safe_load(configuration)
    except yaml.YAMLError as error:
        raise ControlError(422, f"Validation Failed: configuration is not YAML: {error}") from None
    steps = document.get("steps") if isinstance(document, dict) else None
    if not isinstance(steps, list) or not steps:
        raise ControlError(422, "Validation Failed: configuration needs a list of steps")
    jobs = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or not ({"command", "commands"} & set(step)):
            raise ControlError(
                422, f"Validation Failed: step {index + 1}: the emulator runs command steps only"
            )
        commands = step.get("commands", step.get("command"))
        command = "\n".join(commands) if isinstance(commands, list) else str(commands)
        parallelism = step.get("parallelism", 1)
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
            raise ControlError(
                422, f"Validation Failed: step {index + 1}: parallelism must be >= 1"
            )
        label = str(step.get("label") or step.get("name") or command.splitlines()[0])
        for _ in range(parallelism):
            jobs.append(StepJob(label, step.get("key"), command, _queue(step), _duration(command)))
    return tuple(jobs)


def _queue(step: dict[str, Any]) -> str:
    agents = step.get("agents")
    if isinstance(agents, dict) and agents.get("queue"):
        return str(agents["queue"])
    if isinstance(agents, list):
        for rule in agents:
            key, _, value = str(rule).partition("=")
            if key == "queue" and value:
                return value
    return "default"


def _duration(command: str) -> float:
    seconds = [float(match) for match in _SLEEP.findall(command)]
    total = math.fsum(seconds)
    return total if total > 0 else DEFAULT_JOB_S
