"""Run the fleet's control loop locally: moto + the Buildkite emulator + the real scaler.

    python -m tools.demo [--workload mixed|burst|steady|short|TRACE.csv] [--speed 10]
        [--duration 1200] [--agents-per-instance 1] [--max-size 6] [--keep-running]
        [--warm-pool [--resume-delay S] [--compare-with DEFAULT_RUN.json]] ...

What happens: moto (AWS) and the Buildkite agent API emulator start on 127.0.0.1 ports the OS
picks; nested/network.yaml, nested/storage.yaml, nested/fleet.yaml and nested/monitoring.yaml
are created in moto's CloudFormation (the demo names each resource moto cannot create and what
it created instead); then the workload is replayed on a virtual clock: jobs enter the
emulator's queue, the real agent_scaler code is invoked every virtual minute, instances that moto
reports InService connect their agents after a boot delay, agents run jobs, idle out after
ScaleInIdlePeriod and terminate their instance through the Auto Scaling API. As the instance's
lifecycle handler does, an instance whose agents have been idle 30 s drops its scale-in
protection (SetInstanceProtection in moto) and takes it back when an agent takes a job: the
scaler's idle-tail rule drains only unprotected instances, through the terminating lifecycle
hook (a running job finishes first). A live table shows
the fleet; the end shows a summary, the path of a timeline PNG and the status screen
(``tools.status``). Times (durations, boot delay, idle period) are virtual seconds; --speed says
how many pass per wall-clock second.

With ``--warm-pool`` the fleet stack is created with EnableWarmPool=true, OnDemandPercentage=100
and one instance type. moto keeps the pool's configuration but never puts an instance in it, so
the demo's fleet plays the pool (``tools.demo.warm_pool``): prepared instances wait in
Warmed:Stopped, a scale-out resumes one (``--resume-delay``) instead of booting cold, the pool
refills, and with ReuseOnScaleIn an instance leaving the group returns to it. moto's
DescribeWarmPool lists those instances, so the scaler reads them. ``--compare-with`` puts the
default run's waits (its ``--summary-json``) beside this run's.

Exit status: 0 when every job finished and none was interrupted; 1 when not (or a step failed,
with the reason); 2 for bad options; 130 on Ctrl-C. Both servers stop on every exit path. The
agent token is random per run, stored only in moto's SSM and the emulator, and never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from tools.demo.endpoints import AWS_REGION, Endpoints, running_endpoints, warm_pool_instances
from tools.demo.fleet import EmulatedFleet
from tools.demo.replay import (
    Replay,
    ReplayResult,
    ScalerInvocationError,
    format_clock,
    scaler_environment,
)
from tools.demo.report import (
    LiveTable,
    comparison_lines,
    plot_timeline,
    summarize,
    summary_lines,
    terminal_width,
    write_json_summary,
)
from tools.demo.scaler_log import ship_scaler_log
from tools.demo.stacks import (
    Deployment,
    DeploymentError,
    FleetParameters,
    WarmPoolParameters,
    deploy,
)
from tools.demo.warm_pool import POOL_STATES, PoolSettings, WarmPoolEmulation
from tools.demo.workload import BUILT_IN, load_workload
from tools.simulate.traces import TraceJob
from tools.status.cli import screen
from tools.status.collect import collect, find_stack

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TICK_S = 5.0
# The simulator's medians from published measurements (tools/simulate/config.py cites them):
# a cold boot to registered agents 75 s, a warm pool resume 36 s. The demo's --boot-delay is
# compressed; its default --resume-delay keeps that ratio.
COLD_BOOT_MEDIAN_S = 75.0
RESUME_MEDIAN_S = 36.0
# A scale-in instance that returns to the pool stops again (the demo's compressed figure).
RETURN_TO_POOL_S = 15.0
# The nested templates' ParentStackName pattern.
STACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,40}")


EPILOG = """\
what it does:
  1. starts moto and the Buildkite agent API emulator on 127.0.0.1 (free ports)
  2. creates nested/network.yaml, nested/storage.yaml and nested/fleet.yaml in moto's
     CloudFormation, naming each resource moto cannot create and what it created instead
  3. replays the workload: the real agent_scaler code runs every virtual minute against moto and
     the emulator; instances boot, run jobs, idle out and terminate themselves; idle 30 s,
     an instance drops its scale-in protection (SetInstanceProtection), as its handler does
  4. prints a live table, a summary and the timeline PNG's path (in --output-dir, with the
     scaler's log and its environment as env.json)
  5. ends with python -m tools.status for the demo's fleet stack (the scaler's log shipped to
     its log group in moto, the monitoring stack's alarms)

--warm-pool: the fleet stack gets EnableWarmPool=true, OnDemandPercentage=100 and one
instance type. moto stores the pool's configuration but never launches instances into it;
the demo's fleet plays the pool (prepared Warmed:Stopped instances, resume on scale-out,
refill, return on scale-in with ReuseOnScaleIn) and says so. make demo runs the default run,
then the warm-pool run with --compare-with the default run's JSON.

exit status: 0 every job finished and none was interrupted; 1 otherwise or on a failure (the
reason is printed); 2 bad options; 130 Ctrl-C. Both servers stop on every exit path.
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown for each option; the epilog keeps its line breaks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description=(
            "Run the fleet's control loop on an emulated account: moto in server mode, the "
            "Buildkite agent API emulator, the project's nested templates and the real "
            "agent_scaler handler, over real HTTP on 127.0.0.1. Times are virtual seconds."
        ),
        formatter_class=_HelpFormatter,
        epilog=EPILOG,
    )
    parser.add_argument(
        "--workload",
        default="mixed",
        help=f"built-in workload ({', '.join(BUILT_IN)}) or a trace CSV (submit_s,duration_s)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=10.0,
        help="virtual seconds per wall-clock second; 0 runs as fast as possible",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=1200.0,
        help="most virtual seconds to replay (the replay ends sooner once every job is done "
        "and the group is back to 0)",
    )
    parser.add_argument(
        "--agents-per-instance",
        type=int,
        default=1,
        metavar="N",
        help="AgentsPerInstance: agents each instance runs",
    )
    parser.add_argument(
        "--max-size", type=int, default=6, metavar="N", help="MaxSize of the Auto Scaling group"
    )
    parser.add_argument(
        "--scale-in-idle-period",
        type=int,
        default=90,
        metavar="SECONDS",
        help="ScaleInIdlePeriod (compressed; the stack's default is 600)",
    )
    parser.add_argument(
        "--boot-delay",
        type=float,
        default=40.0,
        metavar="SECONDS",
        help="time from InService to the instance's agents connecting",
    )
    warm = parser.add_argument_group("warm pool (EnableWarmPool)")
    warm.add_argument(
        "--warm-pool",
        action="store_true",
        help="deploy with EnableWarmPool=true, OnDemandPercentage=100 and one instance type; "
        "the demo's fleet plays the pool moto lacks",
    )
    warm.add_argument(
        "--resume-delay",
        type=float,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="time from a warm instance leaving the pool to its agents connecting (default: "
        f"--boot-delay x {RESUME_MEDIAN_S:g}/{COLD_BOOT_MEDIAN_S:g}, the simulator's published "
        "medians of a resume and a cold boot)",
    )
    warm.add_argument(
        "--warm-pool-min-size", type=int, default=0, metavar="N", help="WarmPoolMinSize"
    )
    warm.add_argument(
        "--warm-pool-max-prepared-capacity",
        type=int,
        default=-1,
        metavar="N",
        help="WarmPoolMaxPreparedCapacity (-1: the scaler sizes the pool from recent demand)",
    )
    warm.add_argument(
        "--warm-pool-state", choices=POOL_STATES, default="Stopped", help="WarmPoolState"
    )
    warm.add_argument(
        "--warm-pool-reuse-on-scale-in",
        choices=("true", "false"),
        default="true",
        help="WarmPoolReuseOnScaleIn",
    )
    warm.add_argument(
        "--compare-with",
        type=Path,
        metavar="SUMMARY.json",
        help="another run's --summary-json: its job waits are shown beside this run's",
    )
    parser.add_argument("--queue", default="default", help="BuildkiteQueue")
    parser.add_argument(
        "--stack-name", default="buildkite-demo", help="ParentStackName of the nested stacks"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("build/demo"),
        help="where the timeline PNG, the scaler log and env.json are written",
    )
    parser.add_argument(
        "--summary-json", type=Path, help="also write a JSON record of the run to this path"
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the replay, keep moto and the emulator up and print how to reach them "
        "(aws --endpoint-url, tools.invoke_scaler, sam local invoke) until Ctrl-C",
    )
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.speed < 0:
        parser.error("--speed must be 0 or more")
    if args.duration <= 0:
        parser.error("--duration must be more than 0")
    if args.agents_per_instance < 1:
        parser.error("--agents-per-instance must be 1 or more")
    if args.max_size < 1:
        parser.error("--max-size must be 1 or more")
    if args.scale_in_idle_period < 0 or args.boot_delay < 0:
        parser.error("--scale-in-idle-period and --boot-delay must be 0 or more")
    if not STACK_NAME.fullmatch(args.stack_name):
        parser.error("--stack-name must start with a letter and hold only letters, digits and -")
    if not args.queue or "'" in args.queue:
        parser.error("--queue must be non-empty and hold no single quote")
    if getattr(args, "resume_delay", 0.0) < 0:
        parser.error("--resume-delay must be 0 or more")
    pool_options = {
        "--resume-delay": hasattr(args, "resume_delay"),
        "--warm-pool-min-size": args.warm_pool_min_size != 0,
        "--warm-pool-max-prepared-capacity": args.warm_pool_max_prepared_capacity != -1,
        "--warm-pool-state": args.warm_pool_state != "Stopped",
        "--warm-pool-reuse-on-scale-in": args.warm_pool_reuse_on_scale_in != "true",
    }
    given = [option for option, set_ in pool_options.items() if set_]
    if given and not args.warm_pool:
        parser.error(f"{', '.join(given)}: only with --warm-pool")
    if args.warm_pool_min_size < 0 or args.warm_pool_max_prepared_capacity < -1:
        parser.error(
            "--warm-pool-min-size must be 0 or more, --warm-pool-max-prepared-capacity -1 or more"
        )
    if args.compare_with is not None and not args.compare_with.is_file():
        parser.error(f"--compare-with {args.compare_with}: no such file")


def resume_delay(args: argparse.Namespace) -> float:
    """--resume-delay, or the compressed boot delay scaled by the published medians' ratio."""
    if hasattr(args, "resume_delay"):
        return float(args.resume_delay)
    return round(args.boot_delay * RESUME_MEDIAN_S / COLD_BOOT_MEDIAN_S, 1)


def warm_pool_parameters(args: argparse.Namespace) -> WarmPoolParameters | None:
    if not args.warm_pool:
        return None
    return WarmPoolParameters(
        min_size=args.warm_pool_min_size,
        max_prepared_capacity=args.warm_pool_max_prepared_capacity,
        pool_state=args.warm_pool_state,
        reuse_on_scale_in=args.warm_pool_reuse_on_scale_in == "true",
    )


# The scaler's own output is redirected to its log file during the replay: the demo's lines go
# to the stream that was stdout when it started.
_CONSOLE = {"stream": sys.stdout}


def _say(line: str = "") -> None:
    print(line, file=_CONSOLE["stream"], flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _CONSOLE["stream"] = sys.stdout
    _check(parser, args)
    try:
        jobs = load_workload(args.workload)
    except (OSError, ValueError) as exc:
        print(f"demo: cannot load workload {args.workload!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Ctrl-C (even when started in the background, where SIGINT may be ignored) and SIGTERM
    # unwind the same way, so the servers are stopped either way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _run(args, jobs)
    except KeyboardInterrupt:
        print("demo: interrupted; both servers are stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (DeploymentError, ScalerInvocationError) as exc:
        print(f"demo: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        print(f"demo: failed ({type(exc).__name__}): {exc}", file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace, jobs: list[TraceJob]) -> int:
    wall_start = time.monotonic()
    output_dir: Path = args.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    _say("Buildkite SAM fleet: local demo (no AWS account, no Docker)")
    # A fresh random token per run: only moto's SSM and the emulator ever hold it.
    token = secrets.token_hex(20)
    with running_endpoints(token) as endpoints:
        _say(f"  AWS (moto server mode)       {endpoints.aws_url}")
        _say(f"  Buildkite agent API emulator {endpoints.emulator.url}")
        deployment = _deploy(args, endpoints, token)
        scaler_environment = _scaler_environment(args, endpoints, deployment)
        (output_dir / "env.json").write_text(
            json.dumps({"AgentScalerFunction": scaler_environment}, indent=2) + "\n"
        )
        result, fleet = _replay(args, endpoints, deployment, jobs, scaler_environment)
        summary = summarize(
            endpoints.emulator.control.jobs(args.queue),
            list(fleet.lives.values()),
            result,
            submitted=len(jobs),
            pool=fleet.warm_pool,
            cold_boot_s=args.boot_delay,
        )
        plot_path = output_dir / "timeline.png"
        plot_timeline(
            result,
            args.agents_per_instance,
            plot_path,
            f"workload {args.workload!r}: AgentsPerInstance {args.agents_per_instance}, "
            f"MaxSize {args.max_size}, ScaleInIdlePeriod {args.scale_in_idle_period} s"
            + (", warm pool" if args.warm_pool else ""),
        )
        if args.summary_json is not None:
            write_json_summary(
                args.summary_json,
                summary=summary,
                deployment=deployment,
                result=result,
                endpoints={"aws": endpoints.aws_url, "buildkite": endpoints.emulator.url},
                plot=plot_path,
            )
        _say()
        wall_s = time.monotonic() - wall_start
        for line in summary_lines(summary, wall_s, plot_path, output_dir / "scaler.log"):
            _say(line)
        if args.compare_with is not None:
            _say()
            other = json.loads(args.compare_with.read_text(encoding="utf-8"))
            for line in comparison_lines(summary, other, args.compare_with):
                _say(line)
        if not result.settled:
            _say(
                f"  note        the replay stopped at --duration {args.duration:g} s before the "
                "group was back to 0"
            )
        _print_status(args, endpoints, output_dir / "scaler.log")
        if args.keep_running:
            _keep_running(endpoints, deployment, output_dir, args.queue)
    if not summary.succeeded:
        print(
            f"demo: {summary.jobs_submitted - summary.jobs_finished} job(s) unfinished and "
            f"{summary.jobs_interrupted} interrupted (try a longer --duration)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _deploy(args: argparse.Namespace, endpoints: Endpoints, token: str) -> Deployment:
    _say()
    _say("Creating the nested stacks in moto's CloudFormation")
    _say(
        "  (conditions resolved locally by tools.cfn_template: moto mis-evaluates nested "
        "conditions and AWS::NoValue in lists)"
    )
    parameters = FleetParameters(
        parent_stack_name=args.stack_name,
        queue=args.queue,
        agent_endpoint=endpoints.emulator.url,
        agents_per_instance=args.agents_per_instance,
        max_size=args.max_size,
        scale_in_idle_period=args.scale_in_idle_period,
        warm_pool=warm_pool_parameters(args),
    )
    return deploy(endpoints.client, parameters, token, lambda line: _say(f"  {line}"))


def _replay(
    args: argparse.Namespace,
    endpoints: Endpoints,
    deployment: Deployment,
    jobs: list[TraceJob],
    scaler_environment: dict[str, str],
) -> tuple[ReplayResult, EmulatedFleet]:
    _say()
    _say(
        f"Replaying workload {args.workload!r}: {len(jobs)} jobs, AgentsPerInstance "
        f"{args.agents_per_instance}, MaxSize {args.max_size}, ScaleInIdlePeriod "
        f"{args.scale_in_idle_period} s, boot {args.boot_delay:g} s"
        + (f", warm pool resume {resume_delay(args):g} s" if args.warm_pool else "")
        + ", speed "
        f"{'max' if args.speed == 0 else f'{args.speed:g}x'}"
    )
    events: list[str] = []

    def log(at: float, line: str) -> None:
        events.append(f"{format_clock(at)} {line}")

    pool = _warm_pool(args, endpoints, deployment, log) if args.warm_pool else None
    table = LiveTable(_say, width=terminal_width(_CONSOLE["stream"]), warm_pool=args.warm_pool)
    table.header()
    fleet = EmulatedFleet(
        autoscaling=endpoints.client("autoscaling"),
        control=endpoints.emulator.control,
        group_name=deployment.group_name,
        queue=args.queue,
        agents_per_instance=args.agents_per_instance,
        boot_delay_s=args.boot_delay,
        idle_period_s=args.scale_in_idle_period,
        log=log,
        warm_pool=pool,
    )
    output_dir: Path = args.output_dir
    listing = (
        warm_pool_instances(
            lambda group: pool.describe_instances() if group == deployment.group_name else []
        )
        if pool is not None
        else contextlib.nullcontext()
    )
    try:
        with (
            listing,
            (output_dir / "scaler.log").open("w", encoding="utf-8") as scaler_log,
        ):
            replay = Replay(
                jobs=jobs,
                fleet=fleet,
                control=endpoints.emulator.control,
                queue=args.queue,
                scaler_environment=scaler_environment,
                scaler_log=scaler_log,
                tick_s=TICK_S,
                speed=args.speed,
                on_sample=table.row,
            )
            return replay.run(args.duration), fleet
    finally:
        (output_dir / "instances.log").write_text("\n".join(events) + "\n", encoding="utf-8")


def _warm_pool(
    args: argparse.Namespace,
    endpoints: Endpoints,
    deployment: Deployment,
    log: Callable[[float, str], None],
) -> WarmPoolEmulation:
    """The pool the demo plays for the group, prepared as if it warmed while the stack was
    created (moto keeps only its configuration)."""
    configuration = endpoints.client("autoscaling").describe_warm_pool(
        AutoScalingGroupName=deployment.group_name
    )["WarmPoolConfiguration"]
    numbers = itertools.count(1)
    pool = WarmPoolEmulation(
        max_size=args.max_size,
        prepare_s=args.boot_delay,
        resume_s=resume_delay(args),
        return_s=RETURN_TO_POOL_S,
        new_id=lambda: f"i-warm{next(numbers):013x}",
        settings=PoolSettings.from_describe(configuration),
    )
    for line in pool.prewarm(desired_capacity=0):
        log(0.0, f"warm pool: {line}")
    prepared = pool.settings.max_group_prepared_capacity
    _say(
        f"  warm pool (played by the demo; moto keeps only its configuration): "
        f"{len(pool.instances)} instance(s) prepared in {pool.settings.warmed_state}, "
        f"MinSize {pool.settings.min_size}, MaxGroupPreparedCapacity "
        f"{'unset (MaxSize)' if prepared is None else prepared}, "
        f"ReuseOnScaleIn {str(pool.settings.reuse_on_scale_in).lower()}; resume "
        f"{pool.resume_s:g} s vs cold boot {args.boot_delay:g} s"
    )
    return pool


def _print_status(args: argparse.Namespace, endpoints: Endpoints, scaler_log: Path) -> None:
    """End with what an operator would run first: tools.status for the demo's fleet stack."""
    stack_name = f"{args.stack_name}-fleet"
    stack = find_stack(endpoints.client("cloudformation"), stack_name)
    with scaler_log.open(encoding="utf-8") as lines:
        ship_scaler_log(endpoints.client("logs"), stack.scaler_log_group, lines)
    _say()
    _say(f"python -m tools.status --stack {stack_name} --region {AWS_REGION} (against moto):")
    snapshot = collect(endpoints.client, stack_name, AWS_REGION, now=time.time())
    for line in screen(snapshot):
        _say(f"  {line}")


def _scaler_environment(
    args: argparse.Namespace, endpoints: Endpoints, deployment: Deployment
) -> dict[str, str]:
    """The scaler function's environment, as the root stack would set it, pointed at moto."""
    return scaler_environment(
        aws_environment=endpoints.aws_environment(),
        agent_endpoint=endpoints.emulator.url,
        queue=args.queue,
        token_parameter=deployment.token_parameter,
        group_name=deployment.group_name,
        agents_per_instance=args.agents_per_instance,
        min_size=0,
        max_size=args.max_size,
        scale_in_idle_period=args.scale_in_idle_period,
        warm_pool_max_prepared_capacity=(
            args.warm_pool_max_prepared_capacity if args.warm_pool else None
        ),
    )


def _keep_running(
    endpoints: Endpoints, deployment: Deployment, output_dir: Path, queue: str
) -> None:
    env_file = output_dir / "env.json"
    aws = endpoints.aws_url
    _say()
    _say("The endpoints stay up until Ctrl-C:")
    _say(f"  AWS (moto)          {aws}  (region us-east-1, any credentials)")
    _say(f"  Buildkite agent API {endpoints.emulator.url}")
    _say(f"  emulator control    {endpoints.emulator.control_url}")
    _say(f"  Auto Scaling group  {deployment.group_name}")
    _say(f"  token parameter     {deployment.token_parameter} (SecureString; value not shown)")
    _say(f"  scaler environment  {env_file}")
    _say("Try:")
    _say(
        f"  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo aws --endpoint-url {aws} "
        "--region us-east-1 autoscaling describe-auto-scaling-groups"
    )
    _say(
        f'  curl -X POST -d \'{{"count": 3, "duration_s": 120}}\' '
        f"{endpoints.emulator.control_url}/queues/{quote(queue, safe='')}/jobs"
    )
    _say(
        "  .venv/bin/python -m tools.invoke_scaler --event events/scheduled.json "
        f"--env-vars {env_file} --aws-endpoint {aws} --once"
    )
    _say(
        "  sam local invoke AgentScalerFunction --event events/scheduled.json "
        f"--env-vars {env_file} --docker-network host   (needs Docker)"
    )
    while True:
        time.sleep(3600)
