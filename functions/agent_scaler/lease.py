"""A lease that keeps scheduled evaluations from overlapping, without reserved concurrency.

Reserved concurrency fails the deploy in accounts whose concurrency limit is low (Lambda keeps
100 executions unreserved, and new accounts may have a limit of 10), so the scheduled function
has none, and a slow invocation can still be running when the next minute's starts. Only one
of them may evaluate (two could drain the same idle instances twice): each takes this lease
first, and the one that cannot changes nothing.

The lease is one item in the stack's DynamoDB table (``SCALER_LEASE_TABLE``), written with a
conditional PutItem that succeeds only when there is no item or the one there has expired.
Its expiry is the holder's own deadline (the invocation's remaining time): Lambda stops an
invocation by then, so an expired lease never belongs to a running evaluation, and a holder
that crashed or timed out blocks the next one at most until that moment. The holder deletes
the item when it is done, on condition that it still holds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

LEASE_NAME = "scheduled-evaluation"
_CONDITION_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True, slots=True)
class LeaseState:
    """Who holds the lease (an invocation's request id) and until when (epoch seconds)."""

    holder: str
    expires_at: float


class ScheduleLease:
    """The scheduled evaluation's lease in one DynamoDB table (partition key ``lease``)."""

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        *,
        name: str = LEASE_NAME,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._key = {"lease": {"S": name}}
        self._clock = clock or time.time

    def acquire(self, holder: str, expires_at: float) -> LeaseState | None:
        """Take the lease until ``expires_at``; returns None when taken, else who holds it."""
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    **self._key,
                    "holder": {"S": holder},
                    "expires_at": {"N": _number(expires_at)},
                },
                ConditionExpression="attribute_not_exists(lease) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": _number(self._clock())}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise
            return self._current() or LeaseState(holder="unknown", expires_at=expires_at)
        return None

    def release(self, holder: str) -> bool:
        """Give the lease back; False when ``holder`` no longer held it."""
        try:
            self._dynamodb.delete_item(
                TableName=self._table,
                Key=self._key,
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": {"S": holder}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != _CONDITION_FAILED:
                raise
            return False
        return True

    def _current(self) -> LeaseState | None:
        item = self._dynamodb.get_item(TableName=self._table, Key=self._key, ConsistentRead=True)
        found = item.get("Item")
        if not found:
            return None  # released between our write and this read
        return LeaseState(found["holder"]["S"], float(found["expires_at"]["N"]))


def _number(value: float) -> str:
    return f"{value:.3f}"
