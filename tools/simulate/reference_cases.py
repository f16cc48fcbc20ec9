"""Replays the reference scaler's table tests (a JSON file of cases) on ``reference_policy``.

Each case is evaluated as the file's ``semantics`` describe: one ``Run()`` at time 0 with the
given metrics, group and parameters; a ``*_ago_s`` cooldown state is that many seconds before
the run (null = never, so that direction's cooldown is not checked); the group's MinSize is 0
and MaxSize 100 unless given; its actual (InService) count is the desired count when the case
gives 0 or omits it; Pending is 0. The case reproduces when the desired capacity afterwards
(unchanged when no SetDesiredCapacity call is made) equals ``expected_desired``. A case
with a parameter or field this model does not know is reported as not reproduced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tools.simulate.reference_policy import (
    ReferenceGroup,
    ReferenceMetrics,
    ReferenceParams,
    ReferenceState,
    evaluate,
)

_PARAM_NAMES = {item.name for item in fields(ReferenceParams)}
_METRIC_NAMES = {"scheduled", "running", "waiting", "idle_agents", "busy_agents", "total_agents"}
_ASG_NAMES = {"desired", "min", "max", "actual", "pending"}
_STATE_NAMES = {"last_scale_out_ago_s", "last_scale_in_ago_s"}
# TestDanglingInstanceDetection's harness sets includeWaiting; every other harness leaves it.
_INCLUDE_WAITING_TESTS = {"TestDanglingInstanceDetection"}


class CasesFileError(ValueError):
    """The cases file cannot be read or does not have the documented shape."""


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """One case: its label, what it expected, what the model produced (or why it could not)."""

    label: str
    expected: int | None
    produced: int | None
    problem: str | None = None

    @property
    def reproduced(self) -> bool:
        return self.problem is None and self.expected == self.produced


def load_cases(path: Path) -> list[dict[str, Any]]:
    """The ``cases`` list of a cases file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise CasesFileError(f"cannot read cases file {path}: {error.strerror}") from None
    except ValueError as error:
        raise CasesFileError(f"cases file {path} is not valid JSON: {error}") from None
    cases = document.get("cases") if isinstance(document, dict) else None
    if not isinstance(cases, list) or not cases:
        raise CasesFileError(f"cases file {path} has no non-empty 'cases' list")
    return cases


def run_case(case: dict[str, Any]) -> CaseOutcome:
    """Evaluate one case as its harness would."""
    label = _label(case)
    expected = case.get("expected_desired") if isinstance(case, dict) else None
    try:
        if not isinstance(expected, int) or isinstance(expected, bool):
            raise _CaseProblem("expected_desired is missing or not an integer")
        metrics, group, params, state = _inputs(case)
        decision = evaluate(metrics, group, params, state, now=0.0)
    except _CaseProblem as problem:
        return CaseOutcome(label, expected, None, str(problem))
    produced = group.desired if decision.desired_capacity is None else decision.desired_capacity
    return CaseOutcome(label, expected, produced)


def check_cases(path: Path) -> list[CaseOutcome]:
    """Evaluate every case in the file."""
    return [run_case(case) for case in load_cases(path)]


class _CaseProblem(Exception):
    pass


def _label(case: Any) -> str:
    if not isinstance(case, dict):
        return "<not an object>"
    parts = [str(case.get("test", "?")), f"#{case.get('index', '?')}"]
    description = case.get("name") or case.get("comment")
    if description:
        parts.append(f"({description})")
    return " ".join(parts)


def _section(case: dict[str, Any], name: str, known: set[str]) -> dict[str, Any]:
    section = case.get(name, {})
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise _CaseProblem(f"'{name}' is not an object")
    unknown = sorted(set(section) - known)
    if unknown:
        raise _CaseProblem(f"unsupported {name} field(s): {', '.join(unknown)}")
    return section


def _integer(section: dict[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _CaseProblem(f"{key} must be an integer, got {value!r}")
    return int(value)


def _inputs(
    case: dict[str, Any],
) -> tuple[ReferenceMetrics, ReferenceGroup, ReferenceParams, ReferenceState]:
    metrics_in = _section(case, "metrics", _METRIC_NAMES)
    asg_in = _section(case, "asg", _ASG_NAMES)
    params_in = _section(case, "params", _PARAM_NAMES)
    state_in = _section(case, "state", _STATE_NAMES)

    metrics = ReferenceMetrics(
        scheduled=_integer(metrics_in, "scheduled", 0),
        running=_integer(metrics_in, "running", 0),
        waiting=_integer(metrics_in, "waiting", 0),
        total_agents=_integer(metrics_in, "total_agents", 0),
    )
    desired = _integer(asg_in, "desired", 0)
    actual = _integer(asg_in, "actual", 0) or desired
    group = ReferenceGroup(
        desired=desired,
        min_size=_integer(asg_in, "min", 0),
        max_size=_integer(asg_in, "max", 0) or 100,
        in_service=actual,
        pending=_integer(asg_in, "pending", 0),
    )

    defaults = ReferenceParams(
        agents_per_instance=0,
        include_waiting=case.get("test") in _INCLUDE_WAITING_TESTS,
        scale_out_factor=0.0,
        availability_threshold=0.0,
    )
    values: dict[str, Any] = {}
    for item in fields(ReferenceParams):
        default = getattr(defaults, item.name)
        raw = params_in.get(item.name, default)
        if raw is None:
            raw = default
        values[item.name] = _typed(item.name, raw, default)
    params = ReferenceParams(**values)

    state = ReferenceState(
        last_scale_out_at=_ago(state_in, "last_scale_out_ago_s"),
        last_scale_in_at=_ago(state_in, "last_scale_in_ago_s"),
    )
    return metrics, group, params, state


def _typed(name: str, raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(raw, bool):
            raise _CaseProblem(f"params.{name} must be true or false, got {raw!r}")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _CaseProblem(f"params.{name} must be a number, got {raw!r}")
    if isinstance(default, int):
        if raw != int(raw):
            raise _CaseProblem(f"params.{name} must be an integer, got {raw!r}")
        return int(raw)
    return float(raw)


def _ago(section: dict[str, Any], key: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _CaseProblem(f"state.{key} must be a number of seconds or null, got {value!r}")
    return -float(value)
