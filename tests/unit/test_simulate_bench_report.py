"""The benchmark report: target rules, verdicts, the frontier, and the generated text."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.simulate import bench
from tools.simulate.bench_report import check_row, obstacle, result_row, write_report
from tools.simulate.bench_targets import (
    IDLE_TAIL_OFF,
    PROJECT_POLL,
    PROJECT_PUSH,
    PROJECT_WARM,
    REFERENCE,
    Aggregate,
    BenchData,
    defaults_checks,
    pareto_front,
    push_checks,
    target_checks,
    wait_limit,
    warm_pool_checks,
)

BASE = Aggregate(
    runs=1, jobs=100, waited_share=0.2, wait_mean=20.0, wait_p50=0.0, wait_p95=100.0,
    wait_p99=150.0, wait_max=200.0, instance_hours=10.0, oracle_hours=8.0, efficiency=0.8,
    interrupted_jobs=0, scale_out_actions=10, scale_in_actions=0, evaluations=300,
    lambda_gb_seconds=1000.0, unfinished_jobs=0, cost_compute=0.832, cost_ebs=0.274,
    cost_lambda=0.017, launches=10,
)  # fmt: skip


def by_target(checks: list) -> dict[str, bool]:
    return {check.target: check.held for check in checks}


def test_wait_limits_are_a_factor_of_the_reference_or_two_seconds_over_a_tiny_one() -> None:
    assert wait_limit(100.0, 0.6) == pytest.approx(60.0)
    assert wait_limit(100.0, 0.5) == pytest.approx(50.0)
    assert wait_limit(5.0, 0.6) == pytest.approx(7.0)


def test_defaults_need_cost_at_most_the_reference_and_waits_at_sixty_percent() -> None:
    good = replace(BASE, wait_mean=12.0, wait_p95=60.0, cost_compute=0.8)
    assert by_target(defaults_checks("office-hours", BASE, good)) == {
        "cost $": True, "mean wait": True, "p95 wait": True, "interrupted jobs": True,
    }  # fmt: skip
    dearer = replace(good, cost_ebs=0.5, wait_p95=61.0, interrupted_jobs=1)
    assert by_target(defaults_checks("office-hours", BASE, dearer)) == {
        "cost $": False, "mean wait": True, "p95 wait": False, "interrupted jobs": False,
    }  # fmt: skip


def test_on_monorepo_bursts_the_defaults_only_need_to_match_the_reference_waits() -> None:
    same = replace(BASE)
    assert by_target(defaults_checks("monorepo-bursts", BASE, same))["p95 wait"]
    assert not by_target(defaults_checks("office-hours", BASE, same))["p95 wait"]


def test_the_warm_pool_needs_half_the_reference_waits_everywhere() -> None:
    point = replace(BASE, wait_mean=10.0, wait_p95=51.0)
    held = by_target(warm_pool_checks("monorepo-bursts", BASE, point))
    assert held["mean wait"]
    assert not held["p95 wait"]


def test_push_needs_a_tenth_of_the_reference_gb_seconds_and_no_worse_p95_than_poll() -> None:
    poll = replace(BASE, wait_p95=60.0)
    push = replace(BASE, wait_p95=60.0, lambda_gb_seconds=100.0)
    assert all(by_target(push_checks("office-hours", BASE, poll, push)).values())
    worse = replace(push, lambda_gb_seconds=101.0, wait_p95=60.5)
    held = by_target(push_checks("office-hours", BASE, poll, worse))
    assert not held["Lambda GB-s"]
    assert not held["p95 wait vs poll"]


points = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0, 1000), st.text(min_size=1, max_size=5)),
    min_size=1,
    max_size=12,
)


@given(points)
def test_no_point_beats_a_frontier_point_on_both_cost_and_p95(
    candidates: list[tuple[float, float, str]],
) -> None:
    front = pareto_front(candidates)
    assert front
    for cost, p95, _ in front:
        assert not any(c < cost and p < p95 for c, p, _ in candidates)
    # and every point off the frontier is beaten or matched by one on it
    for cost, p95, _ in candidates:
        assert any(c <= cost and p <= p95 for c, p, _ in front)


def test_rows_show_dollars_with_the_ebs_share_and_ratios() -> None:
    row = result_row("x", BASE)
    assert "$1.12" in row  # 0.832 + 0.274 + 0.017
    assert "$0.27 (24 %)" in row
    check = defaults_checks("office-hours", BASE, replace(BASE, cost_compute=1.0))[0]
    cells = check_row(check)
    assert cells[3:] == [
        "$1.12", "$1.29 (1.15x); instance-hours 1.00x", "≤ $1.12 (1x)", "❌ missed",
    ]  # fmt: skip


def _data(shapes: tuple[str, ...] = ("office-hours",)) -> BenchData:
    aggregates = {}
    for shape in shapes:
        aggregates[("main", shape, REFERENCE)] = BASE
        aggregates[("sweep-reference", shape, REFERENCE)] = BASE
        aggregates[("main", shape, PROJECT_POLL)] = replace(
            BASE, wait_mean=10.0, wait_p95=50.0, lambda_gb_seconds=1700.0, cost_compute=0.8
        )
        aggregates[("main", shape, PROJECT_PUSH)] = replace(
            BASE, wait_mean=10.0, wait_p95=48.0, lambda_gb_seconds=40.0
        )
        aggregates[("main", shape, PROJECT_WARM)] = replace(
            BASE, wait_mean=9.0, wait_p95=45.0, cost_ebs=0.6, resumes=30, returned_to_pool=40
        )
        aggregates[("sweep", shape, "defaults")] = aggregates[("main", shape, PROJECT_POLL)]
    return BenchData(
        aggregates=aggregates,
        main_seeds=(1,),
        sweep_seeds=(1,),
        sweep_labels=("defaults",),
        sweep_overrides={"defaults": {}},
        base_overrides={"MaxSize": 100},
        shapes=shapes,
        plot_names={label: bench.plot_name(label) for label, *_ in bench.MAIN_RUNS},
    )


def test_a_missed_cost_target_names_the_ebs_of_the_pool_with_numbers() -> None:
    data = _data()
    missed = [c for c in target_checks(data) if not c.held]
    assert [(c.configuration, c.target) for c in missed] == [("warm pool", "cost $")]
    text = obstacle(data, missed[0])
    assert "$1.45 against $1.12" in text
    assert "EBS +0.33 $" in text
    assert "40 instances went back into the pool and 30 came out of it" in text


def test_a_missed_wait_of_the_defaults_shows_what_the_idle_tail_trades_for_it() -> None:
    data = _data()
    slow = replace(BASE, wait_mean=15.0, wait_p95=80.0, cost_compute=0.7)
    fast = replace(BASE, wait_mean=9.0, wait_p95=40.0, cost_compute=0.9)
    aggregates = {
        **data.aggregates,
        ("main", "office-hours", PROJECT_POLL): slow,
        ("sweep", "office-hours", "defaults"): slow,
        ("sweep", "office-hours", IDLE_TAIL_OFF): fast,
    }
    data = replace(data, aggregates=aggregates, sweep_labels=("defaults", IDLE_TAIL_OFF))
    (mean,) = [c for c in target_checks(data) if c.configuration == "defaults" and not c.held
               and c.target == "mean wait"]  # fmt: skip
    text = obstacle(data, mean)
    assert "15.0 s (0.75x) at 0.88x the reference's cost with it" in text
    assert "9.0 s (0.45x) at 1.06x the reference's cost with ScaleInDemandWindow 0" in text
    assert text.count("trades this wait for dollars") == 1
    same = {**aggregates, ("sweep", "office-hours", IDLE_TAIL_OFF): slow}
    assert "is not what costs this wait" in obstacle(replace(data, aggregates=same), mean)
    # Without the variant in the sweep there is nothing to compare with.
    assert "idle tail" not in obstacle(replace(data, sweep_labels=("defaults",)), mean)


def test_the_report_has_the_target_table_dollars_prices_and_the_frontier(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    write_report(_data(), report, tmp_path / "benchmarks")
    text = report.read_text()
    assert "**10 of 11 targets hold** (defaults 4 of 4; warm pool 3 of 4; push 3 of 3)" in text
    assert "| warm pool | office-hours | cost $ | $1.12 | $1.45 (1.29x); instance-hours" in text
    assert "EBS $ (share)" in text
    assert "https://aws.amazon.com/ebs/pricing/" in text
    assert "(benchmarks/frontier.png)" in text
    assert "(benchmarks/office-hours-project-warm-pool.png)" in text
    assert (tmp_path / "benchmarks" / "frontier.png").stat().st_size > 0


def test_the_benchmark_plans_four_main_runs_per_trace_and_a_reduced_run() -> None:
    specs = bench.plan(Path("w"), Path("f"), shapes=("office-hours",), main_seeds=(1,), sweep=False)
    assert [(s.policy, s.trigger, s.label) for s in specs] == [
        ("reference", "poll", REFERENCE),
        ("project", "poll", PROJECT_POLL),
        ("project", "push", PROJECT_PUSH),
        ("project", "poll", PROJECT_WARM),
    ]
    warm = dict(specs[-1].overrides)
    assert warm["EnableWarmPool"] is True
    assert warm["OnDemandPercentage"] == 100
    full = bench.plan(Path("w"), Path("f"))
    assert len(full) == 4 * (4 * 5 + len(bench.SWEEP) * 3)
