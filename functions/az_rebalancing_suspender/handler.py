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
from crhelper import CfnResource

from az_rebalancing_suspender.suspender import group_name_from, suspend_az_rebalancing

logger = Logger(service="az-rebalancing-suspender")
# sleep_on_delete=0: nothing here deletes this function's own log group, so there is no reason
# to hold a Delete response back (crhelper's default would wait two minutes).
helper = CfnResource(log_level="INFO", boto_level="WARNING", sleep_on_delete=0)


def _preset_physical_id(event: dict[str, Any]) -> None:
    """Give the early answers a physical id too.

    crhelper's timeout answer (and its answer to an exception) carries whatever physical id is
    set when it fires; CloudFormation needs one, so it is set before any work starts: the
    existing id for Update/Delete, a generated one for Create.
    """
    helper.PhysicalResourceId = event.get("PhysicalResourceId") or helper.generate_physical_id(
        event
    )


@helper.create
@helper.update
def suspend(event: dict[str, Any], _context: LambdaContext) -> str:
    _preset_physical_id(event)
    group_name = group_name_from(event["ResourceProperties"])
    suspend_az_rebalancing(aws_clients.autoscaling(), group_name)
    logger.info("Suspended AZRebalance", extra={"auto_scaling_group": group_name})
    return group_name


@helper.delete
def leave_group_alone(event: dict[str, Any], _context: LambdaContext) -> str:
    _preset_physical_id(event)
    logger.info("Delete: nothing to undo", extra={"physical_id": event["PhysicalResourceId"]})
    return event["PhysicalResourceId"]


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    helper(event, context)
