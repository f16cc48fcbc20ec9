"""Deploying, updating and deleting the stack under test: ``sam`` on a real account.

``Deployer`` is the seam: ``SamDeployer`` runs ``sam build`` and ``sam deploy`` (or deploys a
packaged template) and deletes through CloudFormation; tests use
``tools.acceptance.emulated.EmulatedDeployer`` (the nested templates in moto). No secret is
ever on a command line: the agent token is in the SecureString the run created, and the stack
gets only its path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tools.acceptance.aws import AwsAccount

REPOSITORY = Path(__file__).resolve().parents[2]
SAM_MANAGED_STACK = "aws-sam-cli-managed-default"
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")
DELETE_POLL_S = 15
# The lifecycle hook may hold a terminating instance up to InstanceTerminationGracePeriod
# (default 3600 s) while a job finishes; deletion waits a little longer than that.
DELETE_TIMEOUT_S = 4500


class DeploymentFailed(RuntimeError):
    """A deploy, update or delete did not complete; the message says which and why."""


@dataclass(frozen=True)
class StackSettings:
    """The stack parameters the acceptance run chooses (everything else keeps its default)."""

    stack_name: str
    queue: str
    token_parameter: str
    agents_per_instance: int
    min_size: int
    max_size: int
    scale_in_idle_period: int
    agent_tags: str
    image_id: str | None = None

    def parameter_overrides(self) -> dict[str, str]:
        overrides = {
            "BuildkiteQueue": self.queue,
            "BuildkiteAgentTokenParameterStorePath": self.token_parameter,
            "AgentsPerInstance": str(self.agents_per_instance),
            "MinSize": str(self.min_size),
            "MaxSize": str(self.max_size),
            "ScaleInIdlePeriod": str(self.scale_in_idle_period),
        }
        if self.agent_tags:
            overrides["BuildkiteAgentTags"] = self.agent_tags
        if self.image_id:
            overrides["ImageId"] = self.image_id
        return overrides


@dataclass(frozen=True)
class StackHandle:
    """What the run needs to know about the deployed stack."""

    group_name: str
    scaler_log_group: str


class Deployer(Protocol):
    def deploy(self, settings: StackSettings) -> StackHandle: ...

    def update(self, settings: StackSettings) -> None: ...

    def delete(self) -> None: ...

    def leftovers(self) -> list[str]: ...


def scaler_log_group(stack_name: str) -> str:
    """The scheduled scaler's log group, as template.yaml names it."""
    return f"/aws/lambda/{stack_name}-agent-scaler"


Runner = Callable[[list[str]], None]


def run_command(command: list[str]) -> None:
    """Run a command in the repository, its output on this terminal; raise if it fails."""
    completed = subprocess.run(command, cwd=REPOSITORY, check=False)
    if completed.returncode != 0:
        raise DeploymentFailed(f"{' '.join(command[:2])} exited with {completed.returncode}")


class SamDeployer:
    """``sam build`` + ``sam deploy`` (or a packaged template), deletion by CloudFormation."""

    def __init__(
        self,
        account: AwsAccount,
        region: str,
        *,
        template: Path | None = None,
        run: Runner = run_command,
    ) -> None:
        self._account = account
        self._region = region
        self._template = template
        self._run = run
        self._stack_name: str | None = None
        self._built = False

    def deploy(self, settings: StackSettings) -> StackHandle:
        self._stack_name = settings.stack_name
        if self._template is None and not self._built:
            self._run([_sam(), "build"])
            self._built = True
        self._sam_deploy(settings)
        outputs = self._account.stack_outputs(settings.stack_name)
        return StackHandle(
            group_name=outputs["AutoScalingGroupName"],
            scaler_log_group=scaler_log_group(settings.stack_name),
        )

    def update(self, settings: StackSettings) -> None:
        self._sam_deploy(settings)

    def _sam_deploy(self, settings: StackSettings) -> None:
        command = [
            _sam(),
            "deploy",
            "--stack-name",
            settings.stack_name,
            "--region",
            self._region,
            "--capabilities",
            *CAPABILITIES,
            "--resolve-s3",
            "--s3-prefix",
            settings.stack_name,
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            "--tags",
            f"buildkite-acceptance={settings.stack_name}",
            "--parameter-overrides",
            *(f"{key}={value}" for key, value in settings.parameter_overrides().items()),
        ]
        if self._template is not None:
            command[2:2] = ["--template-file", str(self._template)]
        self._run(command)

    def delete(self) -> None:
        if self._stack_name is None:
            return
        cloudformation = self._account.client("cloudformation")
        cloudformation.delete_stack(StackName=self._stack_name)
        waiter = cloudformation.get_waiter("stack_delete_complete")
        try:
            waiter.wait(
                StackName=self._stack_name,
                WaiterConfig={
                    "Delay": DELETE_POLL_S,
                    "MaxAttempts": DELETE_TIMEOUT_S // DELETE_POLL_S,
                },
            )
        except Exception as error:
            raise DeploymentFailed(f"deleting stack {self._stack_name}: {error}") from error
        bucket = self._artifacts_bucket()
        if bucket is not None:
            s3 = self._account.client("s3")
            for key in self._artifacts(bucket):
                s3.delete_object(Bucket=bucket, Key=key)

    def leftovers(self) -> list[str]:
        if self._stack_name is None:
            return []
        found = []
        status = self._account.stack_status(self._stack_name)
        if status is not None:
            found.append(f"stack {self._stack_name} ({status})")
        bucket = self._artifacts_bucket()
        if bucket is not None:
            keys = self._artifacts(bucket)
            if keys:
                found.append(f"s3://{bucket}/{self._stack_name}/ ({len(keys)} objects)")
        return found

    def _artifacts_bucket(self) -> str | None:
        """SAM's managed bucket, where ``--resolve-s3`` put the run's artifacts."""
        if self._template is not None or self._account.stack_status(SAM_MANAGED_STACK) is None:
            return None
        return self._account.stack_outputs(SAM_MANAGED_STACK).get("SourceBucket")

    def _artifacts(self, bucket: str) -> list[str]:
        paginator = self._account.client("s3").get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=f"{self._stack_name}/")
            for item in page.get("Contents", [])
        ]


def _sam() -> str:
    """The ``sam`` next to this Python (the project's .venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("sam")
    if beside.exists():
        return str(beside)
    return shutil.which("sam") or "sam"
