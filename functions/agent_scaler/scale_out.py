"""Raising desired capacity when several scale-outs may run at once.

The scheduled and the push scaler can evaluate at the same moment. SetDesiredCapacity is a
plain write (no compare-and-set), so with describe-then-set a lower write can land after a
higher one and undo it. Re-reading after the write does not help on its own: the higher writer
may have checked and finished before the stale lower write lands, and the lower writer then
reads back its own value.

So each scale-out leaves a *claim* beside the capacity, on the group itself: a tag
``buildkite-scaler:scale-out:<id>`` = ``"<wanted> <started> [<ended>]"`` (ISO times). The
protocol, run by every writer:

1. Read the group (capacity and tags in one DescribeAutoScalingGroups). If desired capacity is
   already at least what we want (clamped to MaxSize), nothing is written and no claim is made.
2. Write our claim (wanted, started = the time before step 1).
3. Read the group; the goal is the highest wanted among our own claim and the claims we must
   honour, clamped to the group's MaxSize. If desired capacity is below the goal, raise our
   claim to the goal when it is higher (capacity is only ever written to a claimed value), set
   desired capacity to the goal and repeat step 3 (at most ``MAX_WRITES`` writes); otherwise
   stop.
4. Mark our claim ended (with the time), and delete the claims nobody can need any more.

A claim is honoured by a writer whose step 1 started before the claim ended (plus
``CLOCK_SKEW_S``): exactly the writers that may have read a stale capacity while the claimer
was raising it. An unfinished claim (its writer is still running, or died) is honoured for
``CLAIM_LIFETIME_S``. A stale lower write is therefore always followed by its own writer's
step 3, which honours the higher claim and raises capacity again; claims of scale-outs that
ended before ours began are ignored, so an old wish never launches instances nobody needs now.
Capacity is never lowered (every write raises it above what was just read) and never set above
MaxSize. ``tests/unit/test_scale_out_interleavings.py`` checks every interleaving of two and
three writers.

The protocol is written as a generator of calls on the group (``scale_out_calls``) so that a
test can interleave several writers call by call without threads; ``run_calls`` drives it with
a ``GroupApi`` (``agent_scaler.group`` adapts boto3's Auto Scaling client to it).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from agent_scaler.state_tags import format_time, parse_time, tags_by_key

CLAIM_TAG_PREFIX = "buildkite-scaler:scale-out:"
# Longer than either scaler function's timeout (120 s scheduled, 60 s push): no scale-out that
# could still be running is older than this, so older claims can be deleted.
CLAIM_LIFETIME_S = 300.0
# Lambda hosts keep their clocks in sync far better than this; a larger value only makes a
# writer honour a few more claims.
CLOCK_SKEW_S = 2.0
# Each write answers a lower write that landed after ours; with a handful of concurrent writers
# a few suffice (the interleaving test needs at most 3 for three writers).
MAX_WRITES = 5


class ScaleOutError(RuntimeError):
    """A call of the scale-out protocol failed; the message names it."""


class GroupApi(Protocol):
    """The Auto Scaling calls the protocol makes (boto3's, with one group's describe)."""

    def describe_group(self, group_name: str) -> dict[str, Any]: ...
    def set_desired_capacity(self, **params: Any) -> Any: ...
    def create_or_update_tags(self, **params: Any) -> Any: ...
    def delete_tags(self, **params: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Call:
    """One call on the group: the ``GroupApi`` method's name and its arguments."""

    operation: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claim:
    """One scale-out's wish, as held in its tag."""

    claim_id: str
    wanted: int
    started_at: float
    ended_at: float | None = None

    @property
    def tag_key(self) -> str:
        return CLAIM_TAG_PREFIX + self.claim_id

    @property
    def tag_value(self) -> str:
        value = f"{self.wanted} {format_time(self.started_at)}"
        return value if self.ended_at is None else f"{value} {format_time(self.ended_at)}"

    def honoured_by(self, writer_started_at: float, now: float) -> bool:
        """Whether a writer that started at ``writer_started_at`` must honour this claim."""
        if self.ended_at is None:
            return now - self.started_at < CLAIM_LIFETIME_S
        return self.ended_at + CLOCK_SKEW_S >= writer_started_at

    def expired(self, now: float) -> bool:
        """No writer that could still be running needs this claim."""
        last_seen = self.started_at if self.ended_at is None else self.ended_at
        return now - last_seen >= CLAIM_LIFETIME_S


@dataclass(frozen=True, slots=True)
class ScaleOutResult:
    """What a scale-out found and did.

    ``before``: desired capacity at the first read; ``after``: at the last read (after our
    writes); ``writes``: SetDesiredCapacity calls made (0: it was high enough already);
    ``problems``: failures after capacity was raised (marking or tidying claims), which leave
    capacity right but should be reported.
    """

    before: int
    after: int
    writes: int
    problems: tuple[str, ...] = field(default=())


def claims_in(tags: Mapping[str, str]) -> list[Claim]:
    """The claims among a group's tags (``{Key: Value}``); unreadable ones are skipped."""
    claims = []
    for key, value in tags.items():
        if not key.startswith(CLAIM_TAG_PREFIX):
            continue
        parts = value.split()
        try:
            wanted = int(parts[0])
            started = parse_time(parts[1])
            ended = parse_time(parts[2]) if len(parts) > 2 else None
        except (IndexError, ValueError):
            continue
        claims.append(Claim(key[len(CLAIM_TAG_PREFIX) :], wanted, started, ended))
    return claims


def claims_to_delete(claims: Sequence[Claim], now: float) -> list[Claim]:
    """Expired claims, and ended claims another ended claim makes redundant.

    An ended claim is redundant when another one wants at least as much and ended no earlier:
    every writer that honours the first honours the second. Unfinished claims are kept until
    they expire: their writer may still need them.
    """
    ended = [c for c in claims if c.ended_at is not None and not c.expired(now)]
    redundant = {
        claim.claim_id
        for claim in ended
        for other in ended
        if other.claim_id != claim.claim_id
        and other.wanted >= claim.wanted
        and (other.ended_at, other.wanted, other.claim_id)
        > (claim.ended_at, claim.wanted, claim.claim_id)
    }
    return [c for c in claims if c.expired(now) or c.claim_id in redundant]


def new_claim_id() -> str:
    return secrets.token_hex(6)


def scale_out_calls(
    group_name: str,
    wanted: int,
    *,
    clock: Callable[[], float],
    claim_id: str,
) -> Generator[Call, Any, ScaleOutResult]:
    """The protocol (see the module docstring) as the calls it makes.

    Yields each ``Call`` and expects its response back (``generator.send``) or the AWS error it
    raised (``generator.throw``). Returns the ``ScaleOutResult``. Raises ``ScaleOutError`` when
    a call fails before capacity was raised; errors of ``describe_group`` propagate.
    """
    started_at = clock()
    group = yield _describe(group_name)
    before = group["DesiredCapacity"]
    if before >= min(wanted, group["MaxSize"]):
        return ScaleOutResult(before=before, after=before, writes=0)

    claim = Claim(claim_id, wanted, started_at)
    try:
        yield _put_tag(group_name, claim)
    except (ClientError, BotoCoreError) as exc:
        raise ScaleOutError(f"recording the scale-out claim {claim.tag_key} failed: {exc}") from exc

    writes = 0
    problems: list[str] = []
    while True:
        group = yield _describe(group_name)
        tags = tags_by_key(group.get("Tags", []))
        now = clock()
        honoured = [c.wanted for c in claims_in(tags) if c.honoured_by(started_at, now)]
        goal = min(max([claim.wanted, *honoured]), group["MaxSize"])
        current = group["DesiredCapacity"]
        if current >= goal:
            break
        if writes == MAX_WRITES:
            problems.append(
                f"desired capacity is {current} after {writes} writes of up to {goal}: "
                "other writers keep lowering it; the next evaluation raises it again"
            )
            break
        if goal > claim.wanted:
            # Raising capacity for another claim: claim that much first, so a writer that may
            # undo this write honours it as it would honour the original claim.
            claim = replace(claim, wanted=goal)
            try:
                yield _put_tag(group_name, claim)
            except (ClientError, BotoCoreError) as exc:
                problems.append(f"raising the scale-out claim {claim.tag_key} failed: {exc}")
                break
        try:
            yield Call(
                "set_desired_capacity",
                {
                    "AutoScalingGroupName": group_name,
                    "DesiredCapacity": goal,
                    "HonorCooldown": False,
                },
            )
        except (ClientError, BotoCoreError) as exc:
            message = (
                f"SetDesiredCapacity {current} -> {goal} on group {group_name!r} failed: {exc}"
            )
            if not writes:
                raise ScaleOutError(message) from exc
            problems.append(message)
            break
        writes += 1

    ended_at = clock()
    ended = replace(claim, ended_at=ended_at)
    try:
        yield _put_tag(group_name, ended)
    except (ClientError, BotoCoreError) as exc:
        problems.append(
            f"marking the scale-out claim {ended.tag_key} ended failed (it expires on its own "
            f"after {CLAIM_LIFETIME_S:g} s): {exc}"
        )
    others = [c for c in claims_in(tags) if c.claim_id != claim_id]
    stale = claims_to_delete([*others, ended], ended_at)
    if stale:
        try:
            yield Call(
                "delete_tags",
                {"Tags": [{**_tag_target(group_name), "Key": c.tag_key} for c in stale]},
            )
        except (ClientError, BotoCoreError) as exc:
            problems.append(f"deleting {len(stale)} old scale-out claim tag(s) failed: {exc}")
    return ScaleOutResult(before=before, after=current, writes=writes, problems=tuple(problems))


def run_calls(api: GroupApi, calls: Generator[Call, Any, Any]) -> Any:
    """Make each ``Call`` on ``api``; return what the generator returns."""
    try:
        call = next(calls)
        while True:
            try:
                response = getattr(api, call.operation)(**call.params)
            except (ClientError, BotoCoreError) as exc:
                call = calls.throw(exc)
            else:
                call = calls.send(response)
    except StopIteration as stop:
        return stop.value


def _describe(group_name: str) -> Call:
    return Call("describe_group", {"group_name": group_name})


def _put_tag(group_name: str, claim: Claim) -> Call:
    tag = {
        **_tag_target(group_name),
        "Key": claim.tag_key,
        "Value": claim.tag_value,
        "PropagateAtLaunch": False,
    }
    return Call("create_or_update_tags", {"Tags": [tag]})


def _tag_target(group_name: str) -> dict[str, str]:
    return {"ResourceId": group_name, "ResourceType": "auto-scaling-group"}
