"""The event engine: a virtual clock and a heap of timed actions. Nothing here sleeps.

Actions at the same instant run in ``priority`` order (lower first), then in the order they
were scheduled, so a run is deterministic. An action may schedule more actions, including
at the current instant; scheduling in the past is a bug and raises.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

# Priorities for actions that fall on the same instant: the fleet changes first (jobs
# finish, agents register, instances leave), then jobs arrive, then idle timers fire, then
# the scaler looks, then the timeline is sampled.
FLEET = 0
ARRIVAL = 1
TIMER = 2
SCALER = 3
SAMPLE = 4


@dataclass(order=True, slots=True)
class _Entry:
    at: float
    priority: int
    seq: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Handle:
    """Lets the scheduler of an action cancel it before it runs."""

    __slots__ = ("_entry",)

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def cancel(self) -> None:
        self._entry.cancelled = True

    @property
    def at(self) -> float:
        return self._entry.at


class EventEngine:
    """Runs scheduled actions in time order on a virtual clock that starts at ``start``."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self.processed = 0

    def schedule(self, at: float, action: Callable[[], None], priority: int = FLEET) -> Handle:
        """Run ``action`` at virtual time ``at`` (not before ``now``)."""
        if at < self.now:
            raise ValueError(f"cannot schedule an action at {at} before the clock ({self.now})")
        entry = _Entry(at, priority, next(self._seq), action)
        heapq.heappush(self._heap, entry)
        return Handle(entry)

    def after(self, delay: float, action: Callable[[], None], priority: int = FLEET) -> Handle:
        """Run ``action`` ``delay`` seconds from now."""
        return self.schedule(self.now + delay, action, priority)

    def next_time(self) -> float | None:
        """When the next pending action runs, or None when nothing is pending."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].at if self._heap else None

    def step(self) -> bool:
        """Run the next pending action; False when there is none."""
        while self._heap:
            entry = heapq.heappop(self._heap)
            if entry.cancelled:
                continue
            self.now = entry.at
            self.processed += 1
            entry.action()
            return True
        return False

    def run_until(self, stop: Callable[[], bool], horizon: float) -> None:
        """Run actions until ``stop()`` holds after one, or the next is past ``horizon``.

        When it stops at the horizon the clock moves to the horizon.
        """
        while True:
            upcoming = self.next_time()
            if upcoming is None or upcoming > horizon:
                self.now = max(self.now, horizon)
                return
            self.step()
            if stop():
                return
