"""The jobs the demo replays: built-in workloads, or a trace CSV (``submit_s,duration_s``).

Times are virtual seconds from the start of the replay. The built-in workloads are fixed (no
randomness), so every run of the demo tells the same story:

- ``mixed`` (default, about 6 minutes of submissions): a morning push, a follow-up, a burst of
  a monorepo build and a late straggler.
- ``burst``: 12 jobs at once, then nothing.
- ``steady``: a job every 20 seconds for 5 minutes.
- ``short``: 4 quick jobs in the first half minute (the test's workload).
- ``waves``: 4 jobs at once, then 5 more after a quiet gap longer than the demo's
  ScaleInIdlePeriod: with ``--warm-pool`` and ReuseOnScaleIn the second wave resumes the
  instances the first one returned to the pool.

A path to a CSV in the simulator's trace format (``python -m tools.simulate``) works too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tools.simulate.traces import TraceJob, read_trace


def _mixed() -> list[TraceJob]:
    jobs = [TraceJob(0.0, 90.0 + 15.0 * i) for i in range(5)]
    jobs += [TraceJob(45.0, 60.0), TraceJob(50.0, 120.0)]
    jobs += [TraceJob(150.0 + 2.0 * i, 100.0 + 10.0 * (i % 4)) for i in range(10)]
    jobs += [TraceJob(330.0, 45.0)]
    return jobs


def _burst() -> list[TraceJob]:
    return [TraceJob(0.0, 60.0 + 10.0 * (i % 5)) for i in range(12)]


def _steady() -> list[TraceJob]:
    return [TraceJob(20.0 * i, 75.0) for i in range(15)]


def _short() -> list[TraceJob]:
    return [TraceJob(0.0, 40.0), TraceJob(0.0, 50.0), TraceJob(10.0, 40.0), TraceJob(30.0, 30.0)]


def _waves() -> list[TraceJob]:
    return [TraceJob(0.0, 60.0) for _ in range(4)] + [TraceJob(400.0, 60.0) for _ in range(5)]


BUILT_IN: dict[str, Callable[[], list[TraceJob]]] = {
    "mixed": _mixed,
    "burst": _burst,
    "steady": _steady,
    "short": _short,
    "waves": _waves,
}


def load_workload(name_or_path: str) -> list[TraceJob]:
    """The named built-in workload, or the trace CSV at that path; sorted by submission."""
    built_in = BUILT_IN.get(name_or_path)
    jobs = built_in() if built_in is not None else read_trace(Path(name_or_path))
    if not jobs:
        raise ValueError(f"workload {name_or_path!r} has no jobs")
    return sorted(jobs, key=lambda job: job.submit_s)
