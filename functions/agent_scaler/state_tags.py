"""The scaler state that must survive cold starts, kept as tags on the Auto Scaling group.

Tags ``buildkite-scaler:last-scale-out`` and ``buildkite-scaler:last-scale-in`` hold ISO 8601
UTC times (``2024-08-19T07:08:47.123Z``). They are read from the same DescribeAutoScalingGroups
call that observes the group and written (``PropagateAtLaunch`` false) only when they change.

A tag whose value cannot be parsed is reported and read conservatively, in the direction that
cannot hurt a job: a bad scale-out time reads as "never" (scale-out is never blocked by it) and
a bad scale-in time reads as "just now" (with a ScaleInCooldownPeriod set, no drain happens
until the tag is fixed or deleted; idle instances still leave on their own). A successful
action rewrites the tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent_scaler.policy import ScalerState

LAST_SCALE_OUT_TAG = "buildkite-scaler:last-scale-out"
LAST_SCALE_IN_TAG = "buildkite-scaler:last-scale-in"


@dataclass(frozen=True, slots=True)
class StateRead:
    """The state read from the tags, and a problem per unreadable tag."""

    state: ScalerState
    problems: tuple[str, ...] = ()


def state_from_tags(tags: Mapping[str, str], now: float) -> StateRead:
    """The scaler state held in the group's tags (``now`` stands in for a bad scale-in time)."""
    problems: list[str] = []
    last_out = _parse(tags, LAST_SCALE_OUT_TAG, problems, fallback=None)
    last_in = _parse(tags, LAST_SCALE_IN_TAG, problems, fallback=now)
    return StateRead(ScalerState(last_out, last_in), tuple(problems))


def tag_updates(
    group_name: str, tags: Mapping[str, str], state: ScalerState
) -> list[dict[str, Any]]:
    """CreateOrUpdateTags entries for the state fields whose tag differs (empty when none do)."""
    updates = []
    for key, after in (
        (LAST_SCALE_OUT_TAG, state.last_scale_out_at),
        (LAST_SCALE_IN_TAG, state.last_scale_in_at),
    ):
        if after is not None and tags.get(key) != format_time(after):
            updates.append(
                {
                    "ResourceId": group_name,
                    "ResourceType": "auto-scaling-group",
                    "Key": key,
                    "Value": format_time(after),
                    "PropagateAtLaunch": False,
                }
            )
    return updates


def tags_by_key(tags: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``{Key: Value}`` from the Tags list of a DescribeAutoScalingGroups group."""
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in tags if "Key" in tag}


def format_time(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> float:
    """Epoch seconds from an ISO 8601 time with a zone; raises ValueError otherwise."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time has no zone")
    return moment.timestamp()


def _parse(
    tags: Mapping[str, str], key: str, problems: list[str], *, fallback: float | None
) -> float | None:
    value = tags.get(key)
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        reading = "never" if fallback is None else "just now"
        problems.append(
            f"group tag {key} has the unreadable value {value[:64]!r}: read as {reading}; "
            "fix or delete the tag"
        )
        return fallback
