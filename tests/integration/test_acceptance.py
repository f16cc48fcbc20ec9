"""``python -m tools.acceptance`` end to end against emulators, as on a real account.

moto in server mode stands in for AWS, the project's Buildkite emulator for Buildkite (its REST
API for pipelines, builds and agents), ``tools.acceptance.emulated`` for ``sam deploy`` and for
instances booting; the real scaler runs in lock-step with the virtual clock. Each test checks
what the command printed and reported, and, looking at moto and the emulator directly, that
nothing it created is left. Nothing here reaches a real account.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.acceptance.buildkite import BuildkiteError, BuildkiteRest
from tools.acceptance.cli import main
from tools.acceptance.emulated import EmulatedBackends, emulated_backends
from tools.acceptance.run import Backends

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPOSITORY = Path(__file__).resolve().parents[2]
STACK = "acc-test"
# A compressed run: short jobs, a long job that outlasts the burst and the update, a short
# idle period so the fleet returns to zero soon.
QUICK = [
    "--burst-jobs",
    "4",
    "--short-job-seconds",
    "30",
    "--long-job-seconds",
    "180",
    "--scale-in-idle-period",
    "60",
    "--max-size",
    "3",
    "--poll-interval",
    "20",
]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    report_md: str
    report: dict[str, Any]


@pytest.fixture
def emulated() -> Iterator[EmulatedBackends]:
    with emulated_backends() as backends:
        yield backends


def run_command(
    emulated: EmulatedBackends,
    capsys: pytest.CaptureFixture[str],
    report_dir: Path,
    *extra: str,
    buildkite: type[BuildkiteRest] = BuildkiteRest,
    clock: Any = None,
) -> Outcome:
    def connect(args: argparse.Namespace, api_token: str) -> Backends:
        assert api_token == emulated.api_token
        return Backends(
            buildkite=buildkite(emulated.api_url, args.buildkite_org, api_token),
            aws=emulated.account(),
            deployer=emulated.deployer,
            clock=clock or emulated.world,
        )

    code = main(
        [
            "--region",
            "us-east-1",
            "--buildkite-org",
            "acme",
            "--stack-name",
            STACK,
            "--report",
            str(report_dir),
            *QUICK,
            *extra,
        ],
        environ={
            "BUILDKITE_API_TOKEN": emulated.api_token,
            "BUILDKITE_AGENT_TOKEN": emulated.agent_token,
        },
        backends=connect,
    )
    captured = capsys.readouterr()
    return Outcome(
        code,
        captured.out,
        captured.err,
        (report_dir / "report.md").read_text(),
        json.loads((report_dir / "report.json").read_text()),
    )


def created_and_left(emulated: EmulatedBackends) -> list[str]:
    """Everything of the run that moto or the emulator still holds, asked directly."""
    client = emulated.aws_client
    left = [
        f"stack {summary['StackName']}"
        for summary in client("cloudformation").list_stacks()["StackSummaries"]
        if summary["StackStatus"] != "DELETE_COMPLETE"
    ]
    left += [
        f"parameter {parameter['Name']}"
        for parameter in client("ssm").describe_parameters()["Parameters"]
    ]
    left += [
        f"log group {group['logGroupName']}"
        for group in client("logs").describe_log_groups()["logGroups"]
    ]
    left += [
        f"instance {instance['InstanceId']}"
        for reservation in client("ec2").describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )["Reservations"]
        for instance in reservation["Instances"]
    ]
    left += [
        f"alarm {alarm['AlarmName']}"
        for alarm in client("cloudwatch").describe_alarms()["MetricAlarms"]
    ]
    left += [f"pipeline {slug}" for slug in emulated.endpoints.emulator.control.rest_pipelines()]
    return left


def assert_no_token(emulated: EmulatedBackends, outcome: Outcome) -> None:
    for token in (emulated.api_token, emulated.agent_token):
        for text in (outcome.stdout, outcome.stderr, outcome.report_md, json.dumps(outcome.report)):
            assert token not in text


def test_a_whole_run_passes_measures_and_leaves_nothing(
    emulated: EmulatedBackends, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    outcome = run_command(emulated, capsys, tmp_path)

    assert outcome.code == 0, outcome.stdout
    assert outcome.report["result"] == "PASS"
    statuses = {line["check"]: line["status"] for line in outcome.report["verdicts"]}
    assert statuses == {
        "run": "PASS",
        "jobs ran on this stack's instances": "PASS",
        "every job passed": "PASS",
        "the stack update left the long job alone": "PASS",
        "the fleet returned to MinSize": "PASS",
        "teardown": "PASS",
        "job wait vs the simulator": "NOTE",
        "boot vs the simulator's model": "NOTE",
    }
    # Step 4 changed the launch template while the long job ran; it still exited 0.
    update = outcome.report["update"]
    assert update["long_job_state"] == "running"
    assert (update["version_before"], update["version_after"]) == ("1", "2")
    assert update["user_data_changed"] is True
    long_job = next(job for job in outcome.report["jobs"] if job["step_key"] == "long")
    assert long_job["exit_status"] == 0
    assert long_job["run_s"] == pytest.approx(180)
    assert len(emulated.deployer.updates) == 1
    assert emulated.deployer.updates[0].agent_tags == "acceptance=updated"
    # Measured: 5 jobs with waits; instances with boots (the fake fleet's 40 s, seen by polls
    # 20 s apart: within one poll of it) and gone; the scale-outs from the scaler's log group.
    measured = outcome.report["measured"]
    assert measured["waits"]["count"] == 5
    assert measured["waits"]["max"] >= measured["waits"]["p95"] >= measured["waits"]["mean"] > 0
    assert 40 - 20 <= measured["boot_p50_s"] <= 40 + 20
    assert measured["instances_launched"] == 3
    assert measured["instance_minutes"] > 0
    assert measured["scale_outs"] >= 1
    assert all(instance["gone_at"] is not None for instance in outcome.report["instances"])
    assert any(decision["desired_capacity"] == 3 for decision in outcome.report["decisions"])
    # The simulator ran on the same schedule with the same settings.
    assert len(outcome.report["simulator_trace"]) == 5
    assert outcome.report["simulator_config"] == {
        "AgentsPerInstance": 1,
        "MinSize": 0,
        "MaxSize": 3,
        "ScaleInIdlePeriod": 60,
    }
    assert outcome.report["simulated"]["instances_launched"] >= 1
    assert "| Job wait, p95 (s) |" in outcome.report_md
    # Teardown: everything the run created is gone, as moto and the emulator say.
    assert outcome.report["teardown"]["leftovers"] == []
    assert created_and_left(emulated) == []
    assert_no_token(emulated, outcome)
    assert "result: PASS" in outcome.stdout


class _FailsWhileWatching(BuildkiteRest):
    """The REST API breaks in step 3: the third read of the build fails."""

    reads = 0

    def build(self, slug: str, number: int) -> dict[str, Any]:
        type(self).reads += 1
        if type(self).reads == 3:
            raise BuildkiteError("Buildkite REST GET build answered HTTP 502: Bad Gateway")
        return super().build(slug, number)


def test_a_failure_in_step_3_still_tears_everything_down(
    emulated: EmulatedBackends, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    outcome = run_command(emulated, capsys, tmp_path, buildkite=_FailsWhileWatching)

    assert outcome.code == 1
    assert outcome.report["result"] == "FAIL"
    first = outcome.report["verdicts"][0]
    assert first["status"] == "FAIL"
    assert first["detail"].startswith("step 3 (run the build): Buildkite REST GET build")
    teardown = outcome.report["teardown"]
    assert teardown["done"] == [
        "canceled build #1",
        f"deleted pipeline {STACK}-acceptance",
        f"deleted stack {STACK}",
        f"deleted SecureString /{STACK}/buildkite/agent-token",
    ]
    assert teardown["errors"] == []
    assert teardown["leftovers"] == []
    assert "PASS teardown" in outcome.report_md
    assert created_and_left(emulated) == []
    assert_no_token(emulated, outcome)


class _InterruptedClock:
    """Ctrl-C arrives during step 3's third wait."""

    def __init__(self, world: Any) -> None:
        self._world = world
        self.sleeps = 0

    def now(self) -> float:
        return self._world.now()

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps == 3:
            raise KeyboardInterrupt
        self._world.sleep(seconds)


def test_ctrl_c_tears_down_and_exits_130(
    emulated: EmulatedBackends, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    outcome = run_command(emulated, capsys, tmp_path, clock=_InterruptedClock(emulated.world))

    assert outcome.code == 130
    assert outcome.report["verdicts"][0]["detail"] == "interrupted (Ctrl-C) in step 3"
    assert outcome.report["teardown"]["leftovers"] == []
    assert created_and_left(emulated) == []


def test_keep_leaves_everything_and_says_what(
    emulated: EmulatedBackends, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    outcome = run_command(
        emulated, capsys, tmp_path, "--keep", clock=_InterruptedClock(emulated.world)
    )

    teardown = outcome.report["teardown"]
    assert teardown["skipped"] is True
    assert teardown["done"] == []
    assert f"pipeline {STACK}-acceptance" in teardown["leftovers"]
    assert f"SecureString /{STACK}/buildkite/agent-token" in teardown["leftovers"]
    left = created_and_left(emulated)
    assert f"pipeline {STACK}-acceptance" in left
    assert f"parameter /{STACK}/buildkite/agent-token" in left
    assert f"stack {STACK}-fleet" in left
    assert "NOTE teardown: skipped (--keep)" in outcome.report_md


def test_help_documents_the_command_and_takes_no_token_flag() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tools.acceptance", "--help"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    )
    text = completed.stdout
    for expected in (
        "--region",
        "--buildkite-org",
        "--stack-name",
        "--image-id",
        "--keep",
        "--report",
        "BUILDKITE_API_TOKEN",
        "BUILDKITE_AGENT_TOKEN",
        "exit status",
    ):
        assert expected in text
    assert "--token" not in text
    assert "--api-token" not in text


def test_tokens_come_from_the_environment_only(capsys: pytest.CaptureFixture[str]) -> None:
    required = ["--region", "us-east-1", "--buildkite-org", "acme"]
    with pytest.raises(SystemExit) as raised:
        main([*required, "--token", "secret-value-123"], environ={})
    assert raised.value.code == 2
    assert "secret-value-123" not in capsys.readouterr().out

    def never(args: argparse.Namespace, api_token: str) -> Backends:
        raise AssertionError("no backend may be reached without both tokens")

    code = main(required, environ={"BUILDKITE_API_TOKEN": "api-secret-456"}, backends=never)
    captured = capsys.readouterr()
    assert code == 2
    assert "BUILDKITE_AGENT_TOKEN" in captured.err
    assert "api-secret-456" not in captured.out + captured.err
