"""Lambda entry point of the StopBuildkiteAgents custom resource.

Its `AutoScalingGroupName` property names the fleet's current group, which is also the physical
id. An Update whose old group name differs means the group was replaced: the old group is
drained (see group_drain). Create has nothing to drain; Delete changes nothing, because the
group it names is being deleted through its lifecycle hook or is already gone. crhelper sends
the response (a FAILED one with the error as reason on any exception, and on a timer just
before the function times out).
"""

from __future__ import annotations

from typing import Any

import aws_clients
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from custom_resources import leave_alone_on_delete, new_helper, preset_physical_id

from stop_buildkite_agents.group_drain import drain_group

logger = Logger(service="stop-buildkite-agents")
helper = new_helper()


def _group_name(properties: dict[str, Any]) -> str:
    group_name = properties.get("AutoScalingGroupName")
    if not isinstance(group_name, str) or not group_name:
        raise ValueError("resource property AutoScalingGroupName is required")
    return group_name


@helper.create
def record_group(event: dict[str, Any], _context: LambdaContext) -> str:
    preset_physical_id(helper, event)
    return _group_name(event["ResourceProperties"])


@helper.update
def drain_replaced_group(event: dict[str, Any], _context: LambdaContext) -> str:
    preset_physical_id(helper, event)
    group_name = _group_name(event["ResourceProperties"])
    old_group_name = event.get("OldResourceProperties", {}).get("AutoScalingGroupName")
    if old_group_name and old_group_name != group_name:
        report = drain_group(aws_clients.autoscaling(), aws_clients.ssm(), old_group_name)
        logger.info("Drained replaced group", extra=report.as_log_fields())
    else:
        logger.info(
            "Group not replaced: nothing to drain", extra={"auto_scaling_group": group_name}
        )
    return group_name


leave_alone_on_delete(helper, logger)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    helper(event, context)
