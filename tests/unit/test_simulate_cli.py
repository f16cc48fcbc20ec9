"""The simulator's command-line contract: arguments, RESULT.json, plots, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.simulate.progress import ProgressBar

RESULT_KEYS = {
    "policy",
    "trigger",
    "jobs",
    "wait_s",
    "instance_seconds",
    "oracle_instance_seconds",
    "interrupted_jobs",
    "scale_out_actions",
    "scale_in_actions",
    "evaluations",
    "lambda_gb_seconds",
    "lambda_requests",
    "volume_seconds",
    "cost_usd",
    "warm_pool",
}
COST_KEYS = {"total", "compute", "ebs", "lambda"}
WAIT_KEYS = {"mean", "p50", "p95", "p99", "max"}


def simulate_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.simulate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tiny_trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    # Any order is accepted.
    path.write_text("submit_s,duration_s\n120,60\n0,300\n5,30.5\n")
    return path


@pytest.mark.parametrize(("policy", "trigger"), [("project", "poll"), ("reference", "poll")])
def test_a_run_writes_result_json_with_the_documented_keys_and_types(
    tiny_trace: Path, tmp_path: Path, policy: str, trigger: str
) -> None:
    out = tmp_path / "nested" / "result.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"MaxSize": 5, "AgentsPerInstance": 2, "DisableScaleIn": "false"}))

    completed = simulate_cli(
        "--trace", tiny_trace, "--policy", policy, "--trigger", trigger,
        "--config", config, "--seed", 3, "--out", out,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    result = json.loads(out.read_text())
    assert set(result) == RESULT_KEYS
    assert (result["policy"], result["trigger"], result["jobs"]) == (policy, trigger, 3)
    assert set(result["wait_s"]) == WAIT_KEYS
    assert all(isinstance(value, float) for value in result["wait_s"].values())
    for key in ("instance_seconds", "oracle_instance_seconds", "lambda_gb_seconds"):
        assert isinstance(result[key], float)
        assert result[key] > 0
    for key in ("interrupted_jobs", "scale_out_actions", "scale_in_actions", "evaluations"):
        assert type(result[key]) is int
    assert result["oracle_instance_seconds"] == pytest.approx((300 + 30.5 + 60) / 2)
    assert result["wait_s"]["max"] >= result["wait_s"]["p99"] >= result["wait_s"]["p50"] >= 0
    cost = result["cost_usd"]
    assert set(cost) == COST_KEYS
    assert all(isinstance(value, float) and value > 0 for value in cost.values())
    assert cost["total"] == pytest.approx(cost["compute"] + cost["ebs"] + cost["lambda"], abs=1e-5)
    # Without a warm pool every volume exists exactly while its instance runs.
    assert result["volume_seconds"] == pytest.approx(result["instance_seconds"])
    assert cost["compute"] == pytest.approx(result["instance_seconds"] / 3600 * 0.0832, rel=1e-4)


def test_push_and_the_timeline_plot(tiny_trace: Path, tmp_path: Path) -> None:
    out, plot = tmp_path / "result.json", tmp_path / "timeline.png"
    completed = simulate_cli(
        "--trace", tiny_trace, "--policy", "project", "--trigger", "push",
        "--out", out, "--plot", plot,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text())["trigger"] == "push"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("trace_text", "message"),
    [
        ("start,length\n0,1\n", "header 'submit_s,duration_s'"),
        ("submit_s,duration_s\n0,abc\n", "line 2: duration_s 'abc' is not a number"),
        ("submit_s,duration_s\n-1,10\n", "submit_s must be >= 0"),
        ("submit_s,duration_s\n0,0\n", "duration_s must be > 0"),
        ("submit_s,duration_s\n0,1,2\n", "expected 2 columns"),
        ("submit_s,duration_s\n", "has no jobs"),
    ],
)
def test_a_bad_trace_is_a_clear_error_and_exit_2(
    tmp_path: Path, trace_text: str, message: str
) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text(trace_text)
    out = tmp_path / "result.json"
    completed = simulate_cli("--trace", trace, "--policy", "project", "--out", out)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ('{"MaxSise": 3}', "unknown configuration key 'MaxSise'"),
        ('{"MinSize": 5, "MaxSize": 2}', "MinSize (5) must not exceed MaxSize (2)"),
        ('{"AgentsPerInstance": 1.5}', "AgentsPerInstance must be a whole number"),
        ('{"DisableScaleIn": "maybe"}', "DisableScaleIn must be true or false"),
        ("[1, 2]", "must be a JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_bad_config_is_a_clear_error_and_exit_2(
    tiny_trace: Path, tmp_path: Path, config_text: str, message: str
) -> None:
    config = tmp_path / "config.json"
    config.write_text(config_text)
    completed = simulate_cli(
        "--trace", tiny_trace, "--policy", "project", "--config", config,
        "--out", tmp_path / "r.json",
    )  # fmt: skip
    assert completed.returncode == 2
    assert message in completed.stderr


def test_missing_arguments_and_impossible_combinations_exit_2(
    tiny_trace: Path, tmp_path: Path
) -> None:
    missing = simulate_cli("--trace", tiny_trace, "--policy", "project")
    assert missing.returncode == 2
    assert "--out" in missing.stderr
    no_push = simulate_cli(
        "--trace", tiny_trace, "--policy", "reference", "--trigger", "push",
        "--out", tmp_path / "r.json",
    )  # fmt: skip
    assert no_push.returncode == 2
    assert "no push trigger" in no_push.stderr
    absent = simulate_cli("--trace", tmp_path / "absent.csv", "--policy", "project", "--out", "x")
    assert absent.returncode == 2
    assert "cannot read trace" in absent.stderr


def test_the_progress_bar_writes_plain_lines_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar("simulating", stream=stream, delay_s=0.0)
    for step in range(101):
        bar(step / 100)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "simulating: 0%"
    assert lines[-1] == "simulating: 100%"
    assert len(lines) == 11
