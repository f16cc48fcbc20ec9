"""The crhelper set-up shared by the fleet's custom-resource functions.

crhelper sends CloudFormation's response: a FAILED one with the error as reason on any
exception, and one on a timer just before the function times out, so a stack never waits an
hour for an answer.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from crhelper import CfnResource


def new_helper() -> CfnResource:
    """A crhelper resource that logs at INFO and answers a Delete at once.

    sleep_on_delete=0: nothing here deletes the function's own log group, so there is no reason
    to hold a Delete response back (crhelper's default would wait two minutes).
    """
    return CfnResource(log_level="INFO", boto_level="WARNING", sleep_on_delete=0)


def preset_physical_id(helper: CfnResource, event: dict[str, Any]) -> None:
    """Give the early answers a physical id too.

    crhelper's timeout answer (and its answer to an exception) carries whatever physical id is
    set when it fires; CloudFormation needs one, so it is set before any work starts: the
    existing id for Update/Delete, a generated one for Create.
    """
    helper.PhysicalResourceId = event.get("PhysicalResourceId") or helper.generate_physical_id(
        event
    )


def leave_alone_on_delete(helper: CfnResource, logger: Logger) -> None:
    """Answer Delete with success and change nothing.

    For resources whose physical id names the Auto Scaling group: on Delete that group is being
    deleted with the stack, or was replaced and is already gone.
    """

    @helper.delete
    def leave_alone(event: dict[str, Any], _context: Any) -> str:
        preset_physical_id(helper, event)
        logger.info("Delete: nothing to undo", extra={"physical_id": event["PhysicalResourceId"]})
        return event["PhysicalResourceId"]
