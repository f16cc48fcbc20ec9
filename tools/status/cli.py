"""The status command: arguments, AWS clients, and the one-screen text (or ``--json``).

    python -m tools.status --stack NAME [--region R] [--json]

Credentials and the endpoint come from the usual AWS settings (profile, environment,
``AWS_ENDPOINT_URL`` for moto). It reads: cloudformation:DescribeStacks,
autoscaling:DescribeAutoScalingGroups and DescribeWarmPool, ssm:GetParameter on the agent token
(decrypted in memory for one agent API call, never shown), logs:FilterLogEvents on the scaler's
log group and cloudwatch:DescribeAlarms.

Exit status: 0 everything was read; 1 the stack was not found or a part could not be read (the
rest is still shown, the part's error at the end); 2 bad options.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

import boto3

from tools.status.collect import Snapshot, StackNotFoundError, collect

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.status",
        description=(
            "One screen about a Buildkite SAM fleet: the queue now, the Auto Scaling group and "
            "warm pool, the scaler's last decisions, alarms in ALARM and the key settings."
        ),
    )
    parser.add_argument("--stack", required=True, help="the root stack (or its fleet stack)")
    parser.add_argument("--region", help="AWS region (default: the AWS settings' region)")
    parser.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    session = boto3.session.Session(region_name=args.region)
    region = session.region_name
    if not region:
        print("status: no region: give --region or set AWS_REGION", file=sys.stderr)
        return EXIT_USAGE
    try:
        snapshot = collect(session.client, args.stack, region, now=time.time())
    except StackNotFoundError as exc:
        print(f"status: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    if args.json:
        json.dump(snapshot.to_json(), out, indent=2)
        out.write("\n")
    else:
        out.write("\n".join(screen(snapshot)) + "\n")
    return EXIT_INCOMPLETE if snapshot.errors else EXIT_OK


def screen(snapshot: Snapshot) -> list[str]:
    """The snapshot as text lines, most urgent first after the header."""
    lines = [f"Buildkite fleet {snapshot.stack} ({snapshot.region}) at {snapshot.taken_at}"]
    lines += _alarm_lines(snapshot.alarms)
    lines += _queue_lines(snapshot.queue)
    lines += _group_lines(snapshot.group, snapshot.warm_pool)
    settings = "  ".join(f"{key} {value}" for key, value in snapshot.settings.items())
    lines += ["", f"Settings   {settings or '(none found)'}"]
    lines += _decision_lines(snapshot.decisions, snapshot.last_change, snapshot.scaler_log_group)
    if snapshot.errors:
        lines += ["", "Could not read:"] + [f"  {error}" for error in snapshot.errors]
    return lines


def _alarm_lines(alarms: dict[str, Any]) -> list[str]:
    if not alarms:
        return []
    firing = alarms["in_alarm"]
    if not alarms["total"]:
        return ["", "Alarms     none found (deploy the monitoring stack for them)"]
    if not firing:
        return ["", f"Alarms     none in ALARM (of {alarms['total']})"]
    lines = ["", f"Alarms     {len(firing)} in ALARM (of {alarms['total']})"]
    for alarm in firing:
        lines.append(f"  {alarm['name']}  since {alarm['since']}")
        if alarm["reason"]:
            lines.append(f"    {alarm['reason']}")
        if alarm["what_to_do"]:
            lines.append(f"    {alarm['what_to_do']}")
    return lines


def _queue_lines(queue: dict[str, Any] | None) -> list[str]:
    if queue is None:
        return []
    jobs, agents = queue["jobs"], queue["agents"]
    return [
        "",
        f"Queue      {queue['name']} (organization {queue['organization']})",
        f"  jobs     scheduled {jobs['scheduled']}  running {jobs['running']}  "
        f"waiting {jobs['waiting']}",
        f"  agents   idle {agents['idle']}  busy {agents['busy']}  total {agents['total']}",
    ]


def _group_lines(group: dict[str, Any] | None, warm_pool: dict[str, Any] | None) -> list[str]:
    if group is None:
        return []
    lines = [
        "",
        f"Group      {group['name']}",
        f"  capacity desired {group['desired']}  min {group['min']}  max {group['max']}",
        f"  instances {_counts(group['instances'])}",
    ]
    if warm_pool is not None:
        prepared = warm_pool["max_group_prepared_capacity"]
        lines.append(
            f"  warm pool {warm_pool['pool_state'] or 'state unknown'}, min {warm_pool['min_size']}"
            f", max prepared {'unbounded' if prepared in (None, -1) else prepared}"
            f"{', ' + warm_pool['status'] if warm_pool['status'] else ''}: "
            f"{_counts(warm_pool['instances'])}"
        )
    return lines


def _decision_lines(
    decisions: list[dict[str, Any]], last_change: dict[str, Any] | None, log_group: str
) -> list[str]:
    lines = ["", f"Scaler     last decisions ({log_group}, past hour)"]
    if not decisions:
        lines.append("  none logged")
    if last_change is not None:
        lines.append("  last capacity change:")
        lines += _decision(last_change)
        lines.append("  since then:")
    for decision in decisions:
        lines += _decision(decision)
    return lines


def _decision(decision: dict[str, Any]) -> list[str]:
    trigger = f" [{decision['trigger']}]" if decision["trigger"] else ""
    return [
        f"  {decision['at']}{trigger} {decision['summary']}",
        *(f"    - {reason}" for reason in decision["reasons"]),
    ]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{state} {count}" for state, count in counts.items()) or "none"
