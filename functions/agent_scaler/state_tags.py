"""The scaler state that must survive cold starts, kept as tags on the Auto Scaling group.

Tags ``buildkite-scaler:last-scale-out`` and ``buildkite-scaler:last-scale-in`` hold ISO 8601
UTC times (``2024-08-19T07:08:47.123Z``); ``buildkite-scaler:demand-peaks`` holds the demand
history as ``<first bucket start>/<offset>:<peak>,...`` (epoch and whole seconds), under the
256 characters a tag value may hold for ScaleInDemandWindow up to 3600 s. They are read from the
same DescribeAutoScalingGroups call that observes the group and written (``PropagateAtLaunch``
false) only when they change.

A tag whose value cannot be parsed is reported and read conservatively, in the direction that
cannot hurt a job: a bad scale-out time reads as "never" (scale-out is never blocked by it) and
a bad scale-in time reads as "just now" (with a ScaleInCooldownPeriod set, no drain happens
until the tag is fixed or deleted; idle instances still leave on their own), and a bad demand
history reads as none (no idle-tail drain until a whole ScaleInDemandWindow has been seen
again). A successful action rewrites the tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent_scaler.policy import ScalerState

LAST_SCALE_OUT_TAG = "buildkite-scaler:last-scale-out"
LAST_SCALE_IN_TAG = "buildkite-scaler:last-scale-in"
DEMAND_PEAKS_TAG = "buildkite-scaler:demand-peaks"


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
    peaks: tuple[tuple[float, int], ...] = ()
    if DEMAND_PEAKS_TAG in tags:
        try:
            peaks = parse_peaks(tags[DEMAND_PEAKS_TAG])
        except ValueError:
            problems.append(
                f"group tag {DEMAND_PEAKS_TAG} has the unreadable value "
                f"{tags[DEMAND_PEAKS_TAG][:64]!r}: read as no demand history; fix or delete the tag"
            )
    return StateRead(ScalerState(last_out, last_in, peaks), tuple(problems))


def tag_updates(
    group_name: str, tags: Mapping[str, str], state: ScalerState
) -> list[dict[str, Any]]:
    """CreateOrUpdateTags entries for the state fields whose tag differs (empty when none do)."""
    values = {
        LAST_SCALE_OUT_TAG: None
        if state.last_scale_out_at is None
        else format_time(state.last_scale_out_at),
        LAST_SCALE_IN_TAG: None
        if state.last_scale_in_at is None
        else format_time(state.last_scale_in_at),
        DEMAND_PEAKS_TAG: format_peaks(state.demand_peaks) if state.demand_peaks else None,
    }
    return [
        {
            "ResourceId": group_name,
            "ResourceType": "auto-scaling-group",
            "Key": key,
            "Value": value,
            "PropagateAtLaunch": False,
        }
        for key, value in values.items()
        if value is not None and tags.get(key) != value
    ]


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


def format_peaks(peaks: tuple[tuple[float, int], ...]) -> str:
    """The demand history as the tag value: ``<first start>/<offset>:<peak>,...`` (seconds)."""
    first = int(peaks[0][0])
    return f"{first}/" + ",".join(f"{int(start) - first}:{peak}" for start, peak in peaks)


def parse_peaks(value: str) -> tuple[tuple[float, int], ...]:
    """The demand history from its tag value; raises ValueError when it is not one."""
    first, entries = value.strip().split("/")
    peaks = []
    for entry in entries.split(","):
        offset, peak = entry.split(":")
        if int(offset) < 0 or int(peak) < 0:
            raise ValueError("offsets and peaks must be >= 0")
        peaks.append((float(int(first) + int(offset)), int(peak)))
    return tuple(peaks)


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
