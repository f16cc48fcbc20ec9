"""Lambda entry points of the agent scaler; both share one evaluation core.

- ``lambda_handler``: the EventBridge schedule (every minute). Evaluates every
  max(PollInterval, the API's poll-duration header) seconds for about 50 s (see ``poll_loop``),
  holding the schedule lease (see ``lease``): an invocation that finds the previous one still
  evaluating changes nothing and says so. With ``POLL_WITHIN_INVOCATION`` false (the stack's
  choice when the push trigger is on) it evaluates once per invocation: the push function
  reacts to new jobs, the schedule drains, sizes the warm pool and catches up once a minute,
  for a fraction of the Lambda time.
- ``push_handler``: an SQS batch of Buildkite "Job Scheduled" events (partner event bus rule ->
  SQS -> this function, with a batching window, so a burst of N events costs O(1)
  evaluations). Evaluates once per batch that holds an event for this queue, and only ever
  scales out (never drains), so it may overlap with the scheduled one.

Failure policy: a missing or invalid input (settings, token, API error, malformed answer,
group not found) changes nothing, is logged as an error naming the cause (never the token),
and the invocation raises, so Lambda's error metric and alarms fire.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import aws_clients
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.typing import LambdaContext

from agent_scaler.config import Settings, settings_from_env
from agent_scaler.evaluation import PERMANENT_FAILURES, Scaler
from agent_scaler.lease import LeaseState, ScheduleLease
from agent_scaler.poll_loop import run_poll_loop
from agent_scaler.push_events import sort_batch
from agent_scaler.queue_metrics import QueueMetricsReader

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "agent-scaler"
# Time one evaluation may need besides the agent API read: the AWS calls (each bounded by the
# clients' timeouts and adaptive retries) and reporting.
AWS_CALLS_BUDGET_S = 15.0
MAX_LOGGED_JOB_IDS = 20
LEASE_TABLE_VARIABLE = "SCALER_LEASE_TABLE"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The scheduled entry point: evaluate repeatedly for about 50 s, one invocation at a time."""
    lease = _schedule_lease()
    if lease is None:
        return run_scheduled(event, context, clock=time.monotonic, sleep=time.sleep)
    with _failing_loudly():
        deadline = time.time() + context.get_remaining_time_in_millis() / 1000
        other = lease.acquire(context.aws_request_id, deadline)
    if other is not None:
        return _skipped(other)
    try:
        return run_scheduled(event, context, clock=time.monotonic, sleep=time.sleep)
    finally:
        _release(lease, context.aws_request_id)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
def push_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The push entry point: one scale-out-only evaluation per batch of Job Scheduled events."""
    logger.set_correlation_id(context.aws_request_id)
    logger.append_keys(trigger="push")
    with _failing_loudly():
        settings = settings_from_env(os.environ)
        batch = sort_batch(event.get("Records") or [], settings.queue)
        summary = {
            "job_ids": list(batch.job_ids[:MAX_LOGGED_JOB_IDS]),
            "jobs_scheduled": len(batch.job_ids),
            "other_events": batch.other_events,
            "unreadable_records": batch.unreadable_records,
        }
        if not batch.has_work:
            logger.info(
                f"No Job Scheduled events for queue {settings.queue!r} in this batch",
                extra={"batch": summary},
            )
            return {"evaluations": 0}
        logger.info(
            f"{len(batch.job_ids)} job(s) scheduled on queue {settings.queue!r}: evaluating",
            extra={"batch": summary},
        )
        _scaler(settings).evaluate(scale_in=False)
        return {"evaluations": 1}


def run_scheduled(
    event: dict[str, Any],
    context: LambdaContext,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    wall_clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The scheduled invocation's work, with the loop's clock and sleep as parameters, and the
    epoch clock the scaler reads (cooldowns, the demand window; the demo runs it virtually)."""
    logger.set_correlation_id(event.get("id") or context.aws_request_id)
    logger.append_keys(trigger="schedule")
    with _failing_loudly():
        settings = settings_from_env(os.environ)
        scaler = _scaler(settings, wall_clock)
        evaluations = 0

        def evaluate() -> float | None:
            nonlocal evaluations
            evaluations += 1
            logger.append_keys(evaluation=evaluations)
            return scaler.evaluate().api_poll_interval_s

        result = run_poll_loop(
            evaluate,
            poll_interval_s=settings.scaler.poll_interval,
            remaining_s=lambda: context.get_remaining_time_in_millis() / 1000,
            evaluation_budget_s=scaler.metrics_reader.max_call_duration_s + AWS_CALLS_BUDGET_S,
            clock=clock,
            sleep=sleep,
            permanent_errors=PERMANENT_FAILURES,
            on_failure=lambda error: logger.error(
                f"Evaluation failed ({type(error).__name__}): {error}", exc_info=error
            ),
            repeat=settings.poll_within_invocation,
        )
        return {"evaluations": result.evaluations}


def _schedule_lease() -> ScheduleLease | None:
    table = os.environ.get(LEASE_TABLE_VARIABLE, "").strip()
    if not table:
        logger.warning(
            f"{LEASE_TABLE_VARIABLE} is not set: nothing keeps this invocation from overlapping "
            "another (the stack always sets it; only local runs leave it out)"
        )
        return None
    return ScheduleLease(aws_clients.dynamodb(), table)


def _skipped(other: LeaseState) -> dict[str, Any]:
    until = time.strftime("%H:%M:%S", time.gmtime(other.expires_at))
    logger.info(
        f"Skipped: invocation {other.holder} is still evaluating (its lease runs until "
        f"{until} UTC); this one changes nothing",
        extra={"lease_holder": other.holder, "lease_expires_at": other.expires_at},
    )
    return {"evaluations": 0, "skipped": "another invocation holds the schedule lease"}


def _release(lease: ScheduleLease, holder: str) -> None:
    try:
        released = lease.release(holder)
    except Exception as exc:
        # Not fatal: the lease expires at this invocation's deadline anyway.
        logger.warning(f"Could not release the schedule lease ({type(exc).__name__}): {exc}")
        return
    if not released:
        logger.warning("The schedule lease was no longer ours when this invocation ended")


def _scaler(settings: Settings, wall_clock: Callable[[], float] = time.time) -> Scaler:
    reader = _metrics_reader(
        settings.agent_endpoint, settings.token_parameter, aws_clients.parameter_store()
    )
    return Scaler(
        settings=settings,
        metrics_reader=reader,
        autoscaling=aws_clients.autoscaling(),
        ec2=aws_clients.ec2(),
        logger=logger,
        wall_clock=wall_clock,
    )


@cache
def _metrics_reader(
    endpoint: str, token_parameter: str, parameter_store: SSMProvider
) -> QueueMetricsReader:
    # Kept for the container's life: its pooled API connection (and the token it holds)
    # serves later invocations too, instead of a new TLS connection every minute.
    return QueueMetricsReader(endpoint, token_parameter, parameter_store)


@contextmanager
def _failing_loudly() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        logger.exception(f"Scaling failed ({type(exc).__name__}): {exc}")
        raise
