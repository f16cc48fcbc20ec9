"""The push trigger's batch sorting and the scheduled handler's poll loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agent_scaler.poll_loop import run_poll_loop
from agent_scaler.push_events import sort_batch

EVENTS = Path(__file__).resolve().parents[2] / "events"


def record(body: object, message_id: str = "m-1") -> dict[str, object]:
    return {"messageId": message_id, "body": body if isinstance(body, str) else json.dumps(body)}


def job_scheduled(queue_rules: list[str], job_uuid: str = "job-1") -> dict[str, object]:
    return {
        "detail-type": "Job Scheduled",
        "detail": {"version": 1, "job": {"uuid": job_uuid, "agent_query_rules": queue_rules}},
    }


def test_the_sample_sqs_batch_is_two_scheduled_jobs_for_the_default_queue() -> None:
    event = json.loads((EVENTS / "sqs_job_scheduled.json").read_text())
    batch = sort_batch(event["Records"], "default")
    assert batch.job_ids == (
        "01916a1c-0000-4000-8000-000000000001",
        "01916a1c-0000-4000-8000-000000000002",
    )
    assert batch.has_work
    assert sort_batch(event["Records"], "other").has_work is False


def test_the_sample_sqs_bodies_are_the_sample_eventbridge_event_shape() -> None:
    event = json.loads((EVENTS / "sqs_job_scheduled.json").read_text())
    first = json.loads(event["Records"][0]["body"])
    assert first == json.loads((EVENTS / "job_scheduled.json").read_text())
    assert first["source"].startswith("aws.partner/buildkite.com/")


def test_other_queues_other_events_and_unreadable_records_are_counted_not_acted_on() -> None:
    records = [
        record(job_scheduled(["queue=default", "os=linux"], "wanted")),
        record(job_scheduled(["queue=deploy"])),
        record({**job_scheduled(["queue=default"]), "detail-type": "Job Started"}),
        record("{not json"),
        record(["a", "list"]),
        {"messageId": "no-body"},
        record({"detail-type": "Job Scheduled", "detail": ["not", "an", "object"]}),
    ]
    batch = sort_batch(records, "default")
    assert batch.job_ids == ("wanted",)
    assert batch.other_events == 3
    assert batch.unreadable_records == 3


class FakeTime:
    """A clock that only moves when slept on (or when an evaluation takes time)."""

    def __init__(self, evaluation_s: float = 0.5) -> None:
        self.now = 0.0
        self.evaluation_s = evaluation_s
        self.sleeps: list[float] = []
        self.starts: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def evaluate(self, api_interval: float | None = 10.0):
        def evaluate() -> float | None:
            self.starts.append(self.now)
            self.now += self.evaluation_s
            return api_interval

        return evaluate


@pytest.mark.parametrize(
    ("poll_interval", "api_interval", "starts"),
    [
        pytest.param(10, 10.0, [0, 10.5, 21, 31.5, 42], id="reference rhythm: 5 a minute"),
        pytest.param(10, 20.0, [0, 20.5, 41], id="the API asks for a slower pace"),
        pytest.param(10, None, [0, 10.5, 21, 31.5, 42], id="no header"),
        pytest.param(30, 10.0, [0, 30.5], id="a longer PollInterval"),
        pytest.param(60, 10.0, [0], id="one evaluation per invocation"),
    ],
)
def test_poll_loop_waits_the_longer_of_poll_interval_and_api_interval(
    poll_interval: float, api_interval: float | None, starts: list[float]
) -> None:
    fake = FakeTime()
    result = run_poll_loop(
        fake.evaluate(api_interval),
        poll_interval_s=poll_interval,
        remaining_s=lambda: 120 - fake.now,
        evaluation_budget_s=30,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert fake.starts == starts
    assert result.evaluations == len(starts)
    assert all(wait >= max(poll_interval, api_interval or 0) for wait in fake.sleeps)


def test_poll_loop_stops_when_the_invocation_could_not_finish_another_evaluation() -> None:
    fake = FakeTime()
    result = run_poll_loop(
        fake.evaluate(),
        poll_interval_s=10,
        remaining_s=lambda: 60 - fake.now,  # a 60 s timeout, 30 s needed per evaluation
        evaluation_budget_s=30,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    # The third starts at 21 s with 39 s left; a fourth would start at 31.5 s with 28.5 s left.
    assert fake.starts == [0, 10.5, 21]
    assert result.evaluations == 3


def test_a_failed_evaluation_does_not_stop_the_minute_and_the_invocation_still_fails() -> None:
    fake = FakeTime()
    calls: list[float] = []
    reported: list[Exception] = []

    def evaluate() -> float | None:
        calls.append(fake.now)
        fake.now += 0.5
        if len(calls) == 2:
            raise RuntimeError("API down")
        return None

    with pytest.raises(RuntimeError, match="API down") as raised:
        run_poll_loop(
            evaluate,
            poll_interval_s=10,
            remaining_s=lambda: 120.0,
            evaluation_budget_s=30,
            clock=fake.clock,
            sleep=fake.sleep,
            permanent_errors=(LookupError,),
            on_failure=reported.append,
        )
    # The tick after the failure evaluates again, at the usual pace, to the end of the window.
    assert calls == [0, 10.5, 21, 31.5, 42]
    assert [str(error) for error in reported] == ["API down"]
    assert raised.value.__notes__ == ["1 of 5 evaluation(s) in this invocation failed"]


def test_a_permanent_failure_ends_the_loop_at_once() -> None:
    fake = FakeTime()
    calls = []

    def evaluate() -> float | None:
        calls.append(fake.now)
        raise LookupError("group 'agents' not found")

    with pytest.raises(LookupError, match="not found"):
        run_poll_loop(
            evaluate,
            poll_interval_s=10,
            remaining_s=lambda: 120.0,
            evaluation_budget_s=30,
            clock=fake.clock,
            sleep=fake.sleep,
            permanent_errors=(LookupError,),
        )
    assert calls == [0]
    assert fake.sleeps == []


# --- once per invocation (POLL_WITHIN_INVOCATION false: the push trigger is on) ----------------


def test_without_repeat_the_loop_evaluates_exactly_once_and_never_sleeps() -> None:
    fake = FakeTime()
    result = run_poll_loop(
        fake.evaluate(),
        poll_interval_s=10,
        remaining_s=lambda: 120 - fake.now,
        evaluation_budget_s=30,
        clock=fake.clock,
        sleep=fake.sleep,
        repeat=False,
    )
    assert fake.starts == [0]
    assert fake.sleeps == []
    assert result.evaluations == 1


def test_without_repeat_a_failed_evaluation_still_fails_the_invocation() -> None:
    def evaluate() -> float | None:
        raise RuntimeError("API down")

    with pytest.raises(RuntimeError, match="API down") as raised:
        run_poll_loop(
            evaluate,
            poll_interval_s=10,
            remaining_s=lambda: 120.0,
            evaluation_budget_s=30,
            clock=lambda: 0.0,
            sleep=lambda _s: pytest.fail("slept"),
            repeat=False,
        )
    assert raised.value.__notes__ == ["1 of 1 evaluation(s) in this invocation failed"]


class CountingScaler:
    """Stands in for the Scaler: counts scheduled evaluations."""

    class metrics_reader:
        max_call_duration_s = 1.0

    def __init__(self) -> None:
        self.evaluations = 0

    def evaluate(self, *, scale_in: bool = True) -> object:
        assert scale_in
        self.evaluations += 1
        return type("Evaluation", (), {"api_poll_interval_s": 10.0})()


class Context:
    aws_request_id = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


@pytest.mark.parametrize(
    ("poll_within_invocation", "evaluations"),
    [
        pytest.param(None, 5, id="default: every 10 s for about 50 s"),
        pytest.param("true", 5, id="true"),
        pytest.param("false", 1, id="false: once"),
    ],
)
def test_the_scheduled_invocation_evaluates_once_when_polling_within_it_is_off(
    monkeypatch: pytest.MonkeyPatch, poll_within_invocation: str | None, evaluations: int
) -> None:
    from agent_scaler import handler

    for name, value in {
        "BUILDKITE_QUEUE": "default",
        "BUILDKITE_AGENT_TOKEN_PARAMETER": "/buildkite/agent-token",
        "AUTO_SCALING_GROUP_NAME": "agents",
    }.items():
        monkeypatch.setenv(name, value)
    if poll_within_invocation is None:
        monkeypatch.delenv("POLL_WITHIN_INVOCATION", raising=False)
    else:
        monkeypatch.setenv("POLL_WITHIN_INVOCATION", poll_within_invocation)
    scaler = CountingScaler()
    monkeypatch.setattr(handler, "_scaler", lambda _settings, _wall_clock: scaler)
    fake = FakeTime()

    result = handler.run_scheduled(
        {"id": "event-1"},
        Context(),
        clock=fake.clock,
        sleep=fake.sleep,  # type: ignore[arg-type]
    )

    assert result == {"evaluations": evaluations}
    assert scaler.evaluations == evaluations
    assert len(fake.sleeps) == evaluations - 1
