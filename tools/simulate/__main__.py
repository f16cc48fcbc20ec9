"""Command line of the fleet simulator (a stable contract: scripts depend on it).

    python -m tools.simulate --trace TRACE.csv --policy {project,reference}
        [--trigger {poll,push}] [--config CONFIG.json] [--seed N]
        --out RESULT.json [--plot TIMELINE.png]
    python -m tools.simulate --check-reference-cases FILE

RESULT.json keeps its keys (policy, trigger, jobs, wait_s, instance_seconds,
oracle_instance_seconds, interrupted_jobs, scale_out_actions, scale_in_actions, evaluations,
lambda_gb_seconds) and adds ``cost_usd`` ({total, compute, ebs, lambda}: dollars for the whole
trace at the prices of ``tools.simulate.prices``), ``lambda_requests``, ``volume_seconds`` and
``warm_pool`` (enabled, warm_launches, resumes, returned_to_pool). CONFIG.json takes the stack's
parameter names, including EnableWarmPool, WarmPoolMinSize, WarmPoolMaxPreparedCapacity,
WarmPoolState, WarmPoolReuseOnScaleIn, InstanceTypes, OnDemandPercentage and
ScaleInDemandWindow; a warm pool with OnDemandPercentage < 100 or several InstanceTypes is
refused (exit 2), as the template refuses it.

Exit status: 0 on success (and when every reference case reproduces); 1 when some reference
case does not reproduce; 2 on bad input (arguments, trace, configuration, cases file), with
the cause on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.simulate.config import POLICIES, TRIGGERS, ConfigError, load_config
from tools.simulate.progress import ProgressBar
from tools.simulate.reference_cases import CasesFileError, check_cases
from tools.simulate.runner import SimulationError, simulate
from tools.simulate.traces import TraceError, read_trace

EXIT_OK = 0
EXIT_CASES_FAILED = 1
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.simulate",
        description=(
            "Simulate a Buildkite agent fleet on a job trace with the project's scaling "
            "policy or the reference scaler, and write the measurements as JSON."
        ),
    )
    parser.add_argument("--trace", type=Path, help="CSV with header submit_s,duration_s")
    parser.add_argument("--policy", choices=POLICIES, help="which scaler drives the fleet")
    parser.add_argument(
        "--trigger", choices=TRIGGERS, default="poll", help="project only: poll or push"
    )
    parser.add_argument("--config", type=Path, help="JSON of stack parameter names")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, help="where to write RESULT.json")
    parser.add_argument("--plot", type=Path, help="also write a timeline PNG")
    parser.add_argument(
        "--check-reference-cases",
        type=Path,
        metavar="FILE",
        help="replay the reference scaler's table tests and report N/M cases reproduced",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.check_reference_cases is not None:
        return _check_reference_cases(args.check_reference_cases)
    missing = [
        flag
        for flag, value in (("--trace", args.trace), ("--policy", args.policy), ("--out", args.out))
        if value is None
    ]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    try:
        config = load_config(args.policy, args.config)
        trace = read_trace(args.trace)
        progress = ProgressBar(f"simulating {args.trace.name} ({args.policy}, {args.trigger})")
        try:
            result = simulate(trace, args.policy, args.trigger, config, args.seed, progress)
        finally:
            progress.close()
    except (ConfigError, TraceError, SimulationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
        if args.plot is not None:
            from tools.simulate.plot import plot_timeline

            plot_timeline(result, args.plot)
    except OSError as error:
        print(f"error: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _check_reference_cases(path: Path) -> int:
    try:
        outcomes = check_cases(path)
    except CasesFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for outcome in outcomes:
        if not outcome.reproduced:
            detail = outcome.problem or f"expected {outcome.expected}, got {outcome.produced}"
            print(f"NOT REPRODUCED {outcome.label}: {detail}")
    reproduced = sum(outcome.reproduced for outcome in outcomes)
    print(f"{reproduced}/{len(outcomes)} cases reproduced")
    return EXIT_OK if reproduced == len(outcomes) else EXIT_CASES_FAILED


if __name__ == "__main__":
    sys.exit(main())
