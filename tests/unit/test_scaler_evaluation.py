"""One evaluation against an in-process moto Auto Scaling group, with a fake metrics source."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from agent_scaler import demand
from agent_scaler import evaluation as evaluation_module
from agent_scaler.config import Settings
from agent_scaler.evaluation import SCALE_OUT_ONLY_REASON, Scaler
from agent_scaler.group import GroupNotFoundError, ScalingActionError
from agent_scaler.policy import ScalerConfig
from agent_scaler.scale_out import CLAIM_TAG_PREFIX, claims_in
from agent_scaler.state_tags import (
    DEMAND_PEAKS_TAG,
    LAST_SCALE_IN_TAG,
    LAST_SCALE_OUT_TAG,
    format_peaks,
    format_time,
)
from aws_lambda_powertools import Logger
from buildkite_api import QueueMetrics, ServerError
from moto import mock_aws

from tools.testing.autoscaling import create_group
from tools.testing.faults import failing_calls

REGION = "us-east-1"
GROUP = "agents"
NOW = 1_724_051_327.0


@dataclass
class FakeMetrics:
    """Stands in for the agent API: returns the counts it holds, or raises ``error``."""

    counts: dict[str, int] = field(default_factory=dict)
    error: Exception | None = None
    max_call_duration_s: float = 1.0

    def read(self, queue: str) -> QueueMetrics:
        if self.error is not None:
            raise self.error
        counts = {"scheduled": 0, "running": 0, "waiting": 0, "idle": 0, "busy": 0, **self.counts}
        return QueueMetrics(
            scheduled_jobs=counts["scheduled"],
            running_jobs=counts["running"],
            waiting_jobs=counts["waiting"],
            idle_agents=counts["idle"],
            busy_agents=counts["busy"],
            total_agents=counts["idle"] + counts["busy"],
            organization_slug="acme",
            cluster_name=None,
            poll_interval_s=10.0,
            fetched_at=NOW,
        )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        autoscaling = boto3.client("autoscaling", region_name=REGION)
        create_group(
            autoscaling,
            GROUP,
            min_size=0,
            max_size=10,
            desired=0,
            ec2=ec2,
            protected_from_scale_in=True,
        )
        yield {"ec2": ec2, "autoscaling": autoscaling}


@pytest.fixture
def log_output() -> io.StringIO:
    return io.StringIO()


def make_scaler(
    aws: dict[str, Any],
    metrics: FakeMetrics,
    log_output: io.StringIO,
    group: str = GROUP,
    **config: Any,
) -> Scaler:
    settings = Settings(
        queue="default",
        agent_endpoint="http://127.0.0.1:9/v3",
        token_parameter="/buildkite/agent-token",
        auto_scaling_group_name=group,
        scaler=ScalerConfig(**config),
    )
    # A service name of its own per test: Powertools attaches a handler once per logger name.
    logger = Logger(
        service=f"agent-scaler-test-{uuid.uuid4().hex}",
        logger_handler=logging.StreamHandler(log_output),
    )
    return Scaler(
        settings=settings,
        metrics_reader=metrics,  # type: ignore[arg-type]
        autoscaling=aws["autoscaling"],
        ec2=aws["ec2"],
        logger=logger,
        wall_clock=lambda: NOW,
    )


def describe(aws: dict[str, Any]) -> dict[str, Any]:
    response = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
    return response["AutoScalingGroups"][0]


def tags(aws: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in describe(aws).get("Tags", [])}


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def emf_documents(output: str) -> list[dict[str, Any]]:
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [document for document in documents if "_aws" in document]


def test_scale_out_sets_desired_capacity_remembers_it_and_reports(
    aws: dict[str, Any], log_output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 4}), log_output)
    result = scaler.evaluate()

    assert describe(aws)["DesiredCapacity"] == 4
    assert result.scaled_out_from == 0
    state_tags = {k: v for k, v in tags(aws).items() if not k.startswith(CLAIM_TAG_PREFIX)}
    # The scale-out's time, and the demand it saw (4 instances) for the idle-tail rule.
    assert state_tags == {
        LAST_SCALE_OUT_TAG: format_time(NOW),
        DEMAND_PEAKS_TAG: format_peaks(demand.record((), NOW, 4, 600)),
    }
    # The scale-out's claim stays, ended, for concurrent scale-outs to honour (see scale_out).
    (claim,) = claims_in(tags(aws))
    assert (claim.wanted, claim.started_at, claim.ended_at) == (4, NOW, NOW)

    (line,) = log_lines(log_output)
    assert line["level"] == "INFO"
    assert line["message"] == "Scaling evaluation for queue 'default': scale out 0 -> 4"
    assert line["decision"]["desired_capacity"] == 4
    assert line["observation"]["jobs"]["scheduled"] == 4
    assert "scale out: desired capacity 0 -> 4" in line["reasons"]

    (emf,) = emf_documents(capsys.readouterr().out)
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Buildkite"
    assert directive["Dimensions"] == [["Org", "Queue"]]
    assert (emf["Org"], emf["Queue"]) == ("acme", "default")
    assert {metric["Name"] for metric in directive["Metrics"]} == {
        "ScheduledJobsCount",
        "RunningJobsCount",
        "WaitingJobsCount",
        "IdleAgentsCount",
        "BusyAgentsCount",
        "DesiredCapacity",
        "ScalingDecision",
        "ScalerEvaluations",
        "ScheduledJobsAtMaxSize",
        "InstancesNotRegistered",
    }
    values = (emf["ScheduledJobsCount"], emf["DesiredCapacity"], emf["ScalingDecision"])
    assert values == ([4.0], [4.0], [4.0])
    # The heartbeat counts the evaluation; MaxSize 10 was not reached, so nothing is capped.
    assert (emf["ScalerEvaluations"], emf["ScheduledJobsAtMaxSize"]) == ([1.0], [0.0])


def test_jobs_waiting_while_the_group_is_at_max_size_are_reported(
    aws: dict[str, Any], log_output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # 14 jobs need 14 instances; MaxSize is 10: the scaler goes to 10 and reports all 14 jobs
    # as waiting at MaxSize (the "capacity capped" alarm's metric).
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 14}), log_output)
    scaler.evaluate()

    assert describe(aws)["DesiredCapacity"] == 10
    (emf,) = emf_documents(capsys.readouterr().out)
    assert emf["ScheduledJobsAtMaxSize"] == [14.0]
    assert emf["ScalerEvaluations"] == [1.0]


def test_repeated_evaluations_while_instances_boot_change_nothing(
    aws: dict[str, Any], log_output: io.StringIO
) -> None:
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 4}), log_output)
    scaler.evaluate()
    written = tags(aws)
    for _ in range(3):
        result = scaler.evaluate()
        assert result.decision.desired_capacity is None
    assert describe(aws)["DesiredCapacity"] == 4
    assert tags(aws) == written
    assert [line["message"].rsplit(": ", 1)[1] for line in log_lines(log_output)] == [
        "scale out 0 -> 4",
        "no change",
        "no change",
        "no change",
    ]


def test_drains_proven_idle_instances_through_the_group(
    aws: dict[str, Any], log_output: io.StringIO
) -> None:
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=3)
    scaler = make_scaler(
        aws,
        FakeMetrics({"idle": 3}),
        log_output,
        disable_scale_in=False,
        scale_in_cooldown_period=0,
    )
    result = scaler.evaluate()

    group = describe(aws)
    assert len(result.decision.drain_instance_ids) == 3
    assert group["DesiredCapacity"] == 0
    assert group["Instances"] == []
    assert tags(aws)[LAST_SCALE_IN_TAG] == format_time(NOW)
    (line,) = log_lines(log_output)
    assert line["decision"]["drain_rule"] == "provably idle"


def test_the_push_evaluation_never_drains(aws: dict[str, Any], log_output: io.StringIO) -> None:
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=3)
    scaler = make_scaler(
        aws,
        FakeMetrics({"idle": 3}),
        log_output,
        disable_scale_in=False,
        scale_in_cooldown_period=0,
    )
    result = scaler.evaluate(scale_in=False)
    assert result.decision.drain_instance_ids == ()
    assert describe(aws)["DesiredCapacity"] == 3
    assert SCALE_OUT_ONLY_REASON in log_lines(log_output)[0]["reasons"]


def test_a_stale_evaluation_never_lowers_what_another_one_raised(
    aws: dict[str, Any], log_output: io.StringIO
) -> None:
    class RaisedMeanwhile:
        """The group as another evaluation leaves it between our read and our write."""

        def __init__(self, client: Any) -> None:
            self._client = client
            self._describes = 0

        def describe_auto_scaling_groups(self, **kwargs: Any) -> Any:
            self._describes += 1
            if self._describes == 2:
                self._client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=6)
            return self._client.describe_auto_scaling_groups(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

    scaler = make_scaler(aws, FakeMetrics({"scheduled": 4}), log_output)
    scaler.autoscaling = RaisedMeanwhile(aws["autoscaling"])
    result = scaler.evaluate()

    assert describe(aws)["DesiredCapacity"] == 6
    assert result.decision.desired_capacity is None
    assert LAST_SCALE_OUT_TAG not in tags(aws)
    assert any("already raised to 4 or more" in r for r in log_lines(log_output)[0]["reasons"])


@pytest.mark.parametrize(
    ("metrics", "group", "error"),
    [
        pytest.param(
            FakeMetrics({"scheduled": 4}, error=ServerError("HTTP 503", status=503)),
            GROUP,
            ServerError,
            id="API error",
        ),
        pytest.param(
            FakeMetrics({"scheduled": 4}), "no-such-group", GroupNotFoundError, id="group"
        ),
    ],
)
def test_a_missing_input_changes_nothing_and_raises(
    aws: dict[str, Any],
    log_output: io.StringIO,
    metrics: FakeMetrics,
    group: str,
    error: type[Exception],
) -> None:
    scaler = make_scaler(aws, metrics, log_output, group=group)
    with pytest.raises(error):
        scaler.evaluate()
    assert describe(aws)["DesiredCapacity"] == 0
    assert tags(aws) == {}


def test_a_metrics_problem_never_blocks_scaling(
    aws: dict[str, Any], log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise ValueError("EMF serialization failed")

    monkeypatch.setattr(evaluation_module, "emit_metrics", broken)
    make_scaler(aws, FakeMetrics({"scheduled": 2}), log_output).evaluate()
    assert describe(aws)["DesiredCapacity"] == 2
    levels = [(line["level"], line["message"]) for line in log_lines(log_output)]
    assert levels[-1] == (
        "ERROR",
        "Publishing the scaler's metrics failed; scaling is unaffected",
    )


def test_an_unreadable_state_tag_is_reported_and_scaling_goes_on(
    aws: dict[str, Any], log_output: io.StringIO
) -> None:
    aws["autoscaling"].create_or_update_tags(
        Tags=[
            {
                "ResourceId": GROUP,
                "ResourceType": "auto-scaling-group",
                "Key": LAST_SCALE_OUT_TAG,
                "Value": "garbage",
                "PropagateAtLaunch": False,
            }
        ]
    )
    make_scaler(
        aws, FakeMetrics({"scheduled": 1}), log_output, scale_out_cooldown_period=300
    ).evaluate()
    assert describe(aws)["DesiredCapacity"] == 1
    assert tags(aws)[LAST_SCALE_OUT_TAG] == format_time(NOW)
    first = log_lines(log_output)[0]
    assert first["level"] == "ERROR"
    assert LAST_SCALE_OUT_TAG in first["message"]


def test_a_partial_drain_failure_records_the_cooldown_and_still_fails(
    aws: dict[str, Any], log_output: io.StringIO
) -> None:
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=3)
    scaler = make_scaler(
        aws,
        FakeMetrics({"idle": 3}),
        log_output,
        disable_scale_in=False,
        scale_in_cooldown_period=600,
    )
    refused = "ScalingActivityInProgress"
    with (
        failing_calls(
            aws["autoscaling"], "TerminateInstanceInAutoScalingGroup", refused, "busy", first=1
        ),
        pytest.raises(ScalingActionError, match=r"draining 1 of 3 instance\(s\) failed"),
    ):
        scaler.evaluate()

    # Two drained; the cooldown is recorded, so the next evaluation does not drain again.
    assert describe(aws)["DesiredCapacity"] == 1
    assert tags(aws)[LAST_SCALE_IN_TAG] == format_time(NOW)
    (line,) = log_lines(log_output)
    assert len(line["decision"]["drain_instance_ids"]) == 2
    assert any(refused in reason for reason in line["reasons"])


def test_a_lower_write_landing_after_our_scale_out_is_raised_again(
    aws: dict[str, Any], log_output: io.StringIO
) -> None:
    class StaleWriterLandsLate:
        """Another scale-out that read capacity 0 and wanted 2 writes just after our write."""

        def __init__(self, client: Any) -> None:
            self._client = client
            self.stale_writes = 0

        def set_desired_capacity(self, **kwargs: Any) -> Any:
            response = self._client.set_desired_capacity(**kwargs)
            if not self.stale_writes:
                self.stale_writes += 1
                self._client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=2)
            return response

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

    scaler = make_scaler(aws, FakeMetrics({"scheduled": 6}), log_output)
    scaler.autoscaling = StaleWriterLandsLate(aws["autoscaling"])
    result = scaler.evaluate()

    assert describe(aws)["DesiredCapacity"] == 6
    assert result.scaled_out_from == 0


def test_instances_without_agents_long_after_launch_are_logged_and_counted_in_a_metric(
    aws: dict[str, Any], log_output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=2)
    instance_ids = sorted(i["InstanceId"] for i in describe(aws)["Instances"])
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 2}), log_output)
    scaler.wall_clock = lambda: time.time() + 1000  # moto launched them just now

    result = scaler.evaluate()

    assert sorted(result.decision.unregistered_instance_ids) == instance_ids
    assert describe(aws)["DesiredCapacity"] == 2  # not replaced
    warning = next(line for line in log_lines(log_output) if line["level"] == "WARNING")
    assert warning["message"].startswith("2 in-service instance(s) of group 'agents' have no")
    assert sorted(warning["unregistered_instance_ids"]) == instance_ids
    (emf,) = emf_documents(capsys.readouterr().out)
    assert emf["InstancesNotRegistered"] == [2.0]
    assert (emf["Org"], emf["Queue"]) == ("acme", "default")
