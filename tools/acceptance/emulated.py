"""The acceptance run against emulators: moto in server mode, the Buildkite emulator, a fake fleet.

What stands in for what:

- AWS: moto on 127.0.0.1 (``tools.demo.endpoints``); the run's ``AwsAccount`` points at it.
- Buildkite: the project's emulator, whose REST API (pipelines, builds, agents) the run's
  ``BuildkiteRest`` calls with the emulator's access token.
- ``sam deploy``: ``EmulatedDeployer`` creates and updates the nested templates in moto with
  ``tools.demo.stacks`` (the root template's SAM transform does not run in moto).
- Instances booting, agents running jobs, idling out and terminating themselves:
  ``tools.demo.fleet.EmulatedFleet``; the scheduled scaler: the real handler, invoked every
  virtual minute in lock-step with the world (its poll loop's sleeps are virtual), its log
  lines written to the scaler's log group in moto's CloudWatch Logs as Lambda would.
- Time: ``EmulatedWorld`` is the run's clock. ``now()`` is the emulator's virtual clock (as Unix
  seconds, the origin of its REST timestamps) and ``sleep(s)`` moves the whole world ``s``
  virtual seconds forward, so an hour-long run takes seconds.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import requests
from agent_scaler import handler as scaler_handler
from agent_scaler.handler import run_scheduled
from botocore.exceptions import ClientError

from tools.acceptance.aws import AwsAccount
from tools.acceptance.buildkite import BuildkiteRest
from tools.acceptance.deploy import StackHandle, StackSettings, scaler_log_group
from tools.demo.endpoints import Endpoints, running_endpoints
from tools.demo.fleet import EmulatedFleet
from tools.demo.replay import (
    FUNCTION_NAME,
    SCALER_TIMEOUT_S,
    SCHEDULE_PERIOD_S,
    ScalerInvocationError,
    scaler_environment,
    scheduled_event,
)
from tools.demo.stacks import Deployment, FleetParameters, deploy, update_fleet
from tools.invoke_scaler import LocalContext, environment

# The scaler's PollInterval: finer ticks only cost time.
TICK_S = 10.0
BOOT_DELAY_S = 40.0
ORGANIZATION = "acme"
LOG_STREAM = "emulated"
NESTED_STACKS = ("monitoring", "fleet", "storage", "network")


def cached_clients(endpoints: Endpoints) -> Callable[[str], Any]:
    """One boto3 client per service (making one takes most of a second)."""
    return functools.cache(endpoints.client)


class _StampedLines(io.TextIOBase):
    """A text stream that keeps each complete line with the clock's time when it was written."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._partial = ""
        self.lines: list[tuple[float, str]] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *complete, self._partial = (self._partial + text).split("\n")
        self.lines.extend((self._clock(), line) for line in complete if line.strip())
        return len(text)


class _ScalerInvocation:
    """One scheduled invocation of the real handler, run in lock-step with the world.

    The handler runs in its own thread, but only while the world hands it the turn: its
    poll loop's ``sleep`` gives the turn back and waits until the world's clock reaches the
    wake-up time. So the run's polls see the world between the scaler's evaluations, as they
    would on AWS, and exactly one of the two threads runs at any time.
    """

    def __init__(
        self, world: EmulatedWorld, environment_variables: dict[str, str], log: _StampedLines
    ) -> None:
        self._world = world
        self._environment = environment_variables
        self._log = log
        self._to_scaler = threading.Semaphore(0)
        self._to_world = threading.Semaphore(0)
        self.wake_at: float | None = None
        self.finished = False
        self.error: BaseException | None = None
        self.abandoned = False
        self._thread = threading.Thread(target=self._invoke, name="scaler", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._wait_for_turn_back()

    def resume(self) -> None:
        self._to_scaler.release()
        self._wait_for_turn_back()

    def _wait_for_turn_back(self) -> None:
        # The scaler's EMF documents go to print(): its log while it has the turn.
        previous, sys.stdout = sys.stdout, self._log
        try:
            self._to_world.acquire()
        finally:
            sys.stdout = previous
        if self.finished:
            self._thread.join()

    def _invoke(self) -> None:
        world = self._world
        started = world.virtual_now()
        context = LocalContext(
            function_name=FUNCTION_NAME, deadline_s=SCALER_TIMEOUT_S, clock=world.virtual_now
        )
        try:
            with environment(self._environment):
                run_scheduled(
                    scheduled_event(started), context, clock=world.virtual_now, sleep=self._sleep
                )
        except BaseException as error:
            if not self.abandoned:
                self.error = error
        finally:
            self.finished = True
            self._to_world.release()

    def _sleep(self, seconds: float) -> None:
        self.wake_at = self._world.virtual_now() + seconds
        self._to_world.release()
        self._to_scaler.acquire()
        if self.abandoned:
            raise _Abandoned


class _Abandoned(Exception):
    """The stack went away during an invocation; the invocation stops."""


@dataclass
class _Attached:
    fleet: EmulatedFleet
    environment: dict[str, str]
    log_group: str
    log: _StampedLines
    next_invocation: float
    invocation: _ScalerInvocation | None = None
    shipped: int = 0


class EmulatedWorld:
    """The run's clock; once a stack is deployed, sleeping also runs its fleet and scaler."""

    def __init__(
        self,
        endpoints: Endpoints,
        clients: Callable[[str], Any],
        *,
        boot_delay_s: float = BOOT_DELAY_S,
    ) -> None:
        self._endpoints = endpoints
        self._clients = clients
        self._control = endpoints.emulator.control
        self._epoch = self._control.rest_epoch()
        self._boot_delay_s = boot_delay_s
        self._virtual_now = self._control.now()
        self._attached: _Attached | None = None
        self._stream_handler: logging.StreamHandler[Any] | None = None
        self._previous_stream: Any = None
        self.sleeps = 0

    def virtual_now(self) -> float:
        """Seconds on the emulator's virtual clock."""
        return self._virtual_now

    def now(self) -> float:
        return self._epoch + self._virtual_now

    def sleep(self, seconds: float) -> None:
        """Move the world ``seconds`` forward in ticks: jobs, instances, scaler invocations."""
        self.sleeps += 1
        target = self._virtual_now + seconds
        while True:
            attached = self._attached
            if attached is not None:
                self._run_scaler(attached)
            if self._virtual_now >= target:
                break
            moment = min(math.floor(self._virtual_now / TICK_S) * TICK_S + TICK_S, target)
            self._control.advance_to(moment)
            self._virtual_now = moment
            if attached is not None:
                attached.fleet.step(moment)
        if self._attached is not None:
            self._ship_scaler_log(self._attached)

    def _run_scaler(self, attached: _Attached) -> None:
        """Start a due invocation, or give the running one its turn when its sleep is over."""
        invocation = attached.invocation
        now = self._virtual_now
        if invocation is None and now >= attached.next_invocation:
            attached.next_invocation += SCHEDULE_PERIOD_S
            invocation = attached.invocation = _ScalerInvocation(
                self, attached.environment, attached.log
            )
            invocation.start()
        elif invocation is not None and invocation.wake_at is not None:
            if now < invocation.wake_at:
                return
            invocation.resume()
        else:
            return
        # Instances the evaluation launched are seen at once, not at the next tick.
        attached.fleet.step(now)
        if invocation.finished:
            attached.invocation = None
            if invocation.error is not None:
                raise ScalerInvocationError(
                    f"the scaler invocation failed ({type(invocation.error).__name__}): "
                    f"{invocation.error}"
                ) from invocation.error

    def attach(self, settings: StackSettings, deployment: Deployment) -> str:
        """Start the fleet and the scaler of a deployed stack; returns the scaler's log group."""
        logs = self._clients("logs")
        log_group = scaler_log_group(settings.stack_name)
        logs.create_log_group(logGroupName=log_group)
        logs.create_log_stream(logGroupName=log_group, logStreamName=LOG_STREAM)
        fleet = EmulatedFleet(
            autoscaling=self._clients("autoscaling"),
            control=self._control,
            group_name=deployment.group_name,
            queue=settings.queue,
            agents_per_instance=settings.agents_per_instance,
            boot_delay_s=self._boot_delay_s,
            idle_period_s=settings.scale_in_idle_period,
            log=lambda at, line: None,
        )
        log = _StampedLines(self.now)
        handler = scaler_handler.logger.registered_handler
        if isinstance(handler, logging.StreamHandler):
            self._stream_handler = handler
            self._previous_stream = handler.setStream(log)
        environment_variables = scaler_environment(
            aws_environment=self._endpoints.aws_environment(),
            agent_endpoint=self._endpoints.emulator.url,
            queue=settings.queue,
            token_parameter=settings.token_parameter,
            group_name=deployment.group_name,
            agents_per_instance=settings.agents_per_instance,
            min_size=settings.min_size,
            max_size=settings.max_size,
            scale_in_idle_period=settings.scale_in_idle_period,
        )
        self._attached = _Attached(
            fleet, environment_variables, log_group, log, next_invocation=self._virtual_now
        )
        return log_group

    def detach(self) -> None:
        """The stack is going: its scaler stops (an invocation under way is abandoned)."""
        attached, self._attached = self._attached, None
        if attached is None:
            return
        invocation = attached.invocation
        if invocation is not None and not invocation.finished:
            invocation.abandoned = True
            invocation.resume()
        self._ship_scaler_log(attached)
        if self._stream_handler is not None:
            self._stream_handler.setStream(self._previous_stream)
            self._stream_handler = None

    def _ship_scaler_log(self, attached: _Attached) -> None:
        fresh = attached.log.lines[attached.shipped :]
        if not fresh:
            return
        self._clients("logs").put_log_events(
            logGroupName=attached.log_group,
            logStreamName=LOG_STREAM,
            logEvents=[{"timestamp": int(at * 1000), "message": line} for at, line in fresh],
        )
        attached.shipped += len(fresh)


class EmulatedDeployer:
    """Stands in for ``sam deploy``: the nested templates in moto, the world attached to them."""

    def __init__(
        self, endpoints: Endpoints, world: EmulatedWorld, clients: Callable[[str], Any]
    ) -> None:
        self._endpoints = endpoints
        self._clients = clients
        self._world = world
        self._deployment: Deployment | None = None
        self._parameters: FleetParameters | None = None
        self._log_group: str | None = None
        self.log: list[str] = []
        self.updates: list[StackSettings] = []

    def deploy(self, settings: StackSettings) -> StackHandle:
        self._parameters = FleetParameters(
            parent_stack_name=settings.stack_name,
            queue=settings.queue,
            agent_endpoint=self._endpoints.emulator.url,
            agents_per_instance=settings.agents_per_instance,
            max_size=settings.max_size,
            scale_in_idle_period=settings.scale_in_idle_period,
            agent_tags=settings.agent_tags,
            token_parameter=settings.token_parameter,
        )
        self._deployment = deploy(self._clients, self._parameters, None, self.log.append)
        self._log_group = self._world.attach(settings, self._deployment)
        return StackHandle(self._deployment.group_name, self._log_group)

    def update(self, settings: StackSettings) -> None:
        if self._deployment is None or self._parameters is None:
            raise RuntimeError("update before deploy")
        self._parameters = replace(self._parameters, agent_tags=settings.agent_tags)
        gap = update_fleet(self._clients, self._deployment, self._parameters)
        if gap is not None:
            self.log.append(f"not updated by moto: {gap.logical_id}; instead {gap.equivalent}")
        self.updates.append(settings)

    def delete(self) -> None:
        """Delete the stacks as deleting the root stack would, with the scaler's log group."""
        if self._parameters is None or self._deployment is None:
            return
        self._world.detach()
        group_name = self._deployment.group_name
        # CloudFormation empties a group before deleting it; moto would leave its instances.
        self._clients("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName=group_name, MinSize=0, MaxSize=0, DesiredCapacity=0
        )
        cloudformation = self._clients("cloudformation")
        for short_name in NESTED_STACKS:
            name = f"{self._parameters.parent_stack_name}-{short_name}"
            if short_name == "storage":
                self._terminate_instances(group_name)
            try:
                cloudformation.delete_stack(StackName=name)
            except ClientError as error:
                if short_name != "network" or "DependencyViolation" not in str(error):
                    raise
                self._delete_route_tables(self._deployment.stack("network").outputs["VpcId"])
                cloudformation.delete_stack(StackName=name)
        # The demo put the monitoring stack's alarms through PutMetricAlarm (a gap moto leaves);
        # deleting the stack on AWS deletes them.
        alarms = self._alarm_names()
        if alarms:
            self._clients("cloudwatch").delete_alarms(AlarmNames=alarms)
        if self._log_group is not None:
            logs = self._clients("logs")
            if logs.describe_log_groups(logGroupNamePrefix=self._log_group)["logGroups"]:
                logs.delete_log_group(logGroupName=self._log_group)

    def _alarm_names(self) -> list[str]:
        """The alarms of this run's stack (the monitoring stack names them <stack>-<what>)."""
        assert self._parameters is not None
        prefix = f"{self._parameters.parent_stack_name}-"
        pages = (
            self._clients("cloudwatch")
            .get_paginator("describe_alarms")
            .paginate(AlarmNamePrefix=prefix)
        )
        return [alarm["AlarmName"] for page in pages for alarm in page["MetricAlarms"]]

    def _delete_route_tables(self, vpc_id: str) -> None:
        """moto cannot delete a template's route table, so it cannot delete the VPC either;
        deleting the stack on AWS deletes both."""
        ec2 = self._clients("ec2")
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        for table in tables["RouteTables"]:
            if not any(item.get("Main") for item in table.get("Associations", [])):
                ec2.delete_route_table(RouteTableId=table["RouteTableId"])
                self.log.append(
                    f"not deleted by moto: route table {table['RouteTableId']}; deleted by "
                    "DeleteRouteTable so the VPC could go"
                )

    def _terminate_instances(self, group_name: str) -> None:
        """Deleting a group terminates its instances on AWS; moto leaves them running."""
        left = AwsAccount(self._clients).instances_left(group_name)
        if left:
            self._clients("ec2").terminate_instances(InstanceIds=left)

    def leftovers(self) -> list[str]:
        if self._parameters is None:
            return []
        account = AwsAccount(self._clients)
        found = []
        for short_name in NESTED_STACKS:
            name = f"{self._parameters.parent_stack_name}-{short_name}"
            status = account.stack_status(name)
            if status is not None:
                found.append(f"stack {name} ({status})")
        if self._log_group is not None:
            groups = self._clients("logs").describe_log_groups(logGroupNamePrefix=self._log_group)[
                "logGroups"
            ]
            if any(group["logGroupName"] == self._log_group for group in groups):
                found.append(f"log group {self._log_group}")
        found += [f"alarm {name}" for name in self._alarm_names()]
        return found


@dataclass(frozen=True)
class EmulatedBackends:
    """Everything a test needs to run the command against emulators, and to check on it."""

    endpoints: Endpoints
    world: EmulatedWorld
    deployer: EmulatedDeployer
    api_token: str
    agent_token: str
    aws_client: Callable[[str], Any]

    @property
    def api_url(self) -> str:
        return self.endpoints.emulator.rest_url

    def account(self) -> AwsAccount:
        return AwsAccount(self.aws_client)

    def buildkite(self, organization: str) -> BuildkiteRest:
        return BuildkiteRest(self.api_url, organization, self.api_token)


@contextmanager
def emulated_backends(*, boot_delay_s: float = BOOT_DELAY_S) -> Iterator[EmulatedBackends]:
    """moto and the emulator on 127.0.0.1 (stopped on the way out) and the fake fleet."""
    agent_token = secrets.token_hex(20)
    with running_endpoints(agent_token) as endpoints:
        # moto's accounts live in this process, shared by every server it starts: begin and
        # end with an empty one, so no run sees, or leaves, another's resources.
        _reset_moto(endpoints)
        try:
            yield _backends(endpoints, agent_token, boot_delay_s)
        finally:
            _reset_moto(endpoints)


def _backends(endpoints: Endpoints, agent_token: str, boot_delay_s: float) -> EmulatedBackends:
    clients = cached_clients(endpoints)
    world = EmulatedWorld(endpoints, clients, boot_delay_s=boot_delay_s)
    return EmulatedBackends(
        endpoints=endpoints,
        world=world,
        deployer=EmulatedDeployer(endpoints, world, clients),
        api_token=endpoints.emulator.api_token,
        agent_token=agent_token,
        aws_client=clients,
    )


def _reset_moto(endpoints: Endpoints) -> None:
    response = requests.post(f"{endpoints.aws_url}/moto-api/reset", timeout=30)
    response.raise_for_status()
