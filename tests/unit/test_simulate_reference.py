"""The reference scaler model and the replay of its own table tests."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.simulate.reference_cases import run_case
from tools.simulate.reference_policy import (
    ReferenceGroup,
    ReferenceMetrics,
    ReferenceParams,
    ReferenceState,
    evaluate,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# In CI the shared folder sits beside the repository.
SHARED_CASES = REPO_ROOT.parent / "shared" / "reference" / "reference-scaler-cases.json"

BASE_CASE = {
    "test": "TestScalingOutWithoutError",
    "index": 0,
    "metrics": {"scheduled": 10, "running": 2, "waiting": 2, "total_agents": 2},
    "asg": {"desired": 2},
    "params": {"agents_per_instance": 1},
    "state": {"last_scale_out_ago_s": None, "last_scale_in_ago_s": None},
    "expected_desired": 12,
}


def check_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.simulate", "--check-reference-cases", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(
    not SHARED_CASES.is_file(), reason=f"the shared reference cases are absent ({SHARED_CASES})"
)
def test_every_shared_reference_case_is_reproduced() -> None:
    completed = check_cli(SHARED_CASES)
    total = len(json.loads(SHARED_CASES.read_text())["cases"])
    assert completed.returncode == 0, completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == f"{total}/{total} cases reproduced"


def test_a_case_that_is_not_reproduced_is_named_and_fails_the_check(tmp_path: Path) -> None:
    good, wrong = copy.deepcopy(BASE_CASE), copy.deepcopy(BASE_CASE)
    wrong["index"], wrong["expected_desired"] = 1, 13
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": [good, wrong]}))
    completed = check_cli(path)
    assert completed.returncode == 1
    assert "TestScalingOutWithoutError #1: expected 13, got 12" in completed.stdout
    assert re.search(r"^1/2 cases reproduced$", completed.stdout, re.MULTILINE)


def test_a_case_with_a_parameter_the_model_does_not_know_is_not_reproduced() -> None:
    case = copy.deepcopy(BASE_CASE)
    case["params"]["scale_sideways"] = True
    outcome = run_case(case)
    assert not outcome.reproduced
    assert "scale_sideways" in (outcome.problem or "")


def test_an_unreadable_cases_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "cases.json"
    path.write_text('{"cases": []}')
    completed = check_cli(path)
    assert completed.returncode == 2
    assert "no non-empty 'cases' list" in completed.stderr


def group(desired: int, in_service: int | None = None, max_size: int = 100) -> ReferenceGroup:
    return ReferenceGroup(
        desired=desired,
        min_size=0,
        max_size=max_size,
        in_service=desired if in_service is None else in_service,
    )


def test_scale_out_waits_out_the_cooldown_of_the_last_scale_out() -> None:
    metrics = ReferenceMetrics(scheduled=5, running=0, waiting=0, total_agents=0)
    params = ReferenceParams(scale_out_cooldown_s=300.0)
    blocked = evaluate(metrics, group(0), params, ReferenceState(last_scale_out_at=0.0), 299.0)
    allowed = evaluate(metrics, group(0), params, ReferenceState(last_scale_out_at=0.0), 300.0)
    assert blocked.desired_capacity is None
    assert allowed.desired_capacity == 5
    assert allowed.state.last_scale_out_at == 300.0


def test_availability_boost_adds_one_instance_only_when_the_group_has_converged() -> None:
    metrics = ReferenceMetrics(scheduled=1, running=0, waiting=0, total_agents=0)
    params = ReferenceParams(availability_threshold=0.5)
    converged = evaluate(metrics, group(1), params, ReferenceState(), 0.0)
    booting = evaluate(metrics, group(1, in_service=0), params, ReferenceState(), 0.0)
    assert converged.desired_capacity == 2
    assert booting.desired_capacity is None


def test_the_buffer_applies_only_while_there_is_work() -> None:
    params = ReferenceParams(instance_buffer=3)
    idle = ReferenceMetrics(scheduled=0, running=0, waiting=0, total_agents=0)
    busy = ReferenceMetrics(scheduled=1, running=1, waiting=0, total_agents=1)
    assert evaluate(idle, group(0), params, ReferenceState(), 0.0).target == 0
    assert evaluate(busy, group(0), params, ReferenceState(), 0.0).target == 2 + 2


def test_with_scale_in_disabled_capacity_is_never_lowered() -> None:
    metrics = ReferenceMetrics(scheduled=0, running=0, waiting=0, total_agents=4)
    disabled = evaluate(
        metrics, group(4), ReferenceParams(disable_scale_in=True), ReferenceState(), 0.0
    )
    enabled = evaluate(metrics, group(4), ReferenceParams(), ReferenceState(), 0.0)
    assert disabled.desired_capacity is None
    assert enabled.desired_capacity == 0
