"""The acceptance run's steps, its teardown, and the record the report is written from.

1. create a throwaway pipeline whose steps target the stack's queue;
2. put the agent token in a SecureString and deploy the stack;
3. trigger a build; follow its jobs and the group's instances until the long job runs and
   the burst is done;
4. update the stack so the launch template changes, and follow the long job to its end;
5. wait for the group to return to MinSize; then (also after a failure or Ctrl-C, unless
   ``keep``) cancel the build, delete the pipeline, the stack and the SecureString, and check
   that none of them is left.

Every outside call goes through ``Backends``: the Buildkite REST client, the AWS account, the
deployer and the clock, so the same steps run against a real account or emulators.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tools.acceptance.aws import AwsAccount, GroupView, ScalerDecision
from tools.acceptance.buildkite import BuildkiteRest
from tools.acceptance.deploy import Deployer, StackHandle, StackSettings
from tools.acceptance.measure import InstanceLog, InstanceTiming, JobTiming, job_timings
from tools.acceptance.workload import BURST_KEY, LONG_JOB_KEY, Workload

UPDATED_AGENT_TAGS = "acceptance=updated"
# Time for the burst to be taken once the stack is up (boots included), beyond the jobs' own.
START_TIMEOUT_S = 1800.0
# Time for the fleet to come back to MinSize after the last job, beyond ScaleInIdlePeriod.
SETTLE_TIMEOUT_S = 1800.0
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class StepFailed(RuntimeError):
    """A step's check or wait failed; the message says what was expected and what was seen."""


@dataclass(frozen=True)
class RunOptions:
    region: str
    organization: str
    stack_name: str
    queue: str
    workload: Workload
    agents_per_instance: int
    max_size: int
    scale_in_idle_period: int
    poll_interval_s: float
    repository: str
    keep: bool = False
    image_id: str | None = None
    cluster_id: str | None = None
    min_size: int = 0

    @property
    def token_parameter(self) -> str:
        return f"/{self.stack_name}/buildkite/agent-token"

    def stack_settings(self, agent_tags: str = "") -> StackSettings:
        return StackSettings(
            stack_name=self.stack_name,
            queue=self.queue,
            token_parameter=self.token_parameter,
            agents_per_instance=self.agents_per_instance,
            min_size=self.min_size,
            max_size=self.max_size,
            scale_in_idle_period=self.scale_in_idle_period,
            agent_tags=agent_tags,
            image_id=self.image_id,
        )


@dataclass(frozen=True)
class Backends:
    buildkite: BuildkiteRest
    aws: AwsAccount
    deployer: Deployer
    clock: Clock


@dataclass
class UpdateRecord:
    """Step 4: the launch template before and after, and the long job across it."""

    applied_at: float | None = None
    long_job_state: str | None = None
    version_before: str | None = None
    version_after: str | None = None
    user_data_changed: bool | None = None


@dataclass
class TeardownRecord:
    skipped: bool = False
    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    checked: bool = False


@dataclass
class RunRecord:
    """Everything the run saw; the report is written from it (it holds no secret)."""

    options: RunOptions
    started_at: float
    ended_at: float | None = None
    step: int = 0
    failure: str | None = None
    interrupted: bool = False
    pipeline_slug: str | None = None
    build_number: int | None = None
    parameter_created: bool = False
    stack_deployed: bool = False
    group_name: str | None = None
    scaler_log_group: str | None = None
    jobs: list[JobTiming] = field(default_factory=list)
    instances: list[InstanceTiming] = field(default_factory=list)
    decisions: list[ScalerDecision] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    update: UpdateRecord = field(default_factory=UpdateRecord)
    back_to_min_at: float | None = None
    final_desired_capacity: int | None = None
    teardown: TeardownRecord = field(default_factory=TeardownRecord)
    notes: list[str] = field(default_factory=list)

    def job(self, step_key: str) -> JobTiming | None:
        return next((job for job in self.jobs if job.step_key == step_key), None)


STEPS = {
    1: "create the pipeline",
    2: "deploy the stack",
    3: "run the build",
    4: "update the stack under the long job",
    5: "wait for the fleet to return to MinSize",
}


class AcceptanceRun:
    """Runs the steps once; ``run()`` always tears down (unless ``keep``) and returns the record."""

    def __init__(
        self,
        options: RunOptions,
        backends: Backends,
        agent_token: str,
        say: Callable[[str], None],
    ) -> None:
        self._options = options
        self._backends = backends
        self._agent_token = agent_token
        self._say = say
        self._instances = InstanceLog(options.queue)
        self._handle: StackHandle | None = None
        self.record = RunRecord(options=options, started_at=backends.clock.now())

    # --- the run -------------------------------------------------------------------------

    def run(self) -> RunRecord:
        record = self.record
        try:
            for number, action in (
                (1, self._create_pipeline),
                (2, self._deploy),
                (3, self._run_build),
                (4, self._update_under_long_job),
                (5, self._wait_for_min_size),
            ):
                record.step = number
                self._say(f"step {number}: {STEPS[number]}")
                action()
        except KeyboardInterrupt:
            record.interrupted = True
            self._say(f"interrupted in step {record.step}: tearing down")
        except Exception as error:
            record.failure = f"step {record.step} ({STEPS[record.step]}): {error}"
            self._say(f"failed: {record.failure}")
        with _interrupts_deferred():
            self._collect()
            self._teardown()
        record.instances = list(self._instances.instances.values())
        record.ended_at = self._backends.clock.now()
        return record

    # --- steps ---------------------------------------------------------------------------

    def _create_pipeline(self) -> None:
        options = self._options
        pipeline = self._backends.buildkite.create_pipeline(
            name=f"{options.stack_name} acceptance",
            repository=options.repository,
            configuration=options.workload.pipeline_configuration(options.queue),
            cluster_id=options.cluster_id,
        )
        self.record.pipeline_slug = pipeline["slug"]
        self._say(f"  pipeline {pipeline['slug']} (steps on queue {options.queue})")

    def _deploy(self) -> None:
        options = self._options
        self._backends.aws.put_secure_parameter(
            options.token_parameter,
            self._agent_token,
            f"Buildkite agent token of the acceptance run {options.stack_name}",
        )
        self.record.parameter_created = True
        self._say(f"  SecureString {options.token_parameter} (value not shown)")
        # Recorded before the call: a stack that fails half-way is deleted too.
        self.record.stack_deployed = True
        self._handle = self._backends.deployer.deploy(options.stack_settings())
        self.record.group_name = self._handle.group_name
        self.record.scaler_log_group = self._handle.scaler_log_group
        self._say(f"  stack {options.stack_name}: group {self._handle.group_name}")

    def _run_build(self) -> None:
        slug = self._require(self.record.pipeline_slug)
        build = self._backends.buildkite.create_build(
            slug, f"acceptance run of {self._options.stack_name}"
        )
        self.record.build_number = int(build["number"])
        self._say(f"  build #{build['number']}: {self._options.workload.job_count} jobs")
        workload = self._options.workload
        timeout = START_TIMEOUT_S + workload.short_job_s * math.ceil(
            workload.burst_jobs / max(1, self._options.max_size * self._options.agents_per_instance)
        )

        def long_job_running_and_burst_done() -> bool:
            long_job = self.record.job(LONG_JOB_KEY)
            burst = [job for job in self.record.jobs if job.step_key == BURST_KEY]
            if long_job is not None and long_job.done:
                raise StepFailed(
                    f"the long job ended ({long_job.state}) before the stack update could "
                    "start; give a larger --long-job-seconds"
                )
            return (
                long_job is not None
                and long_job.started_at is not None
                and all(job.done for job in burst)
            )

        self._watch(
            long_job_running_and_burst_done,
            timeout,
            "the long job to start and the burst to finish",
        )

    def _update_under_long_job(self) -> None:
        aws = self._backends.aws
        group_name = self._require(self.record.group_name)
        update = self.record.update
        before = self._launch_template(aws.group(group_name))
        long_job = self._require(self.record.job(LONG_JOB_KEY))
        update.long_job_state = long_job.state
        update.applied_at = self._backends.clock.now()
        self._say(f"  updating the stack (BuildkiteAgentTags={UPDATED_AGENT_TAGS})")
        self._backends.deployer.update(self._options.stack_settings(UPDATED_AGENT_TAGS))
        after = self._launch_template(aws.group(group_name))
        update.version_before, update.version_after = before[0], after[0]
        update.user_data_changed = before[1] != after[1]
        self._say(
            f"  launch template version {before[0]} -> {after[0]}, user data "
            f"{'changed' if update.user_data_changed else 'UNCHANGED'}"
        )
        if not update.user_data_changed:
            raise StepFailed("the stack update did not change the launch template's user data")

        def long_job_done() -> bool:
            job = self.record.job(LONG_JOB_KEY)
            return job is not None and job.done

        self._watch(
            long_job_done, self._options.workload.long_job_s + START_TIMEOUT_S, "the long job"
        )
        finished = self._require(self.record.job(LONG_JOB_KEY))
        self._say(f"  long job {finished.state}, exit status {finished.exit_status}")

    def _wait_for_min_size(self) -> None:
        options = self._options
        group_name = self._require(self.record.group_name)
        seen: dict[str, GroupView | None] = {}

        def back_to_min_size() -> bool:
            group = seen["group"] = self._backends.aws.group(group_name)
            return (
                group is not None
                and group.desired_capacity == options.min_size
                and len(group.instances) == options.min_size
                and all(job.done for job in self.record.jobs)
            )

        self._watch(
            back_to_min_size,
            options.scale_in_idle_period + SETTLE_TIMEOUT_S,
            f"the group to return to MinSize {options.min_size}",
        )
        self.record.back_to_min_at = self._backends.clock.now()
        group = seen.get("group")
        self.record.final_desired_capacity = group.desired_capacity if group else None

    # --- observing -----------------------------------------------------------------------

    def _observe(self) -> None:
        """One poll: the build's jobs, the group's instances, the organization's agents."""
        backends = self._backends
        now = backends.clock.now()
        if self.record.pipeline_slug is not None and self.record.build_number is not None:
            build = backends.buildkite.build(self.record.pipeline_slug, self.record.build_number)
            self.record.jobs = job_timings(build)
        if self.record.group_name is not None:
            group = backends.aws.group(self.record.group_name)
            self._instances.observe(now, group, backends.buildkite.agents())

    def _watch(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        clock = self._backends.clock
        deadline = clock.now() + timeout_s
        while True:
            self._observe()
            if done():
                return
            if clock.now() >= deadline:
                raise StepFailed(f"gave up waiting for {what} after {timeout_s:.0f} s")
            clock.sleep(self._options.poll_interval_s)

    def _launch_template(self, group: GroupView | None) -> tuple[str, str]:
        if group is None or not group.launch_template_id or not group.launch_template_version:
            raise StepFailed("the group or its launch template is missing")
        return self._backends.aws.launch_template_user_data(
            group.launch_template_id, group.launch_template_version
        )

    @staticmethod
    def _require(value: Any) -> Any:
        if value is None:
            raise StepFailed("an earlier step did not leave what this step needs")
        return value

    # --- after the steps -----------------------------------------------------------------

    def _collect(self) -> None:
        """The last poll, the scaler's decisions and the group's activities (before deletion)."""
        record = self.record
        with self._noted("the last poll"):
            self._observe()
        if record.scaler_log_group is not None:
            with self._noted("reading the scaler's decisions"):
                record.decisions = self._backends.aws.scaler_decisions(
                    record.scaler_log_group, since=record.started_at
                )
        if record.group_name is not None:
            with self._noted("reading the scaling activities"):
                record.activities = self._backends.aws.scaling_activities(record.group_name)

    def _teardown(self) -> None:
        record = self.record
        teardown = record.teardown
        if self._options.keep:
            teardown.skipped = True
            teardown.leftovers = self._what_exists()
            self._say("--keep: nothing deleted; left in place: " + ", ".join(teardown.leftovers))
            return
        self._say("teardown")
        backends = self._backends
        build = record.build_number
        unfinished = not record.jobs or not all(job.done for job in record.jobs)
        if record.pipeline_slug is not None and build is not None and unfinished:
            self._teardown_step(
                f"canceled build #{build}",
                lambda: backends.buildkite.cancel_build(self._slug(), build),
            )
        if record.pipeline_slug is not None:
            self._teardown_step(
                f"deleted pipeline {record.pipeline_slug}",
                lambda: backends.buildkite.delete_pipeline(self._slug()),
            )
        if record.stack_deployed:
            self._teardown_step(
                f"deleted stack {self._options.stack_name}", backends.deployer.delete
            )
            if record.group_name is not None:
                with self._noted("observing the group after deletion"):
                    now = backends.clock.now()
                    self._instances.observe(now, backends.aws.group(record.group_name), [])
        if record.parameter_created:
            self._teardown_step(
                f"deleted SecureString {self._options.token_parameter}",
                lambda: backends.aws.delete_parameter(self._options.token_parameter),
            )
        with self._noted("checking what is left"):
            teardown.leftovers = self._what_exists()
            teardown.checked = True
        for line in teardown.done:
            self._say(f"  {line}")
        for line in teardown.errors:
            self._say(f"  FAILED {line}")
        self._say("  left behind: " + (", ".join(teardown.leftovers) or "nothing"))

    def _what_exists(self) -> list[str]:
        """What this run created and still exists."""
        record, backends = self.record, self._backends
        found = []
        if record.pipeline_slug is not None and backends.buildkite.pipeline_exists(
            record.pipeline_slug
        ):
            found.append(f"pipeline {record.pipeline_slug}")
        if record.parameter_created and backends.aws.parameter_exists(
            self._options.token_parameter
        ):
            found.append(f"SecureString {self._options.token_parameter}")
        if record.stack_deployed:
            found.extend(backends.deployer.leftovers())
        if record.group_name is not None:
            found.extend(
                f"instance {instance_id}"
                for instance_id in backends.aws.instances_left(record.group_name)
            )
        return found

    def _teardown_step(self, what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as error:
            self.record.teardown.errors.append(f"{what.split(' ', 1)[1]}: {error}")
        else:
            self.record.teardown.done.append(what)

    def _slug(self) -> str:
        return self._require(self.record.pipeline_slug)

    @contextlib.contextmanager
    def _noted(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            self.record.notes.append(f"{what} failed: {error}")


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Ctrl-C or SIGTERM cannot cut the teardown short (it would leave resources behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
