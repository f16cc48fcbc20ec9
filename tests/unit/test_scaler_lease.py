"""The schedule lease: one scheduled evaluation at a time, without reserved concurrency.

DynamoDB is moto (in-process). The handler tests replace the evaluation loop
(`handler.run_scheduled`) with one that records what happened, so an overlap is staged
deterministically: the second invocation starts while the first is inside its evaluation.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from agent_scaler import handler
from agent_scaler.lease import LeaseState, ScheduleLease

from tools.testing.cloudformation import REGION, FakeLambdaContext

TABLE = "ci-ScalerLeaseTable-1EXAMPLE"
NOW = 1_800_000_000.0
FIRST = FakeLambdaContext(function_name="ci-AgentScalerFunction", aws_request_id="first")
SECOND = dataclasses.replace(FIRST, aws_request_id="second")
EVENT = {"id": "schedule-event-1", "detail-type": "Scheduled Event"}


@pytest.fixture
def dynamodb(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "lease", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "lease", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("SCALER_LEASE_TABLE", TABLE)
    return client


def lease_at(dynamodb: Any, now: float) -> ScheduleLease:
    return ScheduleLease(dynamodb, TABLE, clock=lambda: now)


def stored_holder(dynamodb: Any) -> str | None:
    item = dynamodb.get_item(TableName=TABLE, Key={"lease": {"S": "scheduled-evaluation"}})
    return item.get("Item", {}).get("holder", {}).get("S")


# --- the lease ---------------------------------------------------------------------------------
def test_a_free_lease_is_taken_and_a_held_one_is_refused_naming_its_holder(dynamodb):
    assert lease_at(dynamodb, NOW).acquire("first", NOW + 120) is None

    refused = lease_at(dynamodb, NOW + 30).acquire("second", NOW + 150)

    assert refused == LeaseState(holder="first", expires_at=NOW + 120)
    assert stored_holder(dynamodb) == "first"


def test_an_expired_lease_is_taken_over(dynamodb):
    lease_at(dynamodb, NOW).acquire("crashed", NOW + 120)

    assert lease_at(dynamodb, NOW + 121).acquire("next", NOW + 241) is None
    assert stored_holder(dynamodb) == "next"
    assert lease_at(dynamodb, NOW + 121).release("crashed") is False  # no longer its lease
    assert stored_holder(dynamodb) == "next"


def test_a_released_lease_is_free_again(dynamodb):
    lease = lease_at(dynamodb, NOW)
    lease.acquire("first", NOW + 120)

    assert lease.release("first") is True
    assert stored_holder(dynamodb) is None
    assert lease_at(dynamodb, NOW + 1).acquire("second", NOW + 121) is None


def test_an_aws_error_is_raised_not_taken_for_a_held_lease(mocked_aws):
    client = boto3.client("dynamodb", region_name=REGION)  # no table: ResourceNotFound
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        lease_at(client, NOW).acquire("first", NOW + 120)


# --- the scheduled handler -----------------------------------------------------------------------
@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replaces the evaluation loop; each entry is the request id of an invocation that ran it."""
    ran: list[str] = []

    def evaluate(event: dict[str, Any], context: Any, **_: Any) -> dict[str, Any]:
        ran.append(context.aws_request_id)
        return {"evaluations": 1}

    monkeypatch.setattr(handler, "run_scheduled", evaluate)
    return ran


@pytest.fixture
def scaler_log() -> Iterator[io.StringIO]:
    """What the scaler's Powertools logger writes during the test, as JSON lines."""
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(handler.logger.registered_formatter)
    underlying = logging.getLogger(handler.logger.name)
    underlying.addHandler(capture)
    try:
        yield stream
    finally:
        underlying.removeHandler(capture)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_an_invocation_that_overlaps_a_running_one_changes_nothing_and_says_so(
    dynamodb, monkeypatch, scaler_log
):
    ran: list[str] = []
    overlapping: list[dict[str, Any]] = []

    def first_evaluation(event: dict[str, Any], context: Any, **_: Any) -> dict[str, Any]:
        ran.append(context.aws_request_id)
        # The next minute's invocation starts while this one is still evaluating.
        overlapping.append(handler.lambda_handler(EVENT, SECOND))
        return {"evaluations": 5}

    monkeypatch.setattr(handler, "run_scheduled", first_evaluation)

    assert handler.lambda_handler(EVENT, FIRST) == {"evaluations": 5}

    assert ran == ["first"]  # the second never evaluated
    assert overlapping == [
        {"evaluations": 0, "skipped": "another invocation holds the schedule lease"}
    ]
    (skipped,) = [line for line in log_lines(scaler_log) if line["message"].startswith("Skipped")]
    assert skipped["level"] == "INFO"
    assert skipped["lease_holder"] == "first"
    assert "invocation first is still evaluating" in skipped["message"]
    assert stored_holder(dynamodb) is None  # released when the first one ended


def test_the_lease_of_a_crashed_invocation_is_taken_over_after_its_deadline(
    dynamodb, evaluations, monkeypatch
):
    lease_at(dynamodb, NOW).acquire("crashed", NOW + 120)
    monkeypatch.setattr(handler.time, "time", lambda: NOW + 60)

    assert handler.lambda_handler(EVENT, FIRST)["evaluations"] == 0  # still within its time
    assert evaluations == []

    monkeypatch.setattr(handler.time, "time", lambda: NOW + 121)
    assert handler.lambda_handler(EVENT, SECOND) == {"evaluations": 1}
    assert evaluations == ["second"]


def test_the_lease_is_released_when_the_evaluation_fails(dynamodb, monkeypatch):
    def failing(event: dict[str, Any], context: Any, **_: Any) -> dict[str, Any]:
        raise RuntimeError("agent API down")

    monkeypatch.setattr(handler, "run_scheduled", failing)

    with pytest.raises(RuntimeError, match="agent API down"):
        handler.lambda_handler(EVENT, FIRST)
    assert stored_holder(dynamodb) is None


def test_the_lease_runs_until_the_invocations_own_deadline(dynamodb, monkeypatch):
    seen: list[str | None] = []

    def evaluate(event: dict[str, Any], context: Any, **_: Any) -> dict[str, Any]:
        item = dynamodb.get_item(TableName=TABLE, Key={"lease": {"S": "scheduled-evaluation"}})
        seen.append(item["Item"]["expires_at"]["N"])
        return {"evaluations": 1}

    monkeypatch.setattr(handler, "run_scheduled", evaluate)
    monkeypatch.setattr(handler.time, "time", lambda: NOW)

    handler.lambda_handler(EVENT, dataclasses.replace(FIRST, remaining_ms=119_500))

    assert seen == [f"{NOW + 119.5:.3f}"]
