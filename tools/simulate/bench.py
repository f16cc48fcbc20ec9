"""``make bench``: the standard traces through both scalers, written up in docs/benchmarks.md.

1. Generate the four standard traces for each seed (``build/bench/traces/*.csv``).
2. Run the reference (poll), the project (poll), the project (push) and the project with a
   warm pool (EnableWarmPool, on-demand, one instance type) on each, MaxSize 100 and stack
   defaults otherwise, one run per seed; RESULT.json files go to ``build/bench/results/``,
   timeline plots of seed 1 to ``docs/benchmarks/``.
3. Sweep the project's parameters (poll): the idle-tail knobs, ScaleInDemandWindow, warm pool
   sizes (demand-sized, fixed), for the cost-against-wait frontier.
4. Write ``docs/benchmarks.md`` (tables with dollars, target verdicts, plots, analysis).

Runs go to a process pool (``--workers``, default: the CPU count). Seeded: a rerun writes the
same report. A reduced run for development (``--seeds 1 --shapes office-hours --no-sweep``)
writes its report elsewhere (``--docs``), never over docs/benchmarks.md unless asked.

    python -m tools.simulate.bench [--workers N] [--docs DIR] [--work DIR]
        [--seeds 1,2] [--shapes office-hours,...] [--no-sweep]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.simulate.bench_report import write_report
from tools.simulate.bench_targets import IDLE_TAIL_OFF, Aggregate, BenchData
from tools.simulate.config import build_config
from tools.simulate.lambda_cost import REPO_ROOT
from tools.simulate.runner import simulate
from tools.simulate.stats import WaitSummary
from tools.simulate.traces import SHAPES, generate, read_trace, write_trace

BASE_OVERRIDES: dict[str, object] = {"MaxSize": 100}
MAIN_SEEDS = (1, 2, 3, 4, 5)
SWEEP_SEEDS = (1, 2, 3)
PLOT_SEED = 1
WARM_POOL: dict[str, object] = {
    "EnableWarmPool": True,
    "OnDemandPercentage": 100,
    "InstanceTypes": "t3.large",
}
# label -> (policy, trigger, overrides)
MAIN_RUNS: tuple[tuple[str, str, str, dict[str, object]], ...] = (
    ("reference (poll)", "reference", "poll", {}),
    ("project (poll)", "project", "poll", {}),
    ("project (push)", "project", "push", {}),
    ("project (warm pool)", "project", "poll", WARM_POOL),
)
SWEEP: tuple[tuple[str, dict[str, object]], ...] = (
    ("defaults", {}),
    (IDLE_TAIL_OFF, {"ScaleInDemandWindow": 0}),
    ("ScaleInDemandWindow 300", {"ScaleInDemandWindow": 300}),
    ("ScaleInDemandWindow 1200", {"ScaleInDemandWindow": 1200}),
    ("ScaleInIdlePeriod 300", {"ScaleInIdlePeriod": 300}),
    ("ScaleInIdlePeriod 900", {"ScaleInIdlePeriod": 900}),
    ("InstanceBuffer 1", {"InstanceBuffer": 1}),
    ("DisableScaleIn false", {"DisableScaleIn": False}),
    ("ScaleOutCooldownPeriod 60", {"ScaleOutCooldownPeriod": 60}),
    ("warm pool, demand-sized", WARM_POOL),
    ("warm pool, demand-sized, window 300", {**WARM_POOL, "ScaleInDemandWindow": 300}),
    ("warm pool, Hibernated", {**WARM_POOL, "WarmPoolState": "Hibernated"}),
    ("warm pool, no reuse", {**WARM_POOL, "WarmPoolReuseOnScaleIn": False}),
    ("warm pool, fixed 2", {**WARM_POOL, "WarmPoolMinSize": 2, "WarmPoolMaxPreparedCapacity": 0}),
    ("warm pool, fixed 5", {**WARM_POOL, "WarmPoolMinSize": 5, "WarmPoolMaxPreparedCapacity": 0}),
    ("warm pool, prepared 20", {**WARM_POOL, "WarmPoolMaxPreparedCapacity": 20}),
)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One simulation run of the benchmark."""

    group: str  # "main", "sweep" or "whatif"
    shape: str
    policy: str
    trigger: str
    label: str
    overrides: tuple[tuple[str, object], ...]
    seed: int
    trace_path: str
    result_path: str
    plot_path: str | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run measured (the timeline stays in the worker)."""

    spec: RunSpec
    jobs: int
    jobs_waited: int
    waits: WaitSummary
    instance_seconds: float
    oracle_instance_seconds: float
    interrupted_jobs: int
    scale_out_actions: int
    scale_in_actions: int
    evaluations: int
    lambda_gb_seconds: float
    unfinished_jobs: int
    cost_compute: float = 0.0
    cost_ebs: float = 0.0
    cost_lambda: float = 0.0
    launches: int = 0
    resumes: int = 0
    warm_launches: int = 0
    returned_to_pool: int = 0
    drained_instances: int = 0
    scheduled_invocations: int = 0
    push_invocations: int = 0


def execute(spec: RunSpec) -> RunOutcome:
    """Run one spec (in a worker process); writes its RESULT.json and, if asked, its plot."""
    import json

    config = build_config(spec.policy, {**BASE_OVERRIDES, **dict(spec.overrides)})
    trace = read_trace(Path(spec.trace_path))
    result = simulate(trace, spec.policy, spec.trigger, config, spec.seed)
    Path(spec.result_path).write_text(json.dumps(result.as_json(), indent=2) + "\n")
    if spec.plot_path is not None:
        from tools.simulate.plot import plot_timeline

        plot_timeline(result, Path(spec.plot_path), title=f"{spec.shape}: {spec.label}")
    return RunOutcome(
        spec=spec,
        jobs=result.jobs,
        jobs_waited=result.jobs_waited,
        waits=result.waits,
        instance_seconds=result.instance_seconds,
        oracle_instance_seconds=result.oracle_instance_seconds,
        interrupted_jobs=result.interrupted_jobs,
        scale_out_actions=result.scaler.scale_out_actions,
        scale_in_actions=result.scaler.scale_in_actions,
        evaluations=result.scaler.evaluations,
        lambda_gb_seconds=result.invocations.gb_seconds,
        unfinished_jobs=result.unfinished_jobs,
        cost_compute=result.cost.compute,
        cost_ebs=result.cost.ebs,
        cost_lambda=result.cost.lambda_,
        launches=result.launches,
        resumes=result.resumes,
        warm_launches=result.warm_launches,
        returned_to_pool=result.returned_to_pool,
        drained_instances=result.scaler.drained_instances,
        scheduled_invocations=result.invocations.scheduled_invocations,
        push_invocations=result.invocations.push_invocations,
    )


def plot_name(label: str) -> str:
    """The timeline plot's file stem of a main run ("project (warm pool)" -> project-warm-pool)."""
    return "".join(c if c.isalnum() else "-" for c in label).replace("--", "-").strip("-")


def plan(
    work: Path,
    figures: Path,
    *,
    shapes: Sequence[str] = tuple(SHAPES),
    main_seeds: Sequence[int] = MAIN_SEEDS,
    sweep_seeds: Sequence[int] = SWEEP_SEEDS,
    sweep: bool = True,
) -> list[RunSpec]:
    """Every run of the benchmark (traces must exist under ``work/traces``)."""
    specs = []
    for shape in shapes:
        for label, policy, trigger, overrides in MAIN_RUNS:
            for seed in main_seeds:
                plot = None
                if seed == PLOT_SEED:
                    plot = str(figures / f"{shape}-{plot_name(label)}.png")
                specs.append(
                    _spec(work, "main", shape, policy, trigger, label, overrides, seed, plot)
                )
        if not sweep:
            continue
        for label, overrides in SWEEP:
            for seed in sweep_seeds:
                specs.append(
                    _spec(work, "sweep", shape, "project", "poll", label, overrides, seed, None)
                )
    return specs


def _spec(
    work: Path,
    group: str,
    shape: str,
    policy: str,
    trigger: str,
    label: str,
    overrides: dict[str, object],
    seed: int,
    plot: str | None,
) -> RunSpec:
    slug = "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")
    return RunSpec(
        group=group,
        shape=shape,
        policy=policy,
        trigger=trigger,
        label=label,
        overrides=tuple(sorted(overrides.items())),
        seed=seed,
        trace_path=str(_trace_path(work, shape, seed)),
        result_path=str(work / "results" / f"{group}-{shape}-{slug}-seed{seed}.json"),
        plot_path=plot,
    )


def _trace_path(work: Path, shape: str, seed: int) -> Path:
    return work / "traces" / f"{shape}-seed{seed}.csv"


def aggregate(outcomes: Sequence[RunOutcome]) -> Aggregate:
    """Average a label's runs over seeds (instance-seconds summed for efficiency)."""
    count = len(outcomes)

    def average(values: Sequence[float]) -> float:
        return sum(values) / count

    instance = sum(o.instance_seconds for o in outcomes)
    oracle = sum(o.oracle_instance_seconds for o in outcomes)
    return Aggregate(
        runs=count,
        jobs=average([o.jobs for o in outcomes]),
        waited_share=sum(o.jobs_waited for o in outcomes) / max(sum(o.jobs for o in outcomes), 1),
        wait_mean=average([o.waits.mean for o in outcomes]),
        wait_p50=average([o.waits.p50 for o in outcomes]),
        wait_p95=average([o.waits.p95 for o in outcomes]),
        wait_p99=average([o.waits.p99 for o in outcomes]),
        wait_max=max(o.waits.max for o in outcomes),
        instance_hours=instance / count / 3600.0,
        oracle_hours=oracle / count / 3600.0,
        efficiency=oracle / instance if instance else 0.0,
        interrupted_jobs=sum(o.interrupted_jobs for o in outcomes),
        scale_out_actions=average([o.scale_out_actions for o in outcomes]),
        scale_in_actions=average([o.scale_in_actions for o in outcomes]),
        evaluations=average([o.evaluations for o in outcomes]),
        lambda_gb_seconds=average([o.lambda_gb_seconds for o in outcomes]),
        unfinished_jobs=sum(o.unfinished_jobs for o in outcomes),
        cost_compute=average([o.cost_compute for o in outcomes]),
        cost_ebs=average([o.cost_ebs for o in outcomes]),
        cost_lambda=average([o.cost_lambda for o in outcomes]),
        launches=average([o.launches for o in outcomes]),
        resumes=average([o.resumes for o in outcomes]),
        warm_launches=average([o.warm_launches for o in outcomes]),
        returned_to_pool=average([o.returned_to_pool for o in outcomes]),
        drained_instances=average([o.drained_instances for o in outcomes]),
        scheduled_invocations=average([o.scheduled_invocations for o in outcomes]),
        push_invocations=average([o.push_invocations for o in outcomes]),
    )


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in SHAPES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown trace shape(s): {', '.join(unknown)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.simulate.bench",
        description="Benchmark the project's scaler against the reference scaler.",
    )
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "build" / "bench")
    parser.add_argument("--seeds", type=_numbers, help="main seeds (default 1-5)")
    parser.add_argument("--sweep-seeds", type=_numbers, help="sweep seeds (default 1-3)")
    parser.add_argument("--shapes", type=_names, help="traces (default: all four)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the parameter sweep")
    args = parser.parse_args(argv)
    started = time.monotonic()
    shapes = args.shapes or tuple(SHAPES)
    main_seeds = args.seeds or MAIN_SEEDS
    sweep_seeds = args.sweep_seeds or tuple(s for s in SWEEP_SEEDS if s in main_seeds) or main_seeds
    figures = args.docs / "benchmarks"
    figures.mkdir(parents=True, exist_ok=True)
    (args.work / "results").mkdir(parents=True, exist_ok=True)
    seeds = sorted(set(main_seeds) | set(sweep_seeds))
    for shape in shapes:
        for seed in seeds:
            write_trace(_trace_path(args.work, shape, seed), generate(shape, seed))

    specs = plan(
        args.work,
        figures,
        shapes=shapes,
        main_seeds=main_seeds,
        sweep_seeds=sweep_seeds,
        sweep=not args.no_sweep,
    )
    outcomes: list[RunOutcome] = []
    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        for done, outcome in enumerate(pool.map(execute, specs, chunksize=2), start=1):
            outcomes.append(outcome)
            if done % 20 == 0 or done == len(specs):
                print(f"bench: {done}/{len(specs)} runs", file=sys.stderr, flush=True)

    grouped: dict[tuple[str, str, str], list[RunOutcome]] = {}
    for outcome in outcomes:
        key = (outcome.spec.group, outcome.spec.shape, outcome.spec.label)
        grouped.setdefault(key, []).append(outcome)
    aggregates = {key: aggregate(runs) for key, runs in grouped.items()}
    for shape in shapes:  # the reference over the sweep's seeds, for like-for-like ratios
        runs = grouped[("main", shape, "reference (poll)")]
        same_seeds = [run for run in runs if run.spec.seed in sweep_seeds] or runs
        aggregates[("sweep-reference", shape, "reference (poll)")] = aggregate(same_seeds)
    data = BenchData(
        aggregates=aggregates,
        main_seeds=tuple(main_seeds),
        sweep_seeds=tuple(sweep_seeds),
        sweep_labels=() if args.no_sweep else tuple(label for label, _ in SWEEP),
        sweep_overrides={label: overrides for label, overrides in SWEEP},
        base_overrides=BASE_OVERRIDES,
        shapes=tuple(shapes),
        main_labels=tuple(label for label, *_ in MAIN_RUNS),
        plot_names={label: plot_name(label) for label, *_ in MAIN_RUNS},
    )
    write_report(data, args.docs / "benchmarks.md", figures)
    elapsed = time.monotonic() - started
    print(
        f"bench: wrote {args.docs / 'benchmarks.md'} ({len(specs)} runs, {elapsed:.0f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
