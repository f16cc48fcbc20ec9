"""nested/monitoring.yaml: the alarms, their topic and the dashboard, and what feeds them.

The cross-check runs the producers for real: the scaler's reporting code prints its EMF
document, ``packer/conf/bin/bk-telemetry`` prints the instance's EMF lines, and every alarm's
metric (namespace, name, dimension set, filtered dimension values) and every dashboard
expression must match something they produce, or an AWS metric of a resource the stack passes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_scaler.policy import Decision, GroupObservation, Instance, Observation, WarmPool
from agent_scaler.reporting import emit_metrics
from buildkite_api import QueueMetrics

from tools.cfn_template import Rendered, load_template, render

ROOT = Path(__file__).resolve().parents[2]
TELEMETRY = ROOT / "packer" / "conf" / "bin" / "bk-telemetry"
QUEUE = "builds/large"
PARAMETERS = {
    "ParentStackName": "ci",
    "BuildkiteQueue": QUEUE,
    "AgentScalerFunctionName": "ci-AgentScalerFunction-AbC",
    "AutoScalingGroupName": "ci-Fleet-1-AgentAutoScaleGroup-XyZ",
}
PUSH = {
    "AgentScalerPushFunctionName": "ci-AgentScalerPushFunction-DeF",
    "JobScheduledQueueName": "ci-JobScheduledQueue-GhI",
}
ALWAYS = {
    "ci-scaler-errors",
    "ci-scaler-stalled",
    "ci-capacity-capped",
    "ci-boot-failures",
    "ci-drain-limit-reached",
}
# AWS's own metrics the alarms may use, with the dimension naming the stack's resource and the
# parameter that holds that resource's name.
AWS_METRICS = {
    ("AWS/Lambda", "Errors"): (
        "FunctionName",
        {"AgentScalerFunctionName", "AgentScalerPushFunctionName"},
    ),
    ("AWS/Lambda", "Duration"): ("FunctionName", {"AgentScalerFunctionName"}),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"): ("QueueName", {"JobScheduledQueueName"}),
    ("AWS/SQS", "NumberOfMessagesReceived"): ("QueueName", {"JobScheduledQueueName"}),
}


@dataclass(frozen=True)
class Produced:
    """One metric a producer emitted: where, what, under which dimension values."""

    namespace: str
    name: str
    dimensions: frozenset[str]
    values: tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "nested" / "monitoring.yaml")


def rendered(template: dict[str, Any], **overrides: str) -> Rendered:
    return render(template, {**PARAMETERS, **overrides})


def alarms(stack: Rendered) -> dict[str, dict[str, Any]]:
    """Alarm name -> properties, intrinsics resolved."""
    result = {}
    for resource in stack.of_type("AWS::CloudWatch::Alarm").values():
        properties = stack.evaluate(resource["Properties"])
        result[properties["AlarmName"]] = properties
    return result


def dashboard(stack: Rendered) -> dict[str, Any]:
    (resource,) = stack.of_type("AWS::CloudWatch::Dashboard").values()
    return json.loads(stack.evaluate(resource["Properties"]["DashboardBody"]))


def emf_metrics(output: str) -> Iterator[Produced]:
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                values = tuple(sorted((name, document[name]) for name in dimension_set))
                for metric in directive["Metrics"]:
                    assert isinstance(document[metric["Name"]], (int, float, list))
                    yield Produced(
                        directive["Namespace"], metric["Name"], frozenset(dimension_set), values
                    )


@pytest.fixture(scope="module")
def scaler_metrics() -> list[Produced]:
    """What the real reporting code emits for one evaluation of QUEUE."""
    observation = Observation(
        metrics=QueueMetrics(
            scheduled_jobs=3,
            running_jobs=1,
            waiting_jobs=0,
            idle_agents=0,
            busy_agents=1,
            total_agents=1,
            organization_slug="acme",
            cluster_name=None,
            poll_interval_s=10.0,
            fetched_at=0.0,
        ),
        group=GroupObservation(
            name="agents",
            desired_capacity=1,
            min_size=0,
            max_size=4,
            # A group with a warm pool: every metric the scaler can emit is produced.
            warm_pool=WarmPool(instances=(Instance("i-warm", "Warmed:Stopped"),)),
        ),
    )
    decision = Decision(desired_capacity=4, target_capacity=4)
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        emit_metrics(observation, decision, QUEUE)
    produced = list(emf_metrics(captured.getvalue()))
    assert produced, "the scaler emitted no metric"
    return produced


@pytest.fixture(scope="module")
def instance_metrics(tmp_path_factory: pytest.TempPathFactory) -> list[Produced]:
    """What bk-telemetry prints for every boot and drain event."""
    root = tmp_path_factory.mktemp("instance")
    (root / "proc").mkdir()
    (root / "proc" / "uptime").write_text("61.20 100.00\n")
    environment = {
        "PATH": os.environ["PATH"],
        "BK_TEST_ROOT": str(root),
        "BUILDKITE_QUEUE": QUEUE,
    }
    output = ""
    for event in (
        ["boot-completed"],
        ["boot-failed"],
        ["drain-started"],
        ["drain-finished", "finished"],
        ["drain-finished", "cancelled"],
        ["drain-finished", "spot"],
    ):
        result = subprocess.run(
            ["bash", str(TELEMETRY), *event],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        output += result.stdout
    produced = list(emf_metrics(output))
    assert {metric.name for metric in produced} == {
        "BootDuration",
        "BootFailures",
        "DrainDuration",
        "Drains",
    }
    return produced


@pytest.fixture(scope="module")
def produced(scaler_metrics: list[Produced], instance_metrics: list[Produced]) -> list[Produced]:
    return [*scaler_metrics, *instance_metrics]


# --- Metrics Insights and SEARCH, as far as the templates use them ---------------------------

INSIGHTS = re.compile(
    r"SELECT (?P<function>[A-Z]+)\((?P<metric>\w+)\) FROM SCHEMA\(\"(?P<namespace>[^\"]+)\""
    r"(?P<dimensions>(?:, \w+)*)\) WHERE (?P<where>.+)"
)
CONDITION = re.compile(r"(\w+) = '([^']*)'")
SEARCH = re.compile(
    r"SEARCH\('\{(?P<schema>[^}]+)\} MetricName=\"(?P<metric>\w+)\""
    r"(?P<filters>(?: \w+=\"[^\"]*\")*)',"
    r" '(?P<stat>[\w.]+)', (?P<period>\d+)\)"
)
FILTER = re.compile(r"(\w+)=\"([^\"]*)\"")


def insights_query(expression: str) -> tuple[str, str, frozenset[str], dict[str, str]]:
    match = INSIGHTS.fullmatch(" ".join(expression.split()))
    assert match, f"not a Metrics Insights query this test understands: {expression!r}"
    where = match["where"]
    conditions = dict(CONDITION.findall(where))
    assert " AND ".join(f"{k} = '{v}'" for k, v in conditions.items()) == where, where
    dimensions = frozenset(d.strip() for d in match["dimensions"].split(",") if d.strip())
    return match["namespace"], match["metric"], dimensions, conditions


def search_expression(expression: str) -> tuple[str, str, frozenset[str], dict[str, str]]:
    match = SEARCH.fullmatch(expression)
    assert match, f"not a SEARCH expression this test understands: {expression!r}"
    namespace, *dimensions = match["schema"].split(",")
    return namespace, match["metric"], frozenset(dimensions), dict(FILTER.findall(match["filters"]))


def matches(
    produced: list[Produced],
    namespace: str,
    metric: str,
    dimensions: frozenset[str],
    conditions: dict[str, str],
) -> bool:
    """True when some producer emits this metric with exactly these dimensions and values."""
    assert set(conditions) <= dimensions, f"filter on a dimension outside {sorted(dimensions)}"
    return any(
        item.namespace == namespace
        and item.name == metric
        and item.dimensions == dimensions
        and all(dict(item.values).get(name) == value for name, value in conditions.items())
        for item in produced
    )


def check_aws_metric(
    namespace: str, metric: str, dimensions: list[dict[str, str]], parameters: dict[str, Any]
) -> None:
    assert (namespace, metric) in AWS_METRICS, (
        f"{namespace} {metric}: nothing in the stack emits it"
    )
    dimension, sources = AWS_METRICS[(namespace, metric)]
    assert [d["Name"] for d in dimensions] == [dimension]
    assert dimensions[0]["Value"] in {parameters[name] for name in sources}
    assert dimensions[0]["Value"], "an AWS metric on an empty resource name"


# --- tests -------------------------------------------------------------------------------------


def test_defaults_create_the_five_alarms_without_the_push_ones(template):
    stack = rendered(template)
    assert set(alarms(stack)) == ALWAYS
    assert not stack.of_type("AWS::SNS::Topic")


def test_with_the_push_trigger_its_errors_and_queue_age_are_watched(template):
    stack = rendered(template, **PUSH)
    found = alarms(stack)
    assert set(found) == ALWAYS | {"ci-push-scaler-errors", "ci-push-queue-backing-up"}
    age = found["ci-push-queue-backing-up"]
    assert (age["MetricName"], age["Threshold"], age["EvaluationPeriods"]) == (
        "ApproximateAgeOfOldestMessage",
        "120",
        3,
    )


@pytest.mark.parametrize("push", [False, True], ids=["defaults", "push"])
def test_every_alarm_watches_a_metric_the_stack_emits(template, produced, push):
    parameters = {**PARAMETERS, **(PUSH if push else {})}
    stack = render(template, parameters)
    for name, alarm in alarms(stack).items():
        if "Metrics" in alarm:
            (query,) = [m for m in alarm["Metrics"] if m.get("ReturnData", True)]
            assert len(alarm["Metrics"]) == 1, name
            namespace, metric, dimensions, conditions = insights_query(query["Expression"])
            assert conditions.get("Queue") == QUEUE, f"{name} is not filtered on the queue"
            assert matches(produced, namespace, metric, dimensions, conditions), (
                f"{name}: nothing emits {namespace} {metric} with dimensions "
                f"{sorted(dimensions)} and {conditions}"
            )
        else:
            check_aws_metric(
                alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"], stack.parameters
            )


@pytest.mark.parametrize("push", [False, True], ids=["defaults", "push"])
def test_every_dashboard_graph_shows_a_metric_the_stack_emits(template, produced, push):
    stack = render(template, {**PARAMETERS, **(PUSH if push else {})})
    body = dashboard(stack)
    graphs = [w for w in body["widgets"] if w["type"] == "metric"]
    assert len(graphs) == (6 if push else 5)
    for widget in graphs:
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):
                namespace, metric, dimensions, conditions = search_expression(row[0]["expression"])
                assert conditions == {"Queue": QUEUE}
                assert matches(produced, namespace, metric, dimensions, conditions), row
            else:
                namespace, metric, dimension, value, _options = row
                check_aws_metric(
                    namespace, metric, [{"Name": dimension, "Value": value}], stack.parameters
                )
    shown = {w["properties"].get("title", "") for w in graphs}
    assert any("Jobs and agents" in title for title in shown)


def test_the_dashboard_lists_every_unconditional_alarm(template):
    stack = rendered(template)
    (alarm_widget,) = [w for w in dashboard(stack)["widgets"] if w["type"] == "alarm"]
    listed = {arn.rsplit(":alarm:", 1)[1] for arn in alarm_widget["properties"]["alarms"]}
    assert listed == ALWAYS


def test_each_alarm_says_what_it_means_and_what_to_do_first(template):
    for name, alarm in alarms(rendered(template, **PUSH)).items():
        description = alarm["AlarmDescription"]
        assert "First:" in description, f"{name} does not say what to do first"
        assert len(description) <= 1024, f"{name}: AlarmDescription is limited to 1024 characters"


def test_the_silent_scaler_alarm_fires_on_missing_heartbeats(template):
    stalled = alarms(rendered(template, ScalerStalledMinutes="7"))["ci-scaler-stalled"]
    assert stalled["TreatMissingData"] == "breaching"
    assert (stalled["EvaluationPeriods"], stalled["DatapointsToAlarm"]) == ("7", "7")
    assert stalled["ComparisonOperator"] == "LessThanThreshold"


def test_no_topic_no_actions(template):
    for alarm in alarms(rendered(template)).values():
        assert alarm["AlarmActions"] == []
        assert alarm["OKActions"] == []


def test_an_email_creates_a_topic_every_alarm_notifies(template):
    stack = rendered(template, AlarmEmail="oncall@example.com")
    (topic_id,) = stack.of_type("AWS::SNS::Topic")
    (subscription,) = stack.of_type("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    for resource in stack.of_type("AWS::CloudWatch::Alarm").values():
        assert resource["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert resource["Properties"]["OKActions"] == [{"Ref": topic_id}]


def test_a_given_topic_wins_over_an_email(template):
    topic = "arn:aws:sns:us-east-1:123456789012:oncall"
    stack = rendered(template, AlarmTopicArn=topic, AlarmEmail="oncall@example.com")
    assert not stack.of_type("AWS::SNS::Topic")
    for alarm in alarms(stack).values():
        assert alarm["AlarmActions"] == [topic]


def test_the_root_passes_the_push_resources_only_when_the_trigger_is_on(root_template):
    required = {
        "BuildkiteAgentTokenParameterStorePath": "/ci/token",
    }
    off = render(root_template, required).resources["Monitoring"]["Properties"]["Parameters"]
    assert off["AgentScalerPushFunctionName"] == ""
    assert off["JobScheduledQueueName"] == ""
    on = render(
        root_template,
        {**required, "BuildkiteEventBusName": "aws.partner/buildkite.com/acme/123"},
    ).resources["Monitoring"]["Properties"]["Parameters"]
    assert on["AgentScalerPushFunctionName"] == {"Ref": "AgentScalerPushFunction"}
    assert on["JobScheduledQueueName"] == {"Fn::GetAtt": ["JobScheduledQueue", "QueueName"]}


def test_the_root_forwards_every_monitoring_parameter(root_template, template):
    passed = root_template["Resources"]["Monitoring"]["Properties"]["Parameters"]
    assert set(passed) == set(template["Parameters"])
    assert root_template["Resources"]["Monitoring"]["Properties"]["Location"] == (
        "nested/monitoring.yaml"
    )
