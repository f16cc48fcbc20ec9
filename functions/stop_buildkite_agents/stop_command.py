"""Send the Run Command that stops the Buildkite agent gracefully, in batches of instances."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from botocore.client import BaseClient

RUN_SHELL_SCRIPT = "AWS-RunShellScript"
# SendCommand accepts at most 50 instance ids per call.
MAX_INSTANCES_PER_COMMAND = 50
# `--no-block` queues the stop and returns at once: systemd sends the agent SIGTERM, the agent
# finishes its running job (the unit waits without a stop timeout), then the unit's
# ExecStopPost terminates the instance. The command itself never waits for a job.
STOP_AGENT_SCRIPT = ["systemctl stop --no-block buildkite-agent"]
DELIVERY_TIMEOUT_SECONDS = 600
EXECUTION_TIMEOUT_SECONDS = "60"


def batches(items: Sequence[str], size: int = MAX_INSTANCES_PER_COMMAND) -> Iterator[list[str]]:
    """Consecutive slices of `items` of at most `size` elements."""
    if size < 1:
        raise ValueError("batch size must be positive")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@dataclass
class StopCommands:
    """The Run Commands sent, and the instances Systems Manager could not reach."""

    command_ids: list[str] = field(default_factory=list)
    unreachable_instance_ids: list[str] = field(default_factory=list)


def send_stop_agent_commands(
    ssm: BaseClient, instance_ids: Sequence[str], reason: str
) -> StopCommands:
    """Ask every instance to stop its agent gracefully, batch by batch.

    SendCommand refuses a whole batch (InvalidInstanceId) when one of its instances is not
    managed by Systems Manager yet; such a batch is recorded and the rest are still sent. Its
    agents are drained anyway when CloudFormation deletes the old group: every termination
    passes the fleet's terminating lifecycle hook. Any other error is raised.
    """
    sent = StopCommands()
    for batch in batches(instance_ids):
        try:
            response = ssm.send_command(
                DocumentName=RUN_SHELL_SCRIPT,
                InstanceIds=batch,
                Comment=reason[:100],
                TimeoutSeconds=DELIVERY_TIMEOUT_SECONDS,
                # One unreachable instance must not stop delivery to the rest of the batch.
                MaxConcurrency="100%",
                MaxErrors="100%",
                Parameters={
                    "commands": STOP_AGENT_SCRIPT,
                    "executionTimeout": [EXECUTION_TIMEOUT_SECONDS],
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "InvalidInstanceId":
                raise
            sent.unreachable_instance_ids.extend(batch)
            continue
        sent.command_ids.append(response["Command"]["CommandId"])
    return sent
