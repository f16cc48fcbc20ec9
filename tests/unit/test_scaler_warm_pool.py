"""The warm pool as the scaler sees and sizes it, and the push evaluation that leaves it alone.

Reading is checked against botocore's own model (a Stubber answers DescribeWarmPool page by page,
with instances and statuses moto does not produce); writing and the evaluations run against
moto, which keeps the pool's configuration (``put_warm_pool``/``describe_warm_pool``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from agent_scaler import evaluation as evaluation_module
from agent_scaler.evaluation import SCALE_OUT_ONLY_REASON
from agent_scaler.group import ScalingActionError, put_warm_pool, read_group, read_warm_pool
from agent_scaler.policy import Decision, ScalerState, WarmPool
from agent_scaler.state_tags import DEMAND_PEAKS_TAG, format_peaks, parse_peaks
from botocore.stub import Stubber
from moto import mock_aws
from test_scaler_evaluation import (
    GROUP,
    NOW,
    REGION,
    FakeMetrics,
    describe,
    emf_documents,
    log_lines,
    make_scaler,
)

from tools.testing.autoscaling import create_group
from tools.testing.faults import failing_calls


def stubbed_client() -> tuple[Any, Stubber]:
    client = boto3.client(
        "autoscaling",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client, Stubber(client)


def pool_page(
    instances: list[tuple[str, str]],
    next_token: str | None = None,
    **configuration: Any,
) -> dict[str, Any]:
    page: dict[str, Any] = {
        "WarmPoolConfiguration": {
            "MinSize": 1,
            "PoolState": "Stopped",
            "InstanceReusePolicy": {"ReuseOnScaleIn": True},
            **configuration,
        },
        "Instances": [
            {
                "InstanceId": instance_id,
                "AvailabilityZone": f"{REGION}a",
                "LifecycleState": state,
                "HealthStatus": "Healthy",
                "ProtectedFromScaleIn": False,
            }
            for instance_id, state in instances
        ],
    }
    if next_token:
        page["NextToken"] = next_token
    return page


# --- reading ------------------------------------------------------------------------------------


def test_every_page_of_the_pool_is_read() -> None:
    client, stubber = stubbed_client()
    stubber.add_response(
        "describe_warm_pool",
        pool_page(
            [("i-1", "Warmed:Stopped"), ("i-2", "Warmed:Pending")],
            next_token="page-2",
            MaxGroupPreparedCapacity=6,
        ),
        {"AutoScalingGroupName": GROUP},
    )
    stubber.add_response(
        "describe_warm_pool",
        pool_page([("i-3", "Warmed:Stopped")], MaxGroupPreparedCapacity=6),
        {"AutoScalingGroupName": GROUP, "NextToken": "page-2"},
    )
    with stubber:
        pool = read_warm_pool(client, GROUP)
    stubber.assert_no_pending_responses()

    assert pool is not None
    assert [i.instance_id for i in pool.instances] == ["i-1", "i-2", "i-3"]
    assert pool.instances[1].lifecycle_state == "Warmed:Pending"
    assert (pool.min_size, pool.max_group_prepared_capacity) == (1, 6)
    assert (pool.pool_state, pool.reuse_on_scale_in) == ("Stopped", True)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param({"Instances": []}, None, id="no pool"),
        pytest.param(
            pool_page([("i-1", "Warmed:Terminating")], Status="PendingDelete"),
            None,
            id="pool being deleted",
        ),
        pytest.param(
            pool_page([], MaxGroupPreparedCapacity=-1),
            WarmPool(min_size=1, pool_state="Stopped", reuse_on_scale_in=True),
            id="-1 reads as unset",
        ),
        pytest.param(
            pool_page([]),
            WarmPool(min_size=1, pool_state="Stopped", reuse_on_scale_in=True),
            id="absent reads as unset",
        ),
    ],
)
def test_a_missing_or_retiring_pool_reads_as_none(
    answer: dict[str, Any], expected: WarmPool | None
) -> None:
    client, stubber = stubbed_client()
    stubber.add_response("describe_warm_pool", answer, {"AutoScalingGroupName": GROUP})
    with stubber:
        assert read_warm_pool(client, GROUP) == expected


def test_warmed_instances_are_never_group_instances() -> None:
    class GroupWithWarmedInstance:
        """DescribeAutoScalingGroups listing a Warmed:* instance next to an in-service one."""

        def describe_auto_scaling_groups(self, **_: Any) -> dict[str, Any]:
            return {
                "AutoScalingGroups": [
                    {
                        "DesiredCapacity": 1,
                        "MinSize": 0,
                        "MaxSize": 4,
                        "Instances": [
                            {"InstanceId": "i-live", "LifecycleState": "InService"},
                            {"InstanceId": "i-warm", "LifecycleState": "Warmed:Stopped"},
                        ],
                    }
                ]
            }

    read = read_group(GroupWithWarmedInstance(), None, GROUP, with_launch_times=False)
    assert [i.instance_id for i in read.group.instances] == ["i-live"]
    assert read.group.warm_pool is None  # not asked for


# --- writing and evaluating against moto ----------------------------------------------------------


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
            autoscaling, GROUP, min_size=0, max_size=10, desired=0, ec2=ec2,
            protected_from_scale_in=True,
        )  # fmt: skip
        autoscaling.put_warm_pool(
            AutoScalingGroupName=GROUP,
            MaxGroupPreparedCapacity=3,
            MinSize=1,
            PoolState="Hibernated",
            InstanceReusePolicy={"ReuseOnScaleIn": True},
        )
        yield {"ec2": ec2, "autoscaling": autoscaling}


def pool_configuration(aws: dict[str, Any]) -> dict[str, Any]:
    answer = aws["autoscaling"].describe_warm_pool(AutoScalingGroupName=GROUP)
    return answer["WarmPoolConfiguration"]


def operations(client: Any) -> list[str]:
    """The names of the operations ``client`` makes from now on."""
    called: list[str] = []
    client.meta.events.register(
        "before-call.autoscaling.*", lambda model, **_: called.append(model.name)
    )
    return called


def test_resizing_keeps_the_rest_of_the_pool_as_read(aws: dict[str, Any]) -> None:
    pool = read_warm_pool(aws["autoscaling"], GROUP)
    assert pool == WarmPool(
        min_size=1, max_group_prepared_capacity=3, pool_state="Hibernated", reuse_on_scale_in=True
    )
    put_warm_pool(aws["autoscaling"], GROUP, 7, pool)
    configuration = pool_configuration(aws)
    assert configuration["MaxGroupPreparedCapacity"] == 7
    assert (configuration["MinSize"], configuration["PoolState"]) == (1, "Hibernated")
    assert configuration["InstanceReusePolicy"] == {"ReuseOnScaleIn": True}


def test_a_refused_resize_names_the_change(aws: dict[str, Any]) -> None:
    pool = read_warm_pool(aws["autoscaling"], GROUP)
    assert pool is not None
    with (
        failing_calls(aws["autoscaling"], "PutWarmPool", "ResourceContention", "busy"),
        pytest.raises(ScalingActionError, match=r"MaxGroupPreparedCapacity 3 -> 5 failed"),
    ):
        put_warm_pool(aws["autoscaling"], GROUP, 5, pool)


def deciding(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """The policy's decision with ``changes`` (the pool size, demand peaks) applied."""
    decide = evaluation_module.decide

    def with_changes(observation: Any, config: Any, state: Any, now: float) -> Decision:
        decision = decide(observation, config, state, now)
        peaks = changes.get("demand_peaks")
        if peaks is not None:
            decision = replace(decision, state=replace(decision.state, demand_peaks=peaks))
        pool_size = changes.get("warm_pool_max_prepared_capacity")
        return replace(decision, warm_pool_max_prepared_capacity=pool_size)

    monkeypatch.setattr(evaluation_module, "decide", with_changes)


def test_the_scheduled_evaluation_sizes_the_pool_from_demand_and_reports_it(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    log = io.StringIO()
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 5}), log, size_warm_pool=True)
    scaler.settings = replace(scaler.settings, warm_pool_enabled=True)

    result = scaler.evaluate()

    # Demand wants 5: the group goes to 5 and the pool may prepare up to 5 (it held 3).
    assert describe(aws)["DesiredCapacity"] == 5
    assert pool_configuration(aws)["MaxGroupPreparedCapacity"] == 5
    assert result.decision.warm_pool_max_prepared_capacity == 5
    (line,) = log_lines(log)
    assert line["message"] == (
        "Scaling evaluation for queue 'default': scale out 0 -> 5, "
        "warm pool MaxGroupPreparedCapacity 3 -> 5"
    )
    assert line["decision"]["warm_pool_max_prepared_capacity"] == 5
    assert line["decision"]["warm_pool_max_prepared_capacity_before"] == 3
    assert line["observation"]["group"]["warm_pool"] == {
        "min_size": 1,
        "max_group_prepared_capacity": 3,
        "pool_state": "Hibernated",
        "reuse_on_scale_in": True,
        "instances": {},
    }
    (emf,) = emf_documents(capsys.readouterr().out)
    assert emf["WarmPoolInstances"] == [0.0]


def test_an_unchanged_pool_size_is_not_written(aws: dict[str, Any]) -> None:
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 3}), io.StringIO(), size_warm_pool=True)
    scaler.settings = replace(scaler.settings, warm_pool_enabled=True)
    called = operations(aws["autoscaling"])

    result = scaler.evaluate()

    assert "DescribeWarmPool" in called
    assert "PutWarmPool" not in called
    assert result.decision.warm_pool_max_prepared_capacity is None


def test_a_pool_size_fixed_by_the_stack_is_read_never_written(aws: dict[str, Any]) -> None:
    # WarmPoolMaxPreparedCapacity >= 0: the pool is read and reported, not sized.
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 6}), io.StringIO())
    scaler.settings = replace(scaler.settings, warm_pool_enabled=True)
    called = operations(aws["autoscaling"])

    result = scaler.evaluate()

    assert "DescribeWarmPool" in called
    assert "PutWarmPool" not in called
    assert result.observation.group.warm_pool is not None
    assert pool_configuration(aws)["MaxGroupPreparedCapacity"] == 3


def test_a_refused_resize_fails_the_evaluation_after_the_other_actions(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    deciding(monkeypatch, warm_pool_max_prepared_capacity=8)
    log = io.StringIO()
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 3}), log, size_warm_pool=True)
    scaler.settings = replace(scaler.settings, warm_pool_enabled=True)

    with (
        failing_calls(aws["autoscaling"], "PutWarmPool", "ResourceContention", "busy"),
        pytest.raises(ScalingActionError, match=r"MaxGroupPreparedCapacity 3 -> 8 failed"),
    ):
        scaler.evaluate()

    # The scale-out and its state tag happened; the pool kept its size; the log says why.
    assert describe(aws)["DesiredCapacity"] == 3
    assert pool_configuration(aws)["MaxGroupPreparedCapacity"] == 3
    (line,) = log_lines(log)
    assert "warm_pool_max_prepared_capacity" not in line["decision"]
    assert any("ResourceContention" in reason for reason in line["reasons"])


def test_without_the_pool_setting_the_pool_is_never_read(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deciding(monkeypatch, warm_pool_max_prepared_capacity=6)
    scaler = make_scaler(aws, FakeMetrics({"scheduled": 1}), io.StringIO())
    called = operations(aws["autoscaling"])

    scaler.evaluate()

    assert not {"DescribeWarmPool", "PutWarmPool"} & set(called)
    assert pool_configuration(aws)["MaxGroupPreparedCapacity"] == 3
    (emf,) = emf_documents(capsys.readouterr().out)
    assert "WarmPoolInstances" not in emf


def test_the_push_evaluation_never_touches_the_pool_nor_records_demand(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    history = format_peaks(((NOW - 300, 1), (NOW - 270, 2)))
    aws["autoscaling"].create_or_update_tags(
        Tags=[
            {
                "ResourceId": GROUP,
                "ResourceType": "auto-scaling-group",
                "Key": DEMAND_PEAKS_TAG,
                "Value": history,
                "PropagateAtLaunch": False,
            }
        ]
    )
    previous = ScalerState(demand_peaks=parse_peaks(history))
    deciding(monkeypatch, warm_pool_max_prepared_capacity=6, demand_peaks=((NOW, 4),))
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=2)
    log = io.StringIO()
    scaler = make_scaler(
        aws,
        FakeMetrics({"scheduled": 4, "idle": 2}),
        log,
        size_warm_pool=True,
        disable_scale_in=False,
        scale_in_cooldown_period=0,
    )
    scaler.settings = replace(scaler.settings, warm_pool_enabled=True)
    called = operations(aws["autoscaling"])

    result = scaler.evaluate(scale_in=False)

    assert not {"DescribeWarmPool", "PutWarmPool", "TerminateInstanceInAutoScalingGroup"} & set(
        called
    )
    assert describe(aws)["DesiredCapacity"] == 4  # it still scales out
    assert result.decision.drain_instance_ids == ()
    assert result.decision.warm_pool_max_prepared_capacity is None
    assert result.decision.state.demand_peaks == previous.demand_peaks
    # The history tag stays as the scheduled evaluations wrote it.
    group_tags = {tag["Key"]: tag["Value"] for tag in describe(aws)["Tags"]}
    assert group_tags[DEMAND_PEAKS_TAG] == history
    assert result.decision.state.last_scale_in_at == previous.last_scale_in_at
    assert SCALE_OUT_ONLY_REASON in log_lines(log)[0]["reasons"]


def test_drains_while_the_queue_has_work_are_reported_as_the_idle_tail(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    aws["autoscaling"].set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=3)
    oldest = describe(aws)["Instances"][0]["InstanceId"]

    def idle_tail(observation: Any, config: Any, state: ScalerState, now: float) -> Decision:
        return Decision(None, 2, (oldest,), ("idle tail: drain 1",), state)

    monkeypatch.setattr(evaluation_module, "decide", idle_tail)
    log = io.StringIO()
    make_scaler(aws, FakeMetrics({"running": 1, "busy": 1, "idle": 2}), log).evaluate()

    (line,) = log_lines(log)
    assert line["decision"]["drain_rule"] == "idle tail"
    assert line["decision"]["drain_instance_ids"] == [oldest]
    assert describe(aws)["DesiredCapacity"] == 2
