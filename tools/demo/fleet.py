"""The instances of the demo's Auto Scaling group, living out what the AMI's scripts do.

moto launches an instance the moment desired capacity rises and reports it InService at once.
This module plays the instance's part on the virtual clock: once the boot delay has passed,
its agents connect (they register with the Buildkite emulator, where they take jobs); when all
of them have been idle for ScaleInIdlePeriod they disconnect and the instance terminates itself
through the Auto Scaling API with ShouldDecrementDesiredCapacity, as the ``terminate-instance``
script does. An instance the group removes by itself (a drain, when scale-in is enabled) goes
through the terminating lifecycle hook: its agents stop gracefully, finishing running jobs.

With a warm pool (``tools.demo.warm_pool``, which moto does not emulate) an instance moto adds
to the group is played as one taken from the pool: it connects its agents after the resume
delay instead of the cold boot delay. An instance leaving on a scale-in goes back to the pool
when ``ReuseOnScaleIn`` holds (moto has terminated it; the demo keeps it in the pool).

Scale-in protection: the instance's lifecycle handler reports idleness to the scaler through
the instance's ProtectedFromScaleIn. Once its agents are connected, the fleet keeps it true
while any agent runs a job or finished one less than ``PROTECTION_GRACE_S`` ago, and sets it
false once all have been idle that long, with SetInstanceProtection in moto, only when it
changes (moto stores it and DescribeAutoScalingGroups reports it, which is what the scaler's
idle-tail rule reads). Before its agents connect an instance keeps the group's
NewInstancesProtectedFromScaleIn. The grace is the handler's own constant in virtual seconds:
unlike ScaleInIdlePeriod it is not compressed (the demo's clock is real seconds, paced).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.buildkite_emulator import EmulatorControl
from tools.demo.warm_pool import PoolSettings, WarmPoolEmulation

IDLE_OUT = "idle: terminated itself"
REMOVED_BY_GROUP = "removed by the group: agents stopped gracefully"
RETURNED_TO_POOL = "returned to the warm pool (ReuseOnScaleIn)"
# The on-instance lifecycle handler's grace (packer/conf/bin/bk-lifecycle-handler; the
# simulator's REPORT_IDLE_AFTER_S): an instance whose agents have all been idle this long
# (virtual seconds) is no longer protected from scale-in.
PROTECTION_GRACE_S = 30.0
COLD = "cold"
RESUMED = "resumed"
# Taken from the pool while still warming: it finishes its preparation, then resumes.
WARMING = "taken while warming"


@dataclass
class InstanceLife:
    """One instance's times on the virtual clock (None: has not happened yet)."""

    instance_id: str
    in_service_at: float
    boot_delay_s: float = 0.0
    # COLD: a new instance booting; RESUMED: a prepared one taken from the warm pool; WARMING:
    # one taken from the pool before it was prepared.
    start: str = COLD
    resumed_from: str | None = None
    registered_at: float | None = None
    left_at: float | None = None
    how_left: str | None = None
    # ProtectedFromScaleIn as moto last reported it (None: not seen in the group yet), how often
    # the handler set it false (idle for the grace) and back to true (took a job), and whether
    # it was false when the group removed the instance.
    protected: bool | None = None
    protection_dropped: int = 0
    protection_restored: int = 0
    unprotected_when_removed: bool | None = None
    # The group removed it (a drain by the scaler): it went through the terminating hook.
    removed_by_group: bool = False

    @property
    def alive(self) -> bool:
        return self.left_at is None


@dataclass(frozen=True)
class GroupSnapshot:
    desired_capacity: int
    in_service: int
    pending: int


class EmulatedFleet:
    """Boots, runs and retires the group's instances; ``step(now)`` once per tick."""

    def __init__(
        self,
        *,
        autoscaling: Any,
        control: EmulatorControl,
        group_name: str,
        queue: str,
        agents_per_instance: int,
        boot_delay_s: float,
        idle_period_s: float,
        log: Callable[[float, str], None],
        warm_pool: WarmPoolEmulation | None = None,
        protection_grace_s: float = PROTECTION_GRACE_S,
    ) -> None:
        self._autoscaling = autoscaling
        self._control = control
        self._group_name = group_name
        self._queue = queue
        self._agents_per_instance = agents_per_instance
        self._boot_delay_s = boot_delay_s
        self._idle_period_s = idle_period_s
        self._log = log
        self.warm_pool = warm_pool
        self._protection_grace_s = protection_grace_s
        self.lives: dict[str, InstanceLife] = {}
        self.group = GroupSnapshot(0, 0, 0)

    @property
    def alive(self) -> list[InstanceLife]:
        return [life for life in self.lives.values() if life.alive]

    def step(self, now: float) -> None:
        """Bring the instances up to ``now``: boot, connect agents, idle out, leave."""
        group = self._describe_group()
        in_group = {item["InstanceId"]: item["LifecycleState"] for item in group["Instances"]}
        in_service = [iid for iid, state in in_group.items() if state == "InService"]
        protection = {
            item["InstanceId"]: bool(item["ProtectedFromScaleIn"])
            for item in group["Instances"]
            if "ProtectedFromScaleIn" in item
        }
        self.group = _snapshot(group)
        if self.warm_pool is not None:
            self._read_pool_settings()
        for instance_id in in_service:
            if instance_id not in self.lives:
                self.lives[instance_id] = self._launched(instance_id, now)
        emulated = {record.instance_id: record for record in self._control.instances(self._queue)}
        terminated = False
        for life in self.alive:
            if life.instance_id in protection:
                life.protected = protection[life.instance_id]
        for life in self.alive:
            record = emulated.get(life.instance_id)
            if life.instance_id not in in_group:
                self._removed_by_group(life, record, now)
            elif life.registered_at is None:
                if now >= life.in_service_at + life.boot_delay_s:
                    self._control.register_instance(
                        life.instance_id, self._queue, self._agents_per_instance
                    )
                    life.registered_at = now
                    self._log(
                        now,
                        f"{life.instance_id} {'booted' if life.start == COLD else 'resumed'}: "
                        f"{self._agents_per_instance} agent(s) connected"
                        + (
                            "; its script completes the instance_launching hook (moto runs no "
                            "lifecycle actions)"
                            if self.warm_pool is not None
                            else ""
                        ),
                    )
            elif record is not None and self._idled_out(record, now):
                self._terminate_itself(life, now)
                terminated = True
        self._report_idleness(now, emulated, set(in_group))
        if terminated:
            self.group = _snapshot(self._describe_group())
        if self.warm_pool is not None:
            for line in self.warm_pool.advance(now, self.group.desired_capacity):
                self._log(now, f"warm pool: {line}")

    def _report_idleness(self, now: float, emulated: dict[str, Any], in_group: set[str]) -> None:
        """The lifecycle handler's part: ProtectedFromScaleIn follows the agents' idleness.

        Set only when it changes; one log line per step with the counts (not one per call).
        """
        dropped: list[str] = []
        restored: list[str] = []
        for life in self.alive:
            record = emulated.get(life.instance_id)
            if life.instance_id not in in_group or life.registered_at is None:
                continue
            if life.protected is None or record is None or record.state != "running":
                continue
            wanted = not self._idle_for(record, now, self._protection_grace_s)
            if wanted == life.protected:
                continue
            self._autoscaling.set_instance_protection(
                AutoScalingGroupName=self._group_name,
                InstanceIds=[life.instance_id],
                ProtectedFromScaleIn=wanted,
            )
            life.protected = wanted
            if wanted:
                life.protection_restored += 1
                restored.append(life.instance_id)
            else:
                life.protection_dropped += 1
                dropped.append(life.instance_id)
        if not dropped and not restored:
            return
        changes = []
        if dropped:
            changes.append(
                f"off for {len(dropped)} idle {self._protection_grace_s:g} s ({', '.join(dropped)})"
            )
        if restored:
            changes.append(f"on for {len(restored)} that took a job ({', '.join(restored)})")
        members = [life for life in self.alive if life.instance_id in in_group]
        unprotected = sum(1 for life in members if life.protected is False)
        self._log(
            now,
            f"scale-in protection (SetInstanceProtection): {'; '.join(changes)}; "
            f"{unprotected} of {len(members)} in the group unprotected",
        )

    def _launched(self, instance_id: str, now: float) -> InstanceLife:
        taken = self.warm_pool.take(now) if self.warm_pool is not None else None
        if taken is None:
            self._log(now, f"{instance_id} launched (InService in moto), booting cold")
            return InstanceLife(instance_id, now, boot_delay_s=self._boot_delay_s)
        source = taken.instance.instance_id
        self._log(
            now,
            f"{instance_id} launched (InService in moto); played as warm pool instance {source} "
            f"({taken.instance.state}) resuming: agents connect in {taken.agents_in_s:g} s",
        )
        return InstanceLife(
            instance_id,
            now,
            boot_delay_s=taken.agents_in_s,
            start=RESUMED if taken.was_prepared else WARMING,
            resumed_from=source,
        )

    def _read_pool_settings(self) -> None:
        assert self.warm_pool is not None
        response = self._autoscaling.describe_warm_pool(AutoScalingGroupName=self._group_name)
        configuration = response.get("WarmPoolConfiguration")
        if configuration:
            self.warm_pool.settings = PoolSettings.from_describe(configuration)

    def _left(self, life: InstanceLife, now: float, how: str) -> None:
        """The instance left the group: terminated, or back to the warm pool when reused."""
        life.left_at = now
        life.how_left = how
        if self.warm_pool is None:
            return
        desired = _snapshot(self._describe_group()).desired_capacity
        if self.warm_pool.give_back(now, life.instance_id, desired):
            life.how_left = RETURNED_TO_POOL
            self._log(
                now,
                f"{life.instance_id} returned to the warm pool (ReuseOnScaleIn): stopping "
                "(moto terminated it; the demo keeps it in its pool)",
            )

    def _idled_out(self, record: Any, now: float) -> bool:
        return self._idle_for(record, now, self._idle_period_s)

    @staticmethod
    def _idle_for(record: Any, now: float, seconds: float) -> bool:
        """All the instance's agents have been idle for ``seconds`` (none runs a job)."""
        return (
            record.state == "running"
            and record.idle_since is not None
            and now - record.idle_since >= seconds
        )

    def _terminate_itself(self, life: InstanceLife, now: float) -> None:
        # The agents exit after their idle timeout; then terminate-instance runs.
        self._control.stop_instance(life.instance_id)
        self._autoscaling.terminate_instance_in_auto_scaling_group(
            InstanceId=life.instance_id, ShouldDecrementDesiredCapacity=True
        )
        self._log(
            now,
            f"{life.instance_id} idle for {self._idle_period_s:g} s: agents disconnected, "
            "TerminateInstanceInAutoScalingGroup (decrement)",
        )
        self._left(life, now, IDLE_OUT)

    def _removed_by_group(self, life: InstanceLife, record: Any, now: float) -> None:
        if not life.removed_by_group:
            life.removed_by_group = True
            life.unprotected_when_removed = life.protected is False
        if record is not None and record.state == "running":
            self._control.stop_instance(life.instance_id)
            busy = record.busy_agents
            self._log(
                now,
                f"{life.instance_id} removed by the group "
                f"({'unprotected' if life.protected is False else 'protected'} from scale-in): "
                "terminating lifecycle hook, agents stopping gracefully"
                + (f" ({busy} finishing a job first)" if busy else ""),
            )
            record = self._control.instance(life.instance_id)
        if record is None or record.state == "gone":
            self._left(life, now, REMOVED_BY_GROUP)

    def _describe_group(self) -> dict[str, Any]:
        response = self._autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[self._group_name]
        )
        return response["AutoScalingGroups"][0]


def _snapshot(group: dict[str, Any]) -> GroupSnapshot:
    states = [item["LifecycleState"] for item in group["Instances"]]
    return GroupSnapshot(
        desired_capacity=group["DesiredCapacity"],
        in_service=states.count("InService"),
        pending=sum(1 for state in states if state.startswith("Pending")),
    )
