"""Whole simulation runs: when each scaler evaluates, what it does, and what a run reports."""

from __future__ import annotations

import pytest

from tools.simulate.config import build_config
from tools.simulate.invocations import project_loop_plan
from tools.simulate.runner import SimulationError, SimulationResult, simulate
from tools.simulate.traces import TraceJob

FIXED_BOOT = {"BootDelayMedian": 60, "BootDelayP05": 60, "BootDelayP95": 60, "MaxSize": 10}


def run(policy: str, trigger: str, trace: list[TraceJob], **overrides: object) -> SimulationResult:
    config = build_config(policy, {**FIXED_BOOT, **overrides})
    return simulate(trace, policy, trigger, config, seed=1)


def test_the_reference_launches_at_its_next_ten_second_evaluation() -> None:
    result = run("reference", "poll", [TraceJob(5.0, 100.0)])
    assert result.waits.max == pytest.approx(10.0 - 5.0 + 60.0)


def test_the_project_launches_at_the_next_evaluation_of_its_real_poll_loop() -> None:
    config = build_config("project", FIXED_BOOT)
    next_evaluation = min(t for t in project_loop_plan(config).offsets_s if t >= 5.0)
    result = run("project", "poll", [TraceJob(5.0, 100.0)])
    assert result.waits.max == pytest.approx(next_evaluation - 5.0 + 60.0)


def test_push_evaluates_two_seconds_after_the_job_is_scheduled() -> None:
    result = run("project", "push", [TraceJob(5.0, 100.0)])
    assert result.waits.max == pytest.approx(2.0 + 60.0)


def test_a_burst_of_job_events_costs_one_push_evaluation() -> None:
    burst = [TraceJob(5.0 + 0.1 * i, 100.0) for i in range(10)]
    result = run("project", "push", burst)
    assert result.invocations.push_invocations == 1
    assert result.scaler.scale_out_actions >= 1


def test_the_reference_cooldown_holds_back_a_second_scale_out_the_project_does_not() -> None:
    trace = [TraceJob(5.0, 1000.0), TraceJob(100.0, 1000.0)]
    reference = run("reference", "poll", trace)
    project = run("project", "poll", trace)
    # The reference scaled out at 10 s; its next scale-out may come 300 s later, at 310 s.
    assert reference.waits.max == pytest.approx(310.0 + 60.0 - 100.0)
    assert project.waits.max < 80.0
    assert (reference.scaler.scale_out_actions, project.scaler.scale_out_actions) == (2, 2)


def test_the_project_scaler_calls_the_real_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_scaler import policy

    calls: list[float] = []
    real_decide = policy.decide

    def counting_decide(
        observation: policy.Observation,
        config: policy.ScalerConfig,
        state: policy.ScalerState,
        now: float,
    ) -> policy.Decision:
        calls.append(now)
        return real_decide(observation, config, state, now)

    monkeypatch.setattr(policy, "decide", counting_decide)
    result = run("project", "poll", [TraceJob(5.0, 100.0)])
    assert len(calls) == result.scaler.evaluations > 0


def test_project_drains_go_through_the_lifecycle_hook_and_interrupt_nothing() -> None:
    trace = [TraceJob(5.0 + 30 * i, 200.0 + 50 * i) for i in range(6)]
    result = run(
        "project",
        "poll",
        trace,
        DisableScaleIn=False,
        ScaleInCooldownPeriod=0,
        ScaleInIdlePeriod=3600,
    )
    assert result.scaler.scale_in_actions >= 1
    assert result.interrupted_jobs == 0
    assert result.unfinished_jobs == 0


def test_a_run_reports_oracle_cost_and_lambda_gb_seconds() -> None:
    trace = [TraceJob(0.0, 300.0), TraceJob(10.0, 500.0)]
    result = run("reference", "poll", trace, AgentsPerInstance=2)
    assert result.jobs == 2
    assert result.oracle_instance_seconds == pytest.approx(800.0 / 2)
    assert result.instance_seconds >= result.oracle_instance_seconds
    assert result.invocations.gb_seconds == pytest.approx(
        result.invocations.scheduled_invocations * 128 / 1024 * 50
    )
    assert result.as_json()["lambda_gb_seconds"] == pytest.approx(
        result.invocations.gb_seconds, abs=0.001
    )


def test_the_same_seed_gives_the_same_result_and_another_seed_other_boot_delays() -> None:
    trace = [TraceJob(60.0 * i, 120.0) for i in range(20)]
    config = build_config("project", {"MaxSize": 10})
    first = simulate(trace, "project", "poll", config, seed=7).as_json()
    again = simulate(trace, "project", "poll", config, seed=7).as_json()
    other = simulate(trace, "project", "poll", config, seed=8).as_json()
    assert first == again
    assert first["instance_seconds"] != other["instance_seconds"]


@pytest.mark.parametrize(
    ("policy", "trigger", "message"),
    [
        ("nobody", "poll", "unknown policy"),
        ("project", "carrier-pigeon", "unknown trigger"),
        ("reference", "push", "no push trigger"),
    ],
)
def test_impossible_runs_are_refused(policy: str, trigger: str, message: str) -> None:
    with pytest.raises(SimulationError, match=message):
        simulate([TraceJob(0.0, 1.0)], policy, trigger)
