"""Job traces: the ``submit_s,duration_s`` CSV format and a seeded generator of four shapes.

Every shape draws job durations from a log-normal distribution (``median x e^(sigma Z)``, capped
at ``MAX_DURATION_S``); the same shape and seed always give the same trace.

- ``office-hours``: one weekday, 24 h. Builds arrive as a Poisson process whose rate follows
  the working day: 2 builds/h at night, rising from 08:00 to a peak of 80 builds/h around
  13:30 (a sine-shaped day from 08:00 to 19:00, 30 % lower over the 12:00-13:00 lunch hour).
  Each build fans out to 1 + Geometric(0.35) jobs (at most 12) at once. Durations: median
  240 s, sigma 0.8.
- ``monorepo-bursts``: 6 h of fan-out bursts: every 3-10 min (uniform) a burst of 20-100
  jobs (uniform) arrives at the same second. Durations: median 180 s, sigma 0.6.
- ``sparse-overnight``: 12 h, builds at 2/h (Poisson), 1-3 jobs each. Durations: median
  300 s, sigma 0.7. Nearly every build finds the fleet scaled to zero.
- ``sustained-high``: 6 h, single jobs at 700/h (Poisson) after a 30 min linear ramp;
  durations median 300 s, sigma 0.5, i.e. about 66 agents busy on average.

As a command: ``python -m tools.simulate.traces --shape office-hours --seed 1 --out t.csv``
(or ``--all DIR`` for every shape).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HEADER = ("submit_s", "duration_s")
MAX_DURATION_S = 2 * 3600.0
HOUR = 3600.0


class TraceError(ValueError):
    """A trace file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job: when it is submitted (seconds from the trace start) and how long it runs."""

    submit_s: float
    duration_s: float


# -- CSV -----------------------------------------------------------------------------------


def read_trace(path: Path) -> list[TraceJob]:
    """Read and validate a trace CSV (header ``submit_s,duration_s``; rows in any order)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise TraceError(f"cannot read trace {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise TraceError(f"trace {path} is not UTF-8 text") from None
    jobs: list[TraceJob] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or tuple(cell.strip() for cell in header) != HEADER:
            raise TraceError(
                f"trace {path}: the first line must be the header 'submit_s,duration_s'"
            )
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            jobs.append(_job_from_row(path, reader.line_num, row))
    except csv.Error as error:
        raise TraceError(f"trace {path}: line {reader.line_num}: {error}") from None
    if not jobs:
        raise TraceError(f"trace {path} has no jobs")
    return jobs


def _job_from_row(path: Path, line: int, row: list[str]) -> TraceJob:
    if len(row) != 2:
        raise TraceError(f"trace {path}: line {line}: expected 2 columns, got {len(row)}")
    values = []
    for name, cell in zip(HEADER, row, strict=True):
        try:
            value = float(cell)
        except ValueError:
            raise TraceError(
                f"trace {path}: line {line}: {name} {cell.strip()!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise TraceError(f"trace {path}: line {line}: {name} must be finite")
        values.append(value)
    submit, duration = values
    if submit < 0:
        raise TraceError(f"trace {path}: line {line}: submit_s must be >= 0, got {submit:g}")
    if duration <= 0:
        raise TraceError(f"trace {path}: line {line}: duration_s must be > 0, got {duration:g}")
    return TraceJob(submit, duration)


def write_trace(path: Path, jobs: Iterable[TraceJob]) -> None:
    """Write a trace CSV, jobs in submission order."""
    ordered = sorted(jobs, key=lambda job: job.submit_s)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for job in ordered:
            writer.writerow((f"{job.submit_s:.3f}", f"{job.duration_s:.3f}"))


# -- shapes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """A workload shape: its name, one-line description and generator."""

    name: str
    description: str
    generate: Callable[[random.Random], list[TraceJob]]


def _duration(rng: random.Random, median_s: float, sigma: float) -> float:
    return min(median_s * math.exp(sigma * rng.gauss(0.0, 1.0)), MAX_DURATION_S)


def _poisson_times(
    rng: random.Random, rate_per_hour: Callable[[float], float], peak: float, end_s: float
) -> list[float]:
    """Arrival times of a non-homogeneous Poisson process (thinning against ``peak``/h)."""
    times = []
    now = 0.0
    while True:
        now += rng.expovariate(peak / HOUR)
        if now >= end_s:
            return times
        if rng.random() * peak <= rate_per_hour(now):
            times.append(now)


def _office_rate(now_s: float) -> float:
    hour = (now_s / HOUR) % 24
    rate = 2.0
    if 8.0 <= hour < 19.0:
        rate += 78.0 * math.sin(math.pi * (hour - 8.0) / 11.0)
        if 12.0 <= hour < 13.0:
            rate *= 0.7
    return rate


def office_hours(rng: random.Random) -> list[TraceJob]:
    jobs = []
    for submit in _poisson_times(rng, _office_rate, 80.0, 24 * HOUR):
        fan_out = 1
        while fan_out < 12 and rng.random() > 0.35:
            fan_out += 1
        jobs.extend(TraceJob(submit, _duration(rng, 240.0, 0.8)) for _ in range(fan_out))
    return jobs


def monorepo_bursts(rng: random.Random) -> list[TraceJob]:
    jobs = []
    now = rng.uniform(60.0, 300.0)
    while now < 6 * HOUR:
        size = rng.randint(20, 100)
        jobs.extend(TraceJob(now, _duration(rng, 180.0, 0.6)) for _ in range(size))
        now += rng.uniform(180.0, 600.0)
    return jobs


def sparse_overnight(rng: random.Random) -> list[TraceJob]:
    jobs = []
    for submit in _poisson_times(rng, lambda _: 2.0, 2.0, 12 * HOUR):
        size = rng.randint(1, 3)
        jobs.extend(TraceJob(submit, _duration(rng, 300.0, 0.7)) for _ in range(size))
    return jobs


def sustained_high(rng: random.Random) -> list[TraceJob]:
    def rate(now_s: float) -> float:
        return 700.0 * min(1.0, now_s / (0.5 * HOUR))

    return [
        TraceJob(submit, _duration(rng, 300.0, 0.5))
        for submit in _poisson_times(rng, rate, 700.0, 6 * HOUR)
    ]


SHAPES: dict[str, Shape] = {
    shape.name: shape
    for shape in (
        Shape("office-hours", "one weekday: builds follow the working day", office_hours),
        Shape("monorepo-bursts", "20-100 jobs at once every 3-10 minutes", monorepo_bursts),
        Shape("sparse-overnight", "a few builds an hour on an idle fleet", sparse_overnight),
        Shape("sustained-high", "about 66 agents busy for hours", sustained_high),
    )
}


def generate(shape: str, seed: int) -> list[TraceJob]:
    """The trace of ``shape`` for ``seed`` (deterministic), in submission order."""
    if shape not in SHAPES:
        raise TraceError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    rng = random.Random(f"{shape}:{seed}")  # noqa: S311 - simulation, not security
    return sorted(SHAPES[shape].generate(rng), key=lambda job: job.submit_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.simulate.traces", description="Write seeded job traces (CSV)."
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--shape", choices=sorted(SHAPES), help="the workload shape")
    target.add_argument("--all", type=Path, metavar="DIR", help="write every shape into DIR")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--out", type=Path, help="output CSV (with --shape)")
    args = parser.parse_args(argv)
    if args.shape:
        if args.out is None:
            parser.error("--shape needs --out")
        write_trace(args.out, generate(args.shape, args.seed))
        return 0
    for name in SHAPES:
        write_trace(args.all / f"{name}.csv", generate(name, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
