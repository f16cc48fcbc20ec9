"""Queue metrics: the value the scaler reads, and the strict parser of the API's answer.

The parser accepts the documented body of ``GET /v3/metrics/queue`` and ignores unknown
fields at any level. A missing or invalid required count is a ``MalformedResponseError``:
the scaler must never act on a guessed zero.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from buildkite_api.errors import MalformedResponseError

POLL_DURATION_HEADER = "Buildkite-Agent-Metrics-Poll-Duration"


@dataclass(frozen=True, slots=True)
class QueueMetrics:
    """One queue's demand and supply, as the agent API reported it at ``fetched_at``."""

    scheduled_jobs: int
    running_jobs: int
    waiting_jobs: int
    idle_agents: int
    busy_agents: int
    total_agents: int
    organization_slug: str
    cluster_name: str | None
    poll_interval_s: float | None
    fetched_at: float


def parse_queue_metrics(
    body: bytes | str,
    *,
    poll_duration: str | None,
    fetched_at: float,
    status: int | None = 200,
) -> QueueMetrics:
    """Build ``QueueMetrics`` from a response body and its poll-duration header value.

    Raises ``MalformedResponseError`` (with ``status``) when the body is not JSON, is not the
    documented shape, or holds a count that is missing, not an integer, or negative.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedResponseError(
            "Buildkite agent API response body is not valid JSON", status=status
        ) from None
    root = _object(document, "the response body", status)
    agents = _object(root.get("agents"), "field 'agents'", status)
    jobs = _object(root.get("jobs"), "field 'jobs'", status)
    organization = _object(root.get("organization"), "field 'organization'", status)
    return QueueMetrics(
        scheduled_jobs=_count(jobs, "jobs", "scheduled", status),
        running_jobs=_count(jobs, "jobs", "running", status),
        waiting_jobs=_count(jobs, "jobs", "waiting", status),
        idle_agents=_count(agents, "agents", "idle", status),
        busy_agents=_count(agents, "agents", "busy", status),
        total_agents=_count(agents, "agents", "total", status),
        organization_slug=_text(organization, "organization", "slug", status),
        cluster_name=_cluster_name(root.get("cluster"), status),
        poll_interval_s=parse_poll_duration(poll_duration),
        fetched_at=fetched_at,
    )


def parse_poll_duration(value: str | None) -> float | None:
    """Seconds from a ``Buildkite-Agent-Metrics-Poll-Duration`` value; None if absent or invalid."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


def _object(value: Any, what: str, status: int | None) -> dict[str, Any]:
    if value is None:
        raise MalformedResponseError(
            f"Buildkite agent API response is missing {what}", status=status
        )
    if not isinstance(value, dict):
        raise MalformedResponseError(
            f"Buildkite agent API response has {what} of type {type(value).__name__}, "
            "expected an object",
            status=status,
        )
    return value


def _count(section: dict[str, Any], section_name: str, key: str, status: int | None) -> int:
    name = f"{section_name}.{key}"
    if key not in section or section[key] is None:
        raise MalformedResponseError(
            f"Buildkite agent API response is missing the count '{name}'", status=status
        )
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponseError(
            f"Buildkite agent API response has '{name}' of type {type(value).__name__}, "
            "expected an integer",
            status=status,
        )
    if value < 0:
        raise MalformedResponseError(
            f"Buildkite agent API response has a negative count '{name}' ({value})",
            status=status,
        )
    return value


def _text(section: dict[str, Any], section_name: str, key: str, status: int | None) -> str:
    name = f"{section_name}.{key}"
    value = section.get(key)
    if not isinstance(value, str):
        found = "missing" if value is None else f"of type {type(value).__name__}"
        raise MalformedResponseError(
            f"Buildkite agent API response field '{name}' is {found}, expected a string",
            status=status,
        )
    return value


def _cluster_name(cluster: Any, status: int | None) -> str | None:
    if cluster is None:
        return None
    section = _object(cluster, "field 'cluster'", status)
    if section.get("name") is None:
        return None
    return _text(section, "cluster", "name", status)
