"""``python -m tools.acceptance``: the stack on a real account, real jobs through it, a report.

    BUILDKITE_API_TOKEN=... BUILDKITE_AGENT_TOKEN=... \\
    python -m tools.acceptance --region R --buildkite-org ORG [--stack-name N] [--image-id AMI]
        [--keep] [--report DIR] ...

Both tokens come from the environment only (never a flag, never printed, never on a command
line): the REST API access token to create the pipeline and builds and to read jobs and
agents, and the agent token the stack's agents register with. AWS credentials come from
boto3's usual chain.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from tools.acceptance.aws import AwsAccount
from tools.acceptance.buildkite import DEFAULT_API_URL, BuildkiteRest
from tools.acceptance.deploy import SamDeployer
from tools.acceptance.report import write_report
from tools.acceptance.run import AcceptanceRun, Backends, RunOptions
from tools.acceptance.workload import Workload

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# Names of environment variables, not secrets.
API_TOKEN_VARIABLE = "BUILDKITE_API_TOKEN"  # noqa: S105
AGENT_TOKEN_VARIABLE = "BUILDKITE_AGENT_TOKEN"  # noqa: S105
# The nested templates' ParentStackName pattern (the root passes its stack name on).
STACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,40}")
DEFAULT_REPOSITORY = "https://github.com/buildkite/bash-example.git"

EPILOG = f"""\
environment:
  {API_TOKEN_VARIABLE}    Buildkite REST API access token with the scopes write_pipelines,
                         read_pipelines, write_builds, read_builds, read_agents
  {AGENT_TOKEN_VARIABLE}  the agent token the stack's agents register with (stored in a
                         SecureString this run creates and deletes)
  AWS credentials and profile: boto3's usual chain (AWS_PROFILE, ~/.aws, SSO, ...)

steps:
  1. create a throwaway pipeline whose steps target the stack's queue: a burst of short
     jobs and one long job (sleep commands)
  2. put the agent token in a SecureString and deploy the stack (sam build + sam deploy, or
     --template for a packaged template)
  3. trigger a build; record each job's scheduled, started and finished times and each
     instance's launch, InService, agent connected and gone times
  4. while the long job runs, update the stack so the launch template's user data changes
     (BuildkiteAgentTags) and check the long job still finishes with exit status 0
  5. wait for the group to return to MinSize 0; delete the stack, the SecureString and the
     pipeline (also after a failure or Ctrl-C, unless --keep) and check nothing is left
  then write report.md and report.json (measured figures, the simulator's on the same job
  schedule, verdict lines)

exit status: 0 every verdict passed; 1 a verdict failed or a step failed; 2 bad options or a
missing token; 130 interrupted (after the teardown).
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown for each option; the epilog keeps its line breaks."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.acceptance",
        description=(
            "Acceptance run on your own AWS account and Buildkite organization: deploy the "
            "stack, run real jobs through it, update it under a running job, measure, compare "
            "with the simulator, and clean up."
        ),
        formatter_class=_HelpFormatter,
        epilog=EPILOG,
    )
    parser.add_argument("--region", required=True, help="AWS region to deploy in")
    parser.add_argument(
        "--buildkite-org", required=True, metavar="ORG", help="Buildkite organization slug"
    )
    parser.add_argument(
        "--stack-name",
        help="stack name (default: bk-acceptance-<UTC time>-<random>); also the queue's name",
    )
    parser.add_argument(
        "--image-id", metavar="AMI", help="agent AMI (ImageId), e.g. one built from packer/"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="skip the teardown: leave the stack, SecureString and pipeline in place",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="where report.md and report.json go (default: build/acceptance/<stack name>)",
    )
    parser.add_argument(
        "--template",
        type=Path,
        help="deploy this packaged template instead of running sam build",
    )
    parser.add_argument("--burst-jobs", type=int, default=6, help="short jobs in the burst")
    parser.add_argument(
        "--short-job-seconds", type=int, default=60, help="run time of each short job"
    )
    parser.add_argument(
        "--long-job-seconds",
        type=int,
        default=1200,
        help="run time of the long job (it must outlast the burst and the stack update)",
    )
    parser.add_argument("--max-size", type=int, default=4, help="MaxSize of the group")
    parser.add_argument("--agents-per-instance", type=int, default=1, help="AgentsPerInstance")
    parser.add_argument(
        "--scale-in-idle-period",
        type=int,
        default=300,
        help="ScaleInIdlePeriod (seconds an idle instance waits before it leaves)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=15.0, help="seconds between observations"
    )
    parser.add_argument(
        "--repository",
        default=DEFAULT_REPOSITORY,
        help="repository of the throwaway pipeline (the agents check it out before each job)",
    )
    parser.add_argument(
        "--cluster-id", help="Buildkite cluster of the pipeline (organizations with clusters)"
    )
    parser.add_argument(
        "--buildkite-api-url", default=DEFAULT_API_URL, help="Buildkite REST API base URL"
    )
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.stack_name is not None and not STACK_NAME.fullmatch(args.stack_name):
        parser.error(
            "--stack-name must start with a letter and hold at most 41 letters, digits and -"
        )
    for flag, value, minimum in (
        ("--burst-jobs", args.burst_jobs, 1),
        ("--short-job-seconds", args.short_job_seconds, 1),
        ("--long-job-seconds", args.long_job_seconds, 1),
        ("--max-size", args.max_size, 1),
        ("--agents-per-instance", args.agents_per_instance, 1),
        ("--scale-in-idle-period", args.scale_in_idle_period, 0),
    ):
        if value < minimum:
            parser.error(f"{flag} must be {minimum} or more")
    if args.poll_interval <= 0:
        parser.error("--poll-interval must be more than 0")
    if args.long_job_seconds <= args.short_job_seconds:
        parser.error("--long-job-seconds must be more than --short-job-seconds")


Connect = Callable[[argparse.Namespace, str], Backends]


def connect(args: argparse.Namespace, api_token: str) -> Backends:
    """The real backends: the Buildkite REST API, the AWS account, sam, the wall clock."""
    account = AwsAccount.from_region(args.region)
    return Backends(
        buildkite=BuildkiteRest(args.buildkite_api_url, args.buildkite_org, api_token),
        aws=account,
        deployer=SamDeployer(account, args.region, template=args.template),
        clock=_WallClock(),
    )


class _WallClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def _say(line: str) -> None:
    print(line, flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    backends: Connect = connect,
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    environment = os.environ if environ is None else environ
    api_token = environment.get(API_TOKEN_VARIABLE, "").strip()
    agent_token = environment.get(AGENT_TOKEN_VARIABLE, "").strip()
    missing = [
        name
        for name, value in ((API_TOKEN_VARIABLE, api_token), (AGENT_TOKEN_VARIABLE, agent_token))
        if not value
    ]
    if missing:
        print(f"acceptance: set {' and '.join(missing)} in the environment", file=sys.stderr)
        return EXIT_USAGE
    stack_name = args.stack_name or _generated_stack_name()
    options = RunOptions(
        region=args.region,
        organization=args.buildkite_org,
        stack_name=stack_name,
        queue=stack_name,
        workload=Workload(args.burst_jobs, args.short_job_seconds, args.long_job_seconds),
        agents_per_instance=args.agents_per_instance,
        max_size=args.max_size,
        scale_in_idle_period=args.scale_in_idle_period,
        poll_interval_s=args.poll_interval,
        repository=args.repository,
        keep=args.keep,
        image_id=args.image_id,
        cluster_id=args.cluster_id,
    )
    report_dir: Path = args.report or Path("build") / "acceptance" / stack_name
    # Ctrl-C, and SIGTERM the same way: the run stops and tears down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    _say(f"acceptance run {stack_name} in {args.region}, organization {args.buildkite_org}")
    run = AcceptanceRun(options, backends(args, api_token), agent_token, _say)
    record = run.run()
    markdown, document, outcome = write_report(record, report_dir)
    _say(f"result: {outcome}")
    _say(f"report: {markdown}")
    _say(f"        {document}")
    if record.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_PASS if outcome == "PASS" else EXIT_FAIL


def _generated_stack_name() -> str:
    stamp = datetime.now(tz=UTC).strftime("%Y%m%d%H%M")
    return f"bk-acceptance-{stamp}-{secrets.token_hex(2)}"
