"""Prices and cost accounting: compute while running, EBS while a volume exists, Lambda."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.simulate import prices
from tools.simulate.config import ConfigError, build_config
from tools.simulate.engine import EventEngine
from tools.simulate.fleet import Fleet, Job
from tools.simulate.invocations import Invocations, InvocationStats
from tools.simulate.runner import simulate
from tools.simulate.traces import TraceJob

FIXED_BOOT = {"BootDelayMedian": 60, "BootDelayP05": 60, "BootDelayP95": 60}


def test_the_published_prices_are_the_stack_defaults() -> None:
    assert prices.ON_DEMAND_HOURLY_USD["t3.large"] == 0.0832
    assert prices.GP3_GB_MONTH_USD == 0.08
    assert prices.ROOT_VOLUME_GB == 250
    assert prices.HOURS_PER_MONTH == 730
    assert prices.GB_SECOND_USD == {"x86_64": 0.0000166667, "arm64": 0.0000133334}
    assert pytest.approx(0.20 / 1e6) == prices.REQUEST_USD
    # Every price names its published source.
    assert all(url.startswith("https://aws.amazon.com/") for *_, url in prices.SOURCES)


def test_one_instance_hour_and_one_volume_month_cost_their_list_prices() -> None:
    price = prices.Prices()
    assert price.compute_usd(3600.0) == pytest.approx(0.0832)
    assert price.ebs_usd(730 * 3600.0) == pytest.approx(0.08 * 250)
    # A running hour pays compute and its 250 GB volume: 0.0832 + 20 / 730.
    assert price.compute_usd(3600) + price.ebs_usd(3600) == pytest.approx(0.0832 + 20 / 730)


def test_lambda_cost_is_duration_at_the_architecture_rate_plus_requests() -> None:
    arm = prices.for_architecture("arm64")
    x86 = prices.for_architecture("x86_64")
    assert arm.lambda_usd(1000.0, 0) == pytest.approx(0.0133334)
    assert x86.lambda_usd(1000.0, 0) == pytest.approx(0.0166667)
    assert arm.lambda_usd(0.0, 1_000_000) == pytest.approx(0.20)


@given(
    compute=st.floats(0, 1e4, allow_nan=False),
    ebs=st.floats(0, 1e4, allow_nan=False),
    lambda_=st.floats(0, 1e4, allow_nan=False),
)
def test_the_total_is_the_sum_of_its_parts_and_the_ebs_share_a_fraction(
    compute: float, ebs: float, lambda_: float
) -> None:
    cost = prices.CostUsd(compute, ebs, lambda_)
    assert cost.total == pytest.approx(compute + ebs + lambda_)
    assert 0.0 <= cost.ebs_share <= 1.0
    assert set(cost.as_json()) == {"total", "compute", "ebs", "lambda"}


def test_an_instance_pays_compute_and_ebs_from_launch_until_it_is_gone() -> None:
    config = build_config(
        "project",
        {**FIXED_BOOT, "MaxSize": 5, "ScaleInIdlePeriod": 600, "InstanceShutdownDelay": 20},
    )
    engine = EventEngine()
    fleet = Fleet(engine, config, lifecycle_hook=True, seed=1)
    job = Job(job_id=1, submit_s=0.0, duration_s=100.0)
    engine.schedule(0.0, lambda: fleet.submit(job))
    engine.schedule(0.0, lambda: fleet.set_desired_capacity(1))
    engine.run_until(lambda: False, horizon=10_000.0)
    # boot 60 + job 100 + idle 600 + shutdown 20
    assert fleet.instance_seconds(10_000.0) == pytest.approx(780.0)
    assert fleet.volume_seconds(10_000.0) == pytest.approx(780.0)


def test_a_run_prices_its_instance_seconds_volumes_and_invocations() -> None:
    config = build_config("project", {**FIXED_BOOT, "MaxSize": 5})
    result = simulate([TraceJob(0.0, 100.0)], "project", "poll", config, seed=1)
    price = config.prices("arm64")
    assert result.cost.compute == pytest.approx(price.compute_usd(result.instance_seconds))
    assert result.cost.ebs == pytest.approx(price.ebs_usd(result.volume_seconds))
    requests = result.invocations.requests
    assert requests == result.invocations.scheduled_invocations > 0
    assert result.cost.lambda_ == pytest.approx(
        result.invocations.gb_seconds * prices.GB_SECOND_ARM64_USD + requests * 0.2e-6
    )


def test_the_reference_lambda_is_billed_at_the_x86_rate() -> None:
    config = build_config("reference", {**FIXED_BOOT, "MaxSize": 5})
    result = simulate([TraceJob(0.0, 100.0)], "reference", "poll", config, seed=1)
    expected = (
        result.invocations.gb_seconds * prices.GB_SECOND_X86_64_USD
        + result.invocations.requests * prices.REQUEST_USD
    )
    assert result.cost.lambda_ == pytest.approx(expected)


def test_a_price_and_volume_size_can_be_set_and_an_unknown_type_needs_a_price() -> None:
    config = build_config(
        "project",
        {"InstanceTypes": "m5.large", "InstanceHourlyPrice": 0.096, "RootVolumeSize": 100},
    )
    price = config.prices("arm64")
    assert (price.instance_hourly_usd, price.root_volume_gb) == (0.096, 100)
    with pytest.raises(ConfigError, match="InstanceHourlyPrice"):
        build_config("project", {"InstanceTypes": "m5.large"})


def test_push_mode_runs_the_scheduled_function_once_per_invocation() -> None:
    config = build_config("project", {**FIXED_BOOT, "MaxSize": 5})
    engine = EventEngine()
    fleet = Fleet(engine, config, lifecycle_hook=True, seed=1)

    class Counting:
        def __init__(self) -> None:
            self.stats = InvocationStats()
            self.calls: list[tuple[float, bool]] = []

        def evaluate(self, now: float, *, scale_in: bool = True) -> None:
            self.calls.append((now, scale_in))

    scaler = Counting()
    invocations = Invocations(engine, config, scaler, policy="project", trigger="push")
    invocations.start()
    engine.run_until(lambda: False, horizon=599.0)
    scheduled = [now for now, scale_in in scaler.calls if scale_in]
    assert scheduled == [60.0 * minute for minute in range(10)]
    assert invocations.stats.scheduled_invocations == 10
    # billed the evaluation only: 10 x 0.5 s at the function's memory
    memory_gb = config.lambda_memory_mb / 1024
    assert invocations.stats.gb_seconds == pytest.approx(10 * 0.5 * memory_gb)
    assert fleet.desired_capacity == 0


def test_push_mode_bills_far_less_lambda_than_the_reference_poll_loop() -> None:
    trace = [TraceJob(float(t), 60.0) for t in range(0, 3600, 300)]
    reference = simulate(trace, "reference", "poll", build_config("reference", FIXED_BOOT), 1)
    push = simulate(trace, "project", "push", build_config("project", FIXED_BOOT), 1)
    poll = simulate(trace, "project", "poll", build_config("project", FIXED_BOOT), 1)
    assert push.invocations.gb_seconds <= 0.10 * reference.invocations.gb_seconds
    assert push.waits.p95 <= poll.waits.p95
