"""Concurrent scale-outs, interleaved call by call.

Each writer is the real protocol (``scale_out_calls``), a generator that yields one Auto Scaling
call at a time. A scheduler picks which writer's pending call runs next against one in-memory
group, and a depth-first search tries every choice (no threads, no sleeps). States already seen
(same group, same history for every writer) are not explored twice.

Time moves 5 s with each call that changes the group, and stands still across reads. That keeps
every order the protocol compares (a claim ended before or after a writer started) whenever a
write lies between the two moments, and makes far fewer distinct states than a clock ticking on
every call. Two writers are explored exhaustively in well under a second; three writers have
hundreds of thousands of states (minutes), so the suite checks them on seeded random
interleavings.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from agent_scaler.scale_out import (
    CLAIM_TAG_PREFIX,
    MAX_WRITES,
    Call,
    ScaleOutResult,
    claims_in,
    run_calls,
    scale_out_calls,
)

GROUP = "agents"
SECONDS_PER_END = 5.0


@dataclass
class FakeGroup:
    """One Auto Scaling group in memory, as the protocol's ``GroupApi`` sees it."""

    desired: int
    max_size: int
    tags: dict[str, str] = field(default_factory=dict)
    history: list[int] = field(default_factory=list)  # desired capacity after each write

    def describe_group(self, group_name: str) -> dict[str, Any]:
        assert group_name == GROUP
        return {
            "DesiredCapacity": self.desired,
            "MinSize": 0,
            "MaxSize": self.max_size,
            "Tags": [{"Key": key, "Value": value} for key, value in self.tags.items()],
        }

    def set_desired_capacity(self, **params: Any) -> None:
        assert params["AutoScalingGroupName"] == GROUP
        assert params["HonorCooldown"] is False
        capacity = params["DesiredCapacity"]
        assert 0 <= capacity <= self.max_size, "AWS refuses a capacity above MaxSize"
        self.desired = capacity
        self.history.append(capacity)

    def create_or_update_tags(self, **params: Any) -> None:
        for tag in params["Tags"]:
            assert tag["ResourceId"] == GROUP
            self.tags[tag["Key"]] = tag["Value"]

    def delete_tags(self, **params: Any) -> None:
        for tag in params["Tags"]:
            self.tags.pop(tag["Key"], None)

    def snapshot(self) -> tuple[int, frozenset[tuple[str, str]]]:
        return self.desired, frozenset(self.tags.items())


Protocol = Callable[[int, int, Callable[[], float]], Generator[Call, Any, Any]]


def the_protocol(index: int, wanted: int, clock: Callable[[], float]) -> Generator[Call, Any, Any]:
    return scale_out_calls(GROUP, wanted, clock=clock, claim_id=f"writer{index}")


def describe_then_set(
    _index: int, wanted: int, _clock: Callable[[], float]
) -> Generator[Call, Any, Any]:
    """The scale-out before this protocol: read desired capacity, set it if lower."""
    group = yield Call("describe_group", {"group_name": GROUP})
    if group["DesiredCapacity"] >= wanted:
        return None
    yield Call(
        "set_desired_capacity",
        {"AutoScalingGroupName": GROUP, "DesiredCapacity": wanted, "HonorCooldown": False},
    )
    return group["DesiredCapacity"]


@dataclass
class Writer:
    calls: Generator[Call, Any, Any]
    pending: Call | None = None
    started: bool = False
    done: bool = False
    result: Any = None
    seen: list[tuple[str, Any]] = field(default_factory=list)  # (operation, what it returned)
    wrote_after_reading: list[tuple[int, int]] = field(default_factory=list)

    def local_state(self) -> Any:
        """Where the writer is in its code and the variables it still uses there."""
        frame = self.calls.gi_frame
        if not self.started or frame is None:
            return (self.started, self.done, repr(self.result))
        variables = tuple(
            sorted(
                (name, canonical(value))
                for name, value in frame.f_locals.items()
                if name not in TRANSIENT_VARIABLES
            )
        )
        return frame.f_lasti, variables, canonical(self.pending)


# Locals of scale_out_calls recomputed before their next use (or never used again): leaving
# them out of a writer's state merges states that only differ in them.
TRANSIENT_VARIABLES = frozenset({"clock", "group", "honoured", "now", "exc"})


def canonical(value: Any) -> Any:
    """A hashable form of ``value`` that ignores the order of dict items and tag lists."""
    if isinstance(value, dict):
        return tuple(sorted((key, canonical(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return tuple(sorted(repr(canonical(item)) for item in value))
    if isinstance(value, Call):
        return (value.operation, canonical(value.params))
    return repr(value)


class World:
    """A group and its writers, replayed from a schedule (the writer chosen at each call)."""

    def __init__(self, desired: int, max_size: int, wants: Sequence[int], protocol: Protocol):
        self.group = FakeGroup(desired, max_size)
        self.ends_marked = 0
        self.writers = [
            Writer(protocol(index, wanted, self.clock)) for index, wanted in enumerate(wants)
        ]

    def clock(self) -> float:
        return 1_000_000.0 + self.ends_marked * SECONDS_PER_END

    def runnable(self) -> list[int]:
        return [index for index, writer in enumerate(self.writers) if not writer.done]

    def step(self, index: int) -> None:
        writer = self.writers[index]
        if not writer.started:
            writer.started = True
            writer.pending = next(writer.calls)
        call = writer.pending
        assert call is not None
        if call.operation == "set_desired_capacity":
            last_read = next(value for op, value in reversed(writer.seen) if op == "describe")
            writer.wrote_after_reading.append((last_read, call.params["DesiredCapacity"]))
        response = getattr(self.group, call.operation)(**call.params)
        if call.operation == "describe_group":
            writer.seen.append(("describe", response["DesiredCapacity"]))
            writer.seen.append(("tags", frozenset(self.group.tags.items())))
        else:
            if call.operation == "create_or_update_tags" and _marks_an_end(call):
                self.ends_marked += 1
            writer.seen.append((call.operation, repr(call.params)))
        try:
            writer.pending = writer.calls.send(response)
        except StopIteration as stop:
            writer.done, writer.result, writer.pending = True, stop.value, None

    def state(self) -> tuple[Any, ...]:
        """What decides every future: the group, the clock, and each writer's own state."""
        return (
            self.group.snapshot(),
            self.ends_marked,
            tuple(writer.local_state() for writer in self.writers),
        )


def _marks_an_end(call: Call) -> bool:
    return any(len(tag["Value"].split()) == 3 for tag in call.params["Tags"])


@dataclass
class Exploration:
    endings: list[World]
    states: int


def explore(
    desired: int,
    max_size: int,
    wants: Sequence[int],
    protocol: Protocol = the_protocol,
) -> Exploration:
    """Every interleaving of the writers' calls, to the end; each distinct state once."""
    seen: set[tuple[Any, ...]] = set()
    endings: list[World] = []
    stack: list[tuple[int, ...]] = [()]
    while stack:
        schedule = stack.pop()
        world = World(desired, max_size, wants, protocol)
        for index in schedule:
            world.step(index)
        state = world.state()
        if state in seen:
            continue
        seen.add(state)
        runnable = world.runnable()
        if not runnable:
            endings.append(world)
        stack.extend((*schedule, index) for index in runnable)
    return Exploration(endings, len(seen))


def sample(desired: int, max_size: int, wants: Sequence[int], runs: int, seed: int) -> Exploration:
    """``runs`` interleavings drawn at random (seeded: the same ones every time)."""
    chooser = random.Random(seed)  # noqa: S311 (a schedule, not a secret)
    endings = []
    for _ in range(runs):
        world = World(desired, max_size, wants, the_protocol)
        while runnable := world.runnable():
            world.step(chooser.choice(runnable))
        endings.append(world)
    return Exploration(endings, runs)


@pytest.mark.parametrize(
    "wants", [(4, 6), (6, 4), (3, 3), (5, 2), (12, 7), (1, 9)], ids=lambda wants: str(wants)
)
def test_every_interleaving_of_two_writers_ends_at_the_highest_capacity_wanted(
    wants: tuple[int, int],
) -> None:
    check_endings(explore(2, 10, wants), 2, 10, wants)


@pytest.mark.parametrize(
    "wants", [(3, 5, 7), (7, 5, 3), (4, 9, 6), (6, 6, 3), (11, 4, 8)], ids=lambda w: str(w)
)
def test_three_writers_end_at_the_highest_capacity_wanted(wants: tuple[int, int, int]) -> None:
    """Exhaustive search of three writers takes many minutes: 2000 seeded interleavings each."""
    check_endings(sample(2, 8, wants, runs=2000, seed=sum(wants)), 2, 8, wants)


def check_endings(
    exploration: Exploration, desired: int, max_size: int, wants: Sequence[int]
) -> None:
    expected = max(desired, min(max(wants), max_size))

    assert exploration.endings, "no interleaving ran to the end"
    for world in exploration.endings:
        group = world.group
        assert group.desired == expected, f"ended at {group.desired}, writes {group.history}"
        # Never above MaxSize or above what someone wanted; never below where it started.
        assert all(desired <= capacity <= expected for capacity in group.history)
        for writer in world.writers:
            result: ScaleOutResult = writer.result
            assert result.problems == ()
            assert result.writes <= MAX_WRITES
            # Each write raises desired capacity above what its writer had just read.
            assert all(read < written for read, written in writer.wrote_after_reading)
        # Every claim left behind is marked ended; none is left pending.
        assert all(claim.ended_at is not None for claim in claims_in(group.tags))


def test_the_exploration_finds_the_lost_write_of_describe_then_set() -> None:
    """The search is strong enough to catch the defect the protocol fixes."""
    exploration = explore(2, 10, (4, 6), protocol=describe_then_set)
    endings = sorted({world.group.desired for world in exploration.endings})
    assert endings == [4, 6]  # some interleavings end at 4: the write of 6 was undone


def test_three_writers_need_few_writes_each() -> None:
    exploration = sample(0, 20, (5, 10, 15), runs=2000, seed=7)
    most = max(w.result.writes for world in exploration.endings for w in world.writers)
    assert 1 <= most <= 3 < MAX_WRITES


def test_a_finished_scale_out_does_not_raise_a_later_one() -> None:
    """An old wish is not a reason to launch instances now."""
    group = FakeGroup(desired=2, max_size=10)
    clock = itertools.count(1_000_000.0, 30.0).__next__

    first = run_calls(group, scale_out_calls(GROUP, 8, clock=clock, claim_id="first"))
    assert (first.before, first.writes, group.desired) == (2, 1, 8)
    group.desired = 3  # instances finished their jobs and left, lowering desired capacity
    later = run_calls(group, scale_out_calls(GROUP, 4, clock=clock, claim_id="later"))

    assert (later.before, later.writes, group.desired) == (3, 1, 4)


def test_a_claim_of_a_writer_that_died_is_honoured_only_for_its_lifetime() -> None:
    group = FakeGroup(desired=2, max_size=10)
    group.tags[CLAIM_TAG_PREFIX + "dead"] = "9 2024-08-19T07:00:00.000Z"  # never marked ended
    start = 1_724_050_800.0  # 07:00:00
    run_calls(group, scale_out_calls(GROUP, 3, clock=lambda: start + 60, claim_id="a"))
    assert group.desired == 9  # it may still be running: honoured

    group.desired = 2
    run_calls(group, scale_out_calls(GROUP, 3, clock=lambda: start + 600, claim_id="b"))
    assert group.desired == 3  # long dead: ignored, and deleted
    assert CLAIM_TAG_PREFIX + "dead" not in group.tags


def test_claims_left_behind_stay_few() -> None:
    """Each scale-out tidies expired and redundant claims: a rising fleet keeps one."""
    group = FakeGroup(desired=0, max_size=100)
    clock = itertools.count(1_000_000.0, 10.0).__next__
    for wanted in range(1, 40):
        run_calls(group, scale_out_calls(GROUP, wanted, clock=clock, claim_id=f"c{wanted}"))
    assert group.desired == 39
    assert [claim.claim_id for claim in claims_in(group.tags)] == ["c39"]
