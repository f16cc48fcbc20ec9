"""The group's warm pool, played by the demo because moto keeps none.

moto stores a warm pool's configuration (PutWarmPool, DescribeWarmPool's
``WarmPoolConfiguration``) but never launches an instance into it: DescribeWarmPool always
answers ``Instances: []``, a scale-out always launches a new instance, and a scale-in always
terminates. ``WarmPoolEmulation`` is what Amazon EC2 Auto Scaling does instead, on the demo's
virtual clock, from the configuration moto holds (so a PutWarmPool by the scaler takes effect):

- The pool's size follows the group: it keeps ``MaxGroupPreparedCapacity`` (the group's MaxSize
  when unset) minus the desired capacity instances, never fewer than ``MinSize``. Missing ones
  are launched into the pool (``Warmed:Pending``: the instance does its slow boot work, then
  stops) and become ``Warmed:Stopped`` (or ``Warmed:Hibernated``) after ``prepare_s``; a pool
  larger than that loses its newest instances first.
- A scale-out takes a prepared instance from the pool: it resumes (``resume_s`` until its agents
  connect) instead of booting cold; an instance still warming is taken after it finishes. An
  empty pool means a cold launch.
- With ``ReuseOnScaleIn``, an instance leaving the group on a scale-in goes back to the pool
  (stopping for ``return_s``) instead of terminating, when the pool has room for it.

Pure: no AWS calls, no clock of its own; the fleet calls it and logs what it reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WARMED_PENDING = "Warmed:Pending"
POOL_STATES = ("Stopped", "Hibernated")


@dataclass(frozen=True)
class PoolSettings:
    """The pool's configuration as DescribeWarmPool reports it."""

    min_size: int = 0
    max_group_prepared_capacity: int | None = None
    pool_state: str = "Stopped"
    reuse_on_scale_in: bool = False

    @classmethod
    def from_describe(cls, configuration: dict[str, Any]) -> PoolSettings:
        """From DescribeWarmPool's ``WarmPoolConfiguration``."""
        prepared = configuration.get("MaxGroupPreparedCapacity")
        reuse = configuration.get("InstanceReusePolicy") or {}
        return cls(
            min_size=int(configuration.get("MinSize") or 0),
            # -1 is how the API says "unset" when it is read back.
            max_group_prepared_capacity=(
                None if prepared is None or int(prepared) < 0 else int(prepared)
            ),
            pool_state=configuration.get("PoolState") or "Stopped",
            reuse_on_scale_in=_true(reuse.get("ReuseOnScaleIn", False)),
        )

    @property
    def warmed_state(self) -> str:
        return f"Warmed:{self.pool_state}"


@dataclass
class PoolInstance:
    instance_id: str
    state: str
    ready_at: float
    entered_at: float
    # True: came back from the group on a scale-in (ReuseOnScaleIn); False: launched into it.
    returned: bool = False

    @property
    def prepared(self) -> bool:
        return self.state != WARMED_PENDING


@dataclass(frozen=True)
class Taken:
    """A pool instance a scale-out took, and the seconds until its agents connect."""

    instance: PoolInstance
    agents_in_s: float
    # False: it was still warming (Warmed:Pending) and finishes that first.
    was_prepared: bool = True


@dataclass
class PoolCounts:
    launched_into_pool: int = 0
    resumed: int = 0
    returned: int = 0
    terminated_from_pool: int = 0


@dataclass
class WarmPoolEmulation:
    """The pool's instances and what happens to them; see the module docstring."""

    max_size: int
    prepare_s: float
    resume_s: float
    return_s: float
    new_id: Callable[[], str]
    settings: PoolSettings = field(default_factory=PoolSettings)
    instances: list[PoolInstance] = field(default_factory=list)
    counts: PoolCounts = field(default_factory=PoolCounts)

    def target_size(self, desired_capacity: int) -> int:
        prepared = self.settings.max_group_prepared_capacity
        ceiling = self.max_size if prepared is None else prepared
        return max(self.settings.min_size, ceiling - desired_capacity)

    def prewarm(self, desired_capacity: int, now: float = 0.0) -> list[str]:
        """Fill the pool with prepared instances (the pool warmed while the stack was created)."""
        events = []
        while len(self.instances) < self.target_size(desired_capacity):
            instance = PoolInstance(self.new_id(), self.settings.warmed_state, now, now)
            self.instances.append(instance)
            self.counts.launched_into_pool += 1
            events.append(f"{instance.instance_id} prepared in the pool ({instance.state})")
        return events

    def advance(self, now: float, desired_capacity: int) -> list[str]:
        """Finish warming what is due, then refill or shrink the pool to its target size."""
        events = []
        for instance in self.instances:
            if not instance.prepared and now >= instance.ready_at:
                instance.state = self.settings.warmed_state
                events.append(f"{instance.instance_id} warmed: {instance.state}")
        target = self.target_size(desired_capacity)
        while len(self.instances) < target:
            instance = PoolInstance(
                self.new_id(), WARMED_PENDING, now + self.prepare_s, entered_at=now
            )
            self.instances.append(instance)
            self.counts.launched_into_pool += 1
            events.append(
                f"{instance.instance_id} launched into the warm pool ({WARMED_PENDING}, "
                f"preparing for {self.prepare_s:g} s)"
            )
        while len(self.instances) > target:
            # The newest (the least prepared) go first.
            instance = max(self.instances, key=lambda item: (item.ready_at, item.entered_at))
            self.instances.remove(instance)
            self.counts.terminated_from_pool += 1
            events.append(
                f"{instance.instance_id} terminated from the warm pool (pool target {target})"
            )
        return events

    def take(self, now: float) -> Taken | None:
        """A scale-out takes the most prepared instance; None: the pool is empty (cold launch)."""
        if not self.instances:
            return None
        instance = min(self.instances, key=lambda item: (item.ready_at, item.entered_at))
        self.instances.remove(instance)
        self.counts.resumed += 1
        prepared = instance.prepared or now >= instance.ready_at
        return Taken(instance, max(instance.ready_at - now, 0.0) + self.resume_s, prepared)

    def give_back(self, now: float, instance_id: str, desired_capacity: int) -> bool:
        """An instance leaving the group on a scale-in: back to the pool when reused (True)."""
        if not self.settings.reuse_on_scale_in:
            return False
        if len(self.instances) >= self.target_size(desired_capacity):
            return False
        self.instances.append(
            PoolInstance(instance_id, WARMED_PENDING, now + self.return_s, now, returned=True)
        )
        self.counts.returned += 1
        return True

    def describe_instances(self, availability_zone: str = "us-east-1a") -> list[dict[str, Any]]:
        """The pool's instances as DescribeWarmPool's ``Instances`` would list them."""
        return [
            {
                "InstanceId": instance.instance_id,
                "AvailabilityZone": availability_zone,
                "LifecycleState": instance.state,
                "HealthStatus": "Healthy",
                "ProtectedFromScaleIn": False,
            }
            for instance in self.instances
        ]

    @property
    def prepared_count(self) -> int:
        return sum(1 for instance in self.instances if instance.prepared)


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
