"""Lambda entry point of the AzRebalancingSuspender custom resource.

Create and Update suspend AZRebalance on the group named by `AutoScalingGroupName`; the group
name is the physical id, so when the group is replaced CloudFormation later sends a Delete for
the old name. Delete changes nothing: the group it names is being deleted or is already gone.
crhelper sends the response (a FAILED one with the error as reason on any exception, and on a
timer just before the function times out).
"""

from __future__ import annotations

from typing import Any

import aws_clients
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from custom_resources import leave_alone_on_delete, new_helper, preset_physical_id

from az_rebalancing_suspender.suspender import group_name_from, suspend_az_rebalancing

logger = Logger(service="az-rebalancing-suspender")
helper = new_helper()


@helper.create
@helper.update
def suspend(event: dict[str, Any], _context: LambdaContext) -> str:
    preset_physical_id(helper, event)
    group_name = group_name_from(event["ResourceProperties"])
    suspend_az_rebalancing(aws_clients.autoscaling(), group_name)
    logger.info("Suspended AZRebalance", extra={"auto_scaling_group": group_name})
    return group_name


leave_alone_on_delete(helper, logger)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    helper(event, context)
