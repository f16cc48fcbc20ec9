"""Buildkite "Job Scheduled" events delivered in an SQS batch: which ones concern our queue.

Buildkite streams events to an EventBridge partner event bus; a rule sends this queue's
"Job Scheduled" events to an SQS queue, and the push handler receives them in batches. Each SQS
record's body is the EventBridge event:

    {"detail-type": "Job Scheduled", "source": "aws.partner/buildkite.com/<org>/<id>",
     "detail": {"version": 1, "job": {"uuid": "...", "agent_query_rules": ["queue=default"],
                "state": "scheduled", ...}, "build": {...}, "pipeline": {...},
                "organization": {"slug": "..."}}}

Events are hints that trigger an early evaluation; the queue metrics stay the truth. A record
that cannot be read is counted and skipped, never acted on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

JOB_SCHEDULED = "Job Scheduled"


@dataclass(frozen=True, slots=True)
class PushBatch:
    """The batch sorted out: this queue's scheduled job ids, other events, unreadable records."""

    job_ids: tuple[str, ...]
    other_events: int
    unreadable_records: int

    @property
    def has_work(self) -> bool:
        return bool(self.job_ids)


def sort_batch(records: Iterable[Mapping[str, Any]], queue: str) -> PushBatch:
    """Pick the "Job Scheduled" events whose job targets ``queue`` (rule ``queue=<queue>``)."""
    wanted_rule = f"queue={queue}"
    job_ids: list[str] = []
    other = unreadable = 0
    for record in records:
        event = _event(record)
        if event is None:
            unreadable += 1
            continue
        detail = event.get("detail")
        job = detail.get("job") if isinstance(detail, dict) else None
        rules = job.get("agent_query_rules") if isinstance(job, dict) else None
        if (
            event.get("detail-type") == JOB_SCHEDULED
            and isinstance(rules, list)
            and wanted_rule in rules
        ):
            job_ids.append(str(job.get("uuid") or record.get("messageId") or "unknown"))
        else:
            other += 1
    return PushBatch(tuple(job_ids), other, unreadable)


def _event(record: Mapping[str, Any]) -> dict[str, Any] | None:
    body = record.get("body")
    if not isinstance(body, str):
        return None
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
