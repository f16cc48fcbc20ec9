"""Trace generation (seeded shapes) and the trace CSV format; simulator configuration."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tools.simulate.config import BootDelay, ConfigError, build_config
from tools.simulate.traces import SHAPES, TraceError, TraceJob, generate, read_trace, write_trace


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_shape_is_deterministic_per_seed_and_valid(shape: str) -> None:
    first, again, other = generate(shape, 1), generate(shape, 1), generate(shape, 2)
    assert first == again
    assert first != other
    assert first == sorted(first, key=lambda job: job.submit_s)
    assert all(job.submit_s >= 0 and 0 < job.duration_s <= 7200 for job in first)


def test_monorepo_bursts_arrive_as_20_to_100_jobs_at_the_same_second() -> None:
    bursts: dict[float, int] = {}
    for job in generate("monorepo-bursts", 3):
        bursts[job.submit_s] = bursts.get(job.submit_s, 0) + 1
    assert all(20 <= size <= 100 for size in bursts.values())
    gaps = [b - a for a, b in zip(sorted(bursts), sorted(bursts)[1:], strict=False)]
    assert all(180 <= gap <= 600 for gap in gaps)


def test_office_hours_load_follows_the_working_day() -> None:
    jobs = generate("office-hours", 1)
    night = sum(1 for job in jobs if job.submit_s < 7 * 3600)
    day = sum(1 for job in jobs if 10 * 3600 <= job.submit_s < 17 * 3600)
    assert day > 10 * night


def test_a_trace_round_trips_through_csv(tmp_path: Path) -> None:
    jobs = [TraceJob(10.5, 60.25), TraceJob(0.0, 1.0)]
    path = tmp_path / "trace.csv"
    write_trace(path, jobs)
    assert path.read_text().splitlines()[0] == "submit_s,duration_s"
    assert read_trace(path) == sorted(jobs, key=lambda job: job.submit_s)


def test_reading_skips_blank_lines_and_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("submit_s,duration_s\n\n1,2\n3,inf\n")
    with pytest.raises(TraceError, match="line 4: duration_s must be finite"):
        read_trace(path)


def test_the_boot_delay_fit_matches_its_three_quantiles() -> None:
    boot = BootDelay(median_s=75.0, p05_s=45.0, p95_s=150.0)
    shift, mu, sigma = boot.parameters()
    z95 = 1.6448536269514722
    assert shift + math.exp(mu) == pytest.approx(75.0)
    assert shift + math.exp(mu - z95 * sigma) == pytest.approx(45.0)
    assert shift + math.exp(mu + z95 * sigma) == pytest.approx(150.0)


def test_boot_delay_quantiles_must_be_ordered_and_right_skewed() -> None:
    with pytest.raises(ConfigError, match="right-skewed"):
        build_config("project", {"BootDelayMedian": 75, "BootDelayP05": 30, "BootDelayP95": 100})
    with pytest.raises(ConfigError, match="BootDelayP05 < BootDelayMedian"):
        build_config("project", {"BootDelayMedian": 75, "BootDelayP05": 80, "BootDelayP95": 150})


def test_each_policy_takes_its_own_stack_defaults_and_string_booleans_work() -> None:
    assert build_config("reference").scale_out_cooldown_s == 300.0
    assert build_config("project").scale_out_cooldown_s == 0.0
    config = build_config("project", {"DisableScaleIn": "false", "MaxSize": 100})
    assert (config.disable_scale_in, config.max_size) == (False, 100)
