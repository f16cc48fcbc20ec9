"""Gather one snapshot of a fleet: its stack, queue, group, warm pool, decisions and alarms.

Each part is read on its own. A part that cannot be read becomes a line in ``errors`` (naming
the call and the cause, never the agent token) and the other parts are still gathered, so the
screen shows as much as the operator's credentials and the services allow.

The stack is the root stack, or the fleet stack (``nested/fleet.yaml``) alone, e.g. the demo's:
both carry the group's name as the ``AutoScalingGroupName`` output and the queue and scaling
parameters. The scaler's log group (``/aws/lambda/<root>-agent-scaler``) and the alarms
(``<root>-<what>``) are named after the root stack in ``template.yaml`` and
``nested/monitoring.yaml``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from buildkite_api import AgentApiClient, BuildkiteApiError

SETTINGS = ("BuildkiteQueue", "MinSize", "MaxSize", "AgentsPerInstance", "ScaleInIdlePeriod")
DECISION_LOOKBACK_S = 3600
LAST_DECISIONS = 5
MAX_LOG_PAGES = 20
API_TIMEOUT_S = 5.0
API_RETRIES = 2
USER_AGENT = "buildkite-sam-fleet-status"

Clients = Callable[[str], Any]


class StackNotFoundError(LookupError):
    """The named stack does not exist or is not a fleet (root or fleet) stack."""


@dataclass(frozen=True)
class FleetStack:
    """What the stack says about the fleet."""

    name: str
    root_name: str
    group_name: str
    queue: str
    agent_endpoint: str
    token_parameter: str
    settings: dict[str, str]

    @property
    def scaler_log_group(self) -> str:
        return f"/aws/lambda/{self.root_name}-agent-scaler"

    @property
    def alarm_prefix(self) -> str:
        return f"{self.root_name}-"


@dataclass
class Snapshot:
    """Everything the status screen shows (``--json`` prints it as is)."""

    stack: str
    region: str
    taken_at: str
    settings: dict[str, str] = field(default_factory=dict)
    queue: dict[str, Any] | None = None
    group: dict[str, Any] | None = None
    warm_pool: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    last_change: dict[str, Any] | None = None
    scaler_log_group: str = ""
    alarms: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def find_stack(cloudformation: Any, name: str) -> FleetStack:
    """Read the stack's parameters and outputs; raise StackNotFoundError when it is no fleet."""
    try:
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        raise StackNotFoundError(f"stack {name!r}: {_cause(exc)}") from None
    parameters = {
        p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])
    }
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    group_name = outputs.get("AutoScalingGroupName")
    if not group_name:
        raise StackNotFoundError(
            f"stack {name!r} has no AutoScalingGroupName output: give the fleet's root stack "
            f"(or its fleet stack), in state {stack.get('StackStatus', 'unknown')}"
        )
    return FleetStack(
        name=name,
        root_name=parameters.get("ParentStackName") or name,
        group_name=group_name,
        queue=parameters.get("BuildkiteQueue", ""),
        agent_endpoint=parameters.get("AgentEndpoint", ""),
        token_parameter=outputs.get("AgentTokenParameterPath")
        or parameters.get("AgentTokenParameterPath", ""),
        settings={key: parameters[key] for key in SETTINGS if key in parameters},
    )


def collect(clients: Clients, stack_name: str, region: str, *, now: float) -> Snapshot:
    """The fleet's snapshot at ``now`` (epoch seconds). Raises StackNotFoundError."""
    stack = find_stack(clients("cloudformation"), stack_name)
    snapshot = Snapshot(
        stack=stack_name,
        region=region,
        taken_at=_iso(now),
        settings=stack.settings,
        scaler_log_group=stack.scaler_log_group,
    )
    parts: list[tuple[str, Callable[[], None]]] = [
        ("queue metrics", lambda: _queue(clients, stack, snapshot)),
        ("Auto Scaling group", lambda: _group(clients("autoscaling"), stack, snapshot)),
        ("warm pool", lambda: _warm_pool(clients("autoscaling"), stack, snapshot)),
        ("scaler decisions", lambda: _decisions(clients("logs"), stack, snapshot, now)),
        ("alarms", lambda: _alarms(clients("cloudwatch"), stack, snapshot)),
    ]
    for label, read in parts:
        try:
            read()
        except (ClientError, BotoCoreError, BuildkiteApiError, LookupError, ValueError) as exc:
            snapshot.errors.append(f"{label}: {_cause(exc)}")
    return snapshot


def _queue(clients: Clients, stack: FleetStack, snapshot: Snapshot) -> None:
    if not (stack.queue and stack.agent_endpoint and stack.token_parameter):
        raise LookupError("the stack names no queue, agent endpoint or token parameter")
    parameter = clients("ssm").get_parameter(Name=stack.token_parameter, WithDecryption=True)
    client = AgentApiClient(
        stack.agent_endpoint,
        parameter["Parameter"]["Value"],
        timeout=API_TIMEOUT_S,
        retries=API_RETRIES,
        user_agent=USER_AGENT,
    )
    metrics = client.queue_metrics(stack.queue)
    snapshot.queue = {
        "name": stack.queue,
        "organization": metrics.organization_slug,
        "jobs": {
            "scheduled": metrics.scheduled_jobs,
            "running": metrics.running_jobs,
            "waiting": metrics.waiting_jobs,
        },
        "agents": {
            "idle": metrics.idle_agents,
            "busy": metrics.busy_agents,
            "total": metrics.total_agents,
        },
    }


def _group(autoscaling: Any, stack: FleetStack, snapshot: Snapshot) -> None:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[stack.group_name])
    if not groups["AutoScalingGroups"]:
        raise LookupError(f"group {stack.group_name!r} not found")
    group = groups["AutoScalingGroups"][0]
    snapshot.group = {
        "name": stack.group_name,
        "desired": group["DesiredCapacity"],
        "min": group["MinSize"],
        "max": group["MaxSize"],
        "instances": dict(sorted(Counter(i["LifecycleState"] for i in group["Instances"]).items())),
    }


def _warm_pool(autoscaling: Any, stack: FleetStack, snapshot: Snapshot) -> None:
    answer = autoscaling.describe_warm_pool(AutoScalingGroupName=stack.group_name)
    configuration = answer.get("WarmPoolConfiguration")
    if not configuration:
        return
    snapshot.warm_pool = {
        "min_size": configuration.get("MinSize", 0),
        "max_group_prepared_capacity": configuration.get("MaxGroupPreparedCapacity"),
        "pool_state": configuration.get("PoolState", ""),
        "status": configuration.get("Status", ""),
        "instances": dict(
            sorted(Counter(i["LifecycleState"] for i in answer.get("Instances", [])).items())
        ),
    }


def _decisions(logs: Any, stack: FleetStack, snapshot: Snapshot, now: float) -> None:
    """The last evaluations the scaler logged in the past hour, oldest first, and the last one
    that changed capacity (scale out or drain) when it is older than those."""
    request = {
        "logGroupName": stack.scaler_log_group,
        "startTime": int((now - DECISION_LOOKBACK_S) * 1000),
        "filterPattern": '"Scaling evaluation"',
    }
    found: list[dict[str, Any]] = []
    for _ in range(MAX_LOG_PAGES):
        page = logs.filter_log_events(**request)
        for event in page.get("events", []):
            decision = _decision(event)
            if decision is not None:
                found.append(decision)
        if not page.get("nextToken"):
            break
        request["nextToken"] = page["nextToken"]
    found.sort(key=lambda decision: decision["at"])
    snapshot.decisions = found[-LAST_DECISIONS:]
    changes = [decision for decision in found if decision["capacity_change"]]
    if changes and changes[-1] not in snapshot.decisions:
        snapshot.last_change = changes[-1]


def _decision(event: dict[str, Any]) -> dict[str, Any] | None:
    try:
        line = json.loads(event["message"])
    except (KeyError, ValueError):
        return None
    if not isinstance(line, dict) or "decision" not in line:
        return None
    return {
        "at": _iso(event["timestamp"] / 1000),
        "trigger": line.get("trigger", ""),
        "summary": str(line.get("message", "")),
        "desired_capacity": line["decision"].get("desired_capacity"),
        "capacity_change": line["decision"].get("capacity_change") or 0,
        "reasons": [str(reason) for reason in line.get("reasons", [])],
    }


def _alarms(cloudwatch: Any, stack: FleetStack, snapshot: Snapshot) -> None:
    alarms: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=stack.alarm_prefix
    ):
        alarms.extend(page.get("MetricAlarms", []))
        alarms.extend(page.get("CompositeAlarms", []))
    snapshot.alarms = {
        "total": len(alarms),
        "in_alarm": [
            {
                "name": alarm["AlarmName"],
                "since": _iso(alarm["StateUpdatedTimestamp"].timestamp()),
                "reason": alarm.get("StateReason", ""),
                "what_to_do": alarm.get("AlarmDescription", ""),
            }
            for alarm in sorted(alarms, key=lambda a: a["AlarmName"])
            if alarm.get("StateValue") == "ALARM"
        ],
    }


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cause(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"
