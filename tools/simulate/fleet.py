"""The simulated world: a job queue, an Auto Scaling group, its instances and their agents.

What it models (all times virtual seconds):

- Jobs wait in one first-in first-out queue; a free agent takes the head of the queue the
  moment it is free. When several agents are idle, the one that takes a job is chosen at
  random (Buildkite hands a job to whichever idle agent asks first).
- The group launches instances while fewer than ``desired_capacity`` are Pending or
  InService. An instance is InService ``in_service_delay_s`` after launch (capped by its
  boot delay) and registers ``agents_per_instance`` agents when it has booted.
- All agents of an instance share one agent process (``spawn``): when every agent has been
  idle for ``scale_in_idle_period_s`` the process exits and the instance terminates itself
  with ``TerminateInstanceInAutoScalingGroup`` and decrement (without decrement when that
  would go below MinSize, so the group replaces it), like the stack's ``terminate-instance``.
- A terminating lifecycle hook (the project has one, the reference stack has none) turns
  every termination into a drain: the agent takes no new jobs, running jobs finish (until
  the hook's grace period ends), then the instance goes. Without the hook, or when the
  grace period ends first, running jobs are interrupted and go back to the end of the queue.
- When desired capacity drops below the Pending + InService count, the group terminates
  unprotected instances chosen at random; protected instances are never picked.
- Billing: compute while an instance runs (from launch, or from leaving the warm pool,
  until it is gone or stopped); its root volume (EBS) from launch until it is gone, also
  while it is stopped in the warm pool. ``instance_seconds`` are the compute seconds.
- Warm pool (``EnableWarmPool``): a pool of prepared instances beside the group, not part
  of its desired capacity. The pool keeps max(WarmPoolMinSize, MaxGroupPreparedCapacity -
  desired capacity) instances, counting instances on their way back into it; unset
  MaxGroupPreparedCapacity means MaxSize. A fixed ``WarmPoolMaxPreparedCapacity`` (>= 0)
  sets it; with -1 the scaler sets it (``set_warm_pool_max_prepared_capacity``) and it
  starts at MinSize, what the scaler sets on an idle group. A new warm instance runs its
  full boot (``Warmed:Pending``, paid compute), then stops (``Warmed:Stopped`` or
  ``Warmed:Hibernated``: EBS only; hibernation keeps the RAM on the root volume, the same
  EBS price). The pool shrinks by terminating its newest instances. When the group needs
  instances it takes stopped pool instances first (oldest first), which register their
  agents after a resume delay (``ResumeDelay*``; a hibernated one 0.5 s sooner), and
  launches cold ones for the rest. With ``WarmPoolReuseOnScaleIn`` an instance whose
  termination completes (its jobs finished through the lifecycle hook) goes back into the
  pool when the pool has room, instead of terminating: it stops after
  ``instance_shutdown_s``. EC2 reports a resumed instance's LaunchTime as its last start.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from tools.simulate.config import HIBERNATED_RESUME_SAVING_S, SimConfig
from tools.simulate.engine import FLEET, TIMER, EventEngine

# Auto Scaling lifecycle states the simulator uses (the names DescribeAutoScalingGroups uses).
PENDING = "Pending"
IN_SERVICE = "InService"
TERMINATING_WAIT = "Terminating:Wait"
TERMINATING = "Terminating"
TERMINATED = "Terminated"
ACTIVE_STATES = (PENDING, IN_SERVICE)
WARMED_PENDING = "Warmed:Pending"
WARMED_STOPPED = "Warmed:Stopped"
WARMED_HIBERNATED = "Warmed:Hibernated"
READY_WARM_STATES = (WARMED_STOPPED, WARMED_HIBERNATED)

# The agent process on an instance.
AGENT_BOOTING = "booting"
AGENT_RUNNING = "running"
# The project's lifecycle handler unprotects an instance once its agents have been idle this
# long (packer/conf/bin/bk-lifecycle-handler), and protects it again when a job starts.
REPORT_IDLE_AFTER_S = 30.0
AGENT_STOPPING = "stopping"  # takes no new jobs; running jobs finish
AGENT_STOPPED = "stopped"


class FleetError(RuntimeError):
    """A request the real group would reject (e.g. desired capacity out of bounds)."""


@dataclass(eq=False, slots=True)
class Job:
    """One job from the trace and what happened to it."""

    job_id: int
    submit_s: float
    duration_s: float
    queued_at: float = 0.0
    wait_s: float = 0.0
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(eq=False, slots=True)
class Instance:
    """One EC2 instance of the group and its agents (one slot per agent)."""

    instance_id: str
    launched_at: float
    boot_delay_s: float
    protected_from_scale_in: bool
    slots: list[Job | None]
    lifecycle_state: str = PENDING
    agent_state: str = AGENT_BOOTING
    idle_generation: int = 0
    terminated_at: float | None = None
    drained: bool = False
    grace_generation: int = 0
    created_at: float = 0.0
    running_since: float | None = None
    running_seconds: float = 0.0
    life: int = 0  # counts starts: callbacks of an earlier start do nothing
    resumes: int = 0
    last_active_at: float | None = None  # agents registered, or a job last ended

    def reports_idle(self, now: float) -> bool:
        """Whether the instance's lifecycle handler reports it idle (not protected from
        scale-in): agents running, none busy, for REPORT_IDLE_AFTER_S seconds."""
        return (
            self.agent_state == AGENT_RUNNING
            and self.busy_agents == 0
            and self.last_active_at is not None
            and now - self.last_active_at >= REPORT_IDLE_AFTER_S
        )

    def start_running(self, now: float) -> None:
        if self.running_since is None:
            self.running_since = now

    def stop_running(self, now: float) -> None:
        if self.running_since is not None:
            self.running_seconds += now - self.running_since
            self.running_since = None

    def compute_seconds(self, until: float) -> float:
        live = 0.0 if self.running_since is None else max(until - self.running_since, 0.0)
        return self.running_seconds + live

    @property
    def busy_agents(self) -> int:
        return sum(1 for job in self.slots if job is not None)

    @property
    def idle_agents(self) -> int:
        """Agents connected and free to take a job."""
        if self.agent_state != AGENT_RUNNING:
            return 0
        return sum(1 for job in self.slots if job is None)


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What the Buildkite agent metrics API reports for the queue right now."""

    scheduled_jobs: int
    running_jobs: int
    waiting_jobs: int
    idle_agents: int
    busy_agents: int
    total_agents: int


class Fleet:
    """The queue, the group and its instances, driven by an ``EventEngine``."""

    def __init__(
        self,
        engine: EventEngine,
        config: SimConfig,
        *,
        lifecycle_hook: bool,
        seed: int = 0,
    ) -> None:
        self.engine = engine
        self.config = config
        self.lifecycle_hook = lifecycle_hook
        self.desired_capacity = config.min_size
        self.min_size = config.min_size
        self.max_size = config.max_size
        self.queue: deque[Job] = deque()
        self.instances: dict[str, Instance] = {}
        self.warm_instances: dict[str, Instance] = {}
        self.finished_jobs: list[Job] = []
        self.interrupted_jobs = 0
        self.launches = 0
        self.warm_launches = 0
        self.resumes = 0
        self.returned_to_pool = 0
        self.retired_running_seconds = 0.0
        self.retired_volume_seconds = 0.0
        self._live: dict[str, Instance] = {}  # every instance with a volume: group, pool, leaving
        self.warm_pool_enabled = config.enable_warm_pool
        fixed = config.warm_pool_max_prepared_capacity
        self.warm_pool_max_prepared_capacity: int | None = fixed if fixed >= 0 else config.min_size
        self._resume_shift, self._resume_mu, self._resume_sigma = config.resume_delay.parameters()
        self._boot_rng = random.Random(f"{seed}:boot")  # noqa: S311 - simulation, not security
        self._dispatch_rng = random.Random(f"{seed}:dispatch")  # noqa: S311 - simulation, not security
        self._scale_in_rng = random.Random(f"{seed}:scale-in")  # noqa: S311 - simulation, not security
        self._instance_numbers = 0
        self._boot_shift, self._boot_mu, self._boot_sigma = config.boot_delay.parameters()
        self.reconcile()

    # -- the queue -------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """A job becomes scheduled: it waits in the queue until an agent is free."""
        job.queued_at = self.engine.now
        self.queue.append(job)
        self._dispatch()

    def snapshot(self) -> QueueSnapshot:
        """The queue metrics an API call would return now."""
        busy = idle = 0
        for instance in self.instances.values():
            busy += instance.busy_agents
            idle += instance.idle_agents
        return QueueSnapshot(
            scheduled_jobs=len(self.queue),
            running_jobs=busy,
            waiting_jobs=0,
            idle_agents=idle,
            busy_agents=busy,
            total_agents=idle + busy,
        )

    def _dispatch(self) -> None:
        if not self.queue:
            return
        free = [
            (instance, slot)
            for instance in self.instances.values()
            if instance.agent_state == AGENT_RUNNING
            for slot, job in enumerate(instance.slots)
            if job is None
        ]
        while self.queue and free:
            index = self._dispatch_rng.randrange(len(free)) if len(free) > 1 else 0
            free[index], free[-1] = free[-1], free[index]
            instance, slot = free.pop()
            self._start(instance, slot, self.queue.popleft())

    def _start(self, instance: Instance, slot: int, job: Job) -> None:
        now = self.engine.now
        job.wait_s += now - job.queued_at
        job.attempts += 1
        job.started_at = now
        instance.slots[slot] = job
        instance.idle_generation += 1  # cancels a pending idle timer
        attempt = job.attempts
        self.engine.after(job.duration_s, lambda: self._finish(instance, slot, job, attempt), FLEET)

    def _finish(self, instance: Instance, slot: int, job: Job, attempt: int) -> None:
        if instance.slots[slot] is not job or job.attempts != attempt:
            return  # this attempt was interrupted; the job went back to the queue
        instance.slots[slot] = None
        instance.last_active_at = self.engine.now
        job.finished_at = self.engine.now
        self.finished_jobs.append(job)
        if instance.agent_state == AGENT_RUNNING:
            self._dispatch()
            self._arm_idle_timer(instance)
        elif instance.lifecycle_state == TERMINATING_WAIT and instance.busy_agents == 0:
            self._complete_lifecycle_action(instance)

    # -- the group -------------------------------------------------------------------------

    @property
    def active_instances(self) -> list[Instance]:
        """Instances the group counts towards desired capacity (Pending and InService)."""
        return [i for i in self.instances.values() if i.lifecycle_state in ACTIVE_STATES]

    def set_desired_capacity(self, value: int) -> None:
        """SetDesiredCapacity: the group launches or scales in towards ``value``."""
        if not self.min_size <= value <= self.max_size:
            raise FleetError(
                f"desired capacity {value} is outside [{self.min_size}, {self.max_size}]"
            )
        self.desired_capacity = value
        self.reconcile()

    def terminate_instance(self, instance_id: str, *, decrement: bool) -> bool:
        """TerminateInstanceInAutoScalingGroup; False where the real call would fail."""
        instance = self.instances.get(instance_id)
        if instance is None or instance.lifecycle_state not in ACTIVE_STATES:
            return False
        if decrement:
            if self.desired_capacity - 1 < self.min_size:
                return False
            self.desired_capacity -= 1
        self._begin_termination(instance)
        self.reconcile()
        return True

    def drain(self, instance_id: str) -> bool:
        """The project's drain: terminate with decrement through the lifecycle hook."""
        instance = self.instances.get(instance_id)
        ok = self.terminate_instance(instance_id, decrement=True)
        if ok and instance is not None:
            instance.drained = True
        return ok

    def reconcile(self) -> None:
        """Launch (warm pool first) or scale in until the active count matches desired."""
        active = self.active_instances
        shortfall = self.desired_capacity - len(active)
        for _ in range(shortfall):
            ready = self._ready_warm_instance()
            if ready is not None:
                self._resume(ready)
            else:
                self._launch()
        if shortfall < 0:
            candidates = [i for i in active if not i.protected_from_scale_in]
            self._scale_in_rng.shuffle(candidates)
            for instance in candidates[:-shortfall]:
                self._begin_termination(instance)
        self._refill_warm_pool()

    def _new_instance(self, boot: float) -> Instance:
        now = self.engine.now
        self._instance_numbers += 1
        instance = Instance(
            instance_id=f"i-{self._instance_numbers:08d}",
            launched_at=now,
            boot_delay_s=boot,
            protected_from_scale_in=self.config.instance_scale_in_protection,
            slots=[None] * self.config.agents_per_instance,
            created_at=now,
        )
        instance.start_running(now)
        self._live[instance.instance_id] = instance
        return instance

    def _launch(self) -> None:
        self.launches += 1
        boot = self._draw_boot_delay()
        instance = self._new_instance(boot)
        self.instances[instance.instance_id] = instance
        self._schedule_start(instance, boot)

    def _schedule_start(self, instance: Instance, delay: float) -> None:
        life = instance.life
        in_service = min(self.config.in_service_delay_s, delay)
        self.engine.after(in_service, lambda: self._in_service(instance, life), FLEET)
        self.engine.after(delay, lambda: self._agents_registered(instance, life), FLEET)

    def _draw_boot_delay(self) -> float:
        if self._boot_sigma == 0.0:
            return max(self._boot_shift, 0.0)
        draw = self._boot_shift + self._boot_rng.lognormvariate(self._boot_mu, self._boot_sigma)
        return max(draw, 1.0)

    def _draw_resume_delay(self) -> float:
        if self._resume_sigma == 0.0:
            draw = self._resume_shift
        else:
            draw = self._resume_shift + self._boot_rng.lognormvariate(
                self._resume_mu, self._resume_sigma
            )
        if self.config.warm_pool_state == "Hibernated":
            draw -= HIBERNATED_RESUME_SAVING_S
        return max(draw, 1.0)

    def _in_service(self, instance: Instance, life: int) -> None:
        if instance.life == life and instance.lifecycle_state == PENDING:
            instance.lifecycle_state = IN_SERVICE

    def _agents_registered(self, instance: Instance, life: int) -> None:
        if instance.life != life or instance.agent_state != AGENT_BOOTING:
            return  # terminated while booting
        instance.agent_state = AGENT_RUNNING
        instance.last_active_at = self.engine.now
        self._dispatch()
        self._arm_idle_timer(instance)

    # -- the warm pool ---------------------------------------------------------------------

    def warm_pool_size(self) -> int:
        """How many instances the pool keeps now (0 without a pool)."""
        if not self.warm_pool_enabled:
            return 0
        prepared = self.warm_pool_max_prepared_capacity
        if prepared is None:
            prepared = self.max_size
        return max(self.config.warm_pool_min_size, prepared - self.desired_capacity)

    def set_warm_pool_max_prepared_capacity(self, value: int | None) -> None:
        """PutWarmPool with a new MaxGroupPreparedCapacity (None = unset, i.e. MaxSize)."""
        if not self.warm_pool_enabled:
            raise FleetError("the group has no warm pool")
        if value is not None and not 0 <= value <= self.max_size:
            raise FleetError(f"MaxGroupPreparedCapacity {value} is outside [0, {self.max_size}]")
        self.warm_pool_max_prepared_capacity = value
        self._refill_warm_pool()

    def _returning_to_pool(self) -> int:
        """Group instances whose termination will put them back into the pool."""
        if not self.config.warm_pool_reuse_on_scale_in:
            return 0
        return sum(1 for i in self.instances.values() if i.lifecycle_state == TERMINATING_WAIT)

    def _refill_warm_pool(self) -> None:
        if not self.warm_pool_enabled:
            return
        size = self.warm_pool_size()
        missing = size - len(self.warm_instances) - self._returning_to_pool()
        for _ in range(missing):
            self._launch_warm()
        surplus = len(self.warm_instances) - size
        if surplus > 0:
            newest = sorted(self.warm_instances.values(), key=lambda i: -i.created_at)
            for instance in newest[:surplus]:
                del self.warm_instances[instance.instance_id]
                instance.lifecycle_state = TERMINATING
                self._finish_termination(instance)

    def _launch_warm(self) -> None:
        self.warm_launches += 1
        boot = self._draw_boot_delay()
        instance = self._new_instance(boot)
        instance.lifecycle_state = WARMED_PENDING
        instance.agent_state = AGENT_STOPPED
        self.warm_instances[instance.instance_id] = instance
        life = instance.life
        self.engine.after(boot, lambda: self._warm_stopped(instance, life), FLEET)

    def _warm_stopped(self, instance: Instance, life: int) -> None:
        if instance.life != life or instance.instance_id not in self.warm_instances:
            return
        instance.stop_running(self.engine.now)
        stopped = self.config.warm_pool_state == "Hibernated"
        instance.lifecycle_state = WARMED_HIBERNATED if stopped else WARMED_STOPPED

    def _ready_warm_instance(self) -> Instance | None:
        ready = [i for i in self.warm_instances.values() if i.lifecycle_state in READY_WARM_STATES]
        if not ready:
            return None
        return min(ready, key=lambda i: (i.created_at, i.instance_id))

    def _resume(self, instance: Instance) -> None:
        """A stopped pool instance joins the group: it starts and its agents register."""
        now = self.engine.now
        del self.warm_instances[instance.instance_id]
        self.resumes += 1
        instance.resumes += 1
        instance.life += 1
        instance.launched_at = now
        instance.lifecycle_state = PENDING
        instance.agent_state = AGENT_BOOTING
        instance.drained = False
        instance.protected_from_scale_in = self.config.instance_scale_in_protection
        instance.start_running(now)
        delay = self._draw_resume_delay()
        instance.boot_delay_s = delay
        self.instances[instance.instance_id] = instance
        self._schedule_start(instance, delay)

    def _return_to_pool(self, instance: Instance) -> None:
        """ReuseOnScaleIn: the instance stops and waits in the pool instead of terminating."""
        self.returned_to_pool += 1
        del self.instances[instance.instance_id]
        instance.life += 1
        instance.lifecycle_state = WARMED_PENDING
        instance.agent_state = AGENT_STOPPED
        self.warm_instances[instance.instance_id] = instance
        life = instance.life
        self.engine.after(
            self.config.instance_shutdown_s, lambda: self._warm_stopped(instance, life), FLEET
        )

    # -- leaving ---------------------------------------------------------------------------

    def _arm_idle_timer(self, instance: Instance) -> None:
        period = self.config.scale_in_idle_period_s
        if period <= 0 or instance.agent_state != AGENT_RUNNING or instance.busy_agents:
            return  # the agent's idle timeout 0 means "never disconnect"
        instance.idle_generation += 1
        generation = instance.idle_generation
        self.engine.after(period, lambda: self._idle_expired(instance, generation), TIMER)

    def _idle_expired(self, instance: Instance, generation: int) -> None:
        if generation != instance.idle_generation or instance.agent_state != AGENT_RUNNING:
            return
        if instance.busy_agents:
            return
        instance.agent_state = AGENT_STOPPED
        if instance.lifecycle_state not in ACTIVE_STATES:
            return  # already terminating (e.g. a drain began)
        # terminate-instance: with decrement, else without (the group then replaces it).
        if not self.terminate_instance(instance.instance_id, decrement=True):
            self.terminate_instance(instance.instance_id, decrement=False)

    def _begin_termination(self, instance: Instance) -> None:
        if not self.lifecycle_hook:
            instance.lifecycle_state = TERMINATING
            instance.agent_state = AGENT_STOPPED
            self._interrupt_jobs(instance)
            self._complete_lifecycle_action(instance)
            return
        instance.lifecycle_state = TERMINATING_WAIT
        if instance.agent_state in (AGENT_RUNNING, AGENT_BOOTING):
            instance.agent_state = AGENT_STOPPING
        if instance.busy_agents == 0:
            self._complete_lifecycle_action(instance)
            return
        instance.grace_generation += 1
        generation = instance.grace_generation
        grace = self.config.instance_termination_grace_period_s
        self.engine.after(grace, lambda: self._grace_expired(instance, generation), FLEET)

    def _grace_expired(self, instance: Instance, generation: int) -> None:
        if instance.lifecycle_state == TERMINATING_WAIT and generation == instance.grace_generation:
            instance.agent_state = AGENT_STOPPED
            self._interrupt_jobs(instance)
            self._complete_lifecycle_action(instance)

    def _complete_lifecycle_action(self, instance: Instance) -> None:
        instance.lifecycle_state = TERMINATING
        instance.agent_state = AGENT_STOPPED
        if self._pool_takes(instance):
            self._return_to_pool(instance)
            self._refill_warm_pool()
            return
        self._finish_termination(instance)
        self._refill_warm_pool()

    def _pool_takes(self, instance: Instance) -> bool:
        if not (self.warm_pool_enabled and self.config.warm_pool_reuse_on_scale_in):
            return False
        if instance.instance_id not in self.instances:
            return False
        waiting = self._returning_to_pool()  # excludes this one: it is Terminating now
        return len(self.warm_instances) + waiting < self.warm_pool_size()

    def _finish_termination(self, instance: Instance) -> None:
        self.engine.after(self.config.instance_shutdown_s, lambda: self._gone(instance), FLEET)

    def _gone(self, instance: Instance) -> None:
        now = self.engine.now
        instance.lifecycle_state = TERMINATED
        instance.terminated_at = now
        instance.stop_running(now)
        self.retired_running_seconds += instance.running_seconds
        self.retired_volume_seconds += now - instance.created_at
        self.instances.pop(instance.instance_id, None)
        self.warm_instances.pop(instance.instance_id, None)
        self._live.pop(instance.instance_id, None)

    def _interrupt_jobs(self, instance: Instance) -> None:
        now = self.engine.now
        for slot, job in enumerate(instance.slots):
            if job is None:
                continue
            instance.slots[slot] = None
            self.interrupted_jobs += 1
            job.started_at = None
            job.queued_at = now
            self.queue.append(job)
        self._dispatch()

    # -- accounting ------------------------------------------------------------------------

    def instance_seconds(self, until: float) -> float:
        """Billed compute instance-seconds so far, counting live instances up to ``until``."""
        live = sum(instance.compute_seconds(until) for instance in self._live.values())
        return self.retired_running_seconds + live

    def volume_seconds(self, until: float) -> float:
        """Root-volume-seconds so far (every instance that exists, running or stopped)."""
        live = sum(max(until - instance.created_at, 0.0) for instance in self._live.values())
        return self.retired_volume_seconds + live

    def live_instance_count(self) -> int:
        """Group instances (not the warm pool's)."""
        return len(self.instances)

    def warm_instance_count(self) -> int:
        return len(self.warm_instances)
