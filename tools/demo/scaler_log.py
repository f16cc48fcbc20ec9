"""Ship the scaler's log lines into its CloudWatch Logs group in moto, as Lambda would.

The demo runs the scaler in process and writes its log to a file; the status command reads
the scaler's decisions from the log group ``/aws/lambda/<root stack>-agent-scaler``, so the demo
puts the same lines there before it prints the status. Each event keeps the time Powertools
stamped on the line (the wall clock when the scaler ran).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

# Powertools Logger's default time format, e.g. "2026-12-02 02:10:11,123+0000".
POWERTOOLS_TIME = "%Y-%m-%d %H:%M:%S,%f%z"
EVENTS_PER_CALL = 500


def ship_scaler_log(logs: Any, log_group: str, lines: Iterable[str]) -> int:
    """Put each non-empty line as one event in a new stream of ``log_group``; return the count."""
    now_ms = int(time.time() * 1000)
    events = [
        {"timestamp": _stamped_ms(line, now_ms), "message": line}
        for line in (raw.strip() for raw in lines)
        if line
    ]
    events.sort(key=lambda event: event["timestamp"])
    if not logs.describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]:
        logs.create_log_group(logGroupName=log_group)
    stream = f"demo/{uuid.uuid4().hex}"
    logs.create_log_stream(logGroupName=log_group, logStreamName=stream)
    for start in range(0, len(events), EVENTS_PER_CALL):
        logs.put_log_events(
            logGroupName=log_group,
            logStreamName=stream,
            logEvents=events[start : start + EVENTS_PER_CALL],
        )
    return len(events)


def _stamped_ms(line: str, default_ms: int) -> int:
    try:
        stamp = json.loads(line)["timestamp"]
        return int(datetime.strptime(stamp, POWERTOOLS_TIME).timestamp() * 1000)
    except (ValueError, KeyError, TypeError):
        return default_ms
