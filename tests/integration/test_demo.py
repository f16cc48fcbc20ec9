"""The local demo (``python -m tools.demo``), run as a user runs it: a subprocess, short workload.

The demo starts moto and the Buildkite emulator itself; these tests check what it reports
(stdout, the JSON record of the run, the scaler's log, the PNG) and that nothing it started
is left afterwards: both ports refuse connections and its process group is empty.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tools.demo.endpoints import running_endpoints, warm_pool_instances

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPOSITORY = Path(__file__).resolve().parents[2]
IDLE_PERIOD_S = 60
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The demo's agent token is secrets.token_hex(20): 40 lowercase hex characters.
TOKEN_SHAPE = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")
ENDPOINT_LINES = {
    "aws": re.compile(r"AWS \(moto server mode\)\s+(http://\S+)"),
    "buildkite": re.compile(r"Buildkite agent API emulator\s+(http://\S+)"),
}


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    stdout: str
    stderr: str
    pgid: int
    output_dir: Path
    record: dict[str, Any]

    def endpoint(self, name: str) -> str:
        match = ENDPOINT_LINES[name].search(self.stdout)
        assert match, f"the demo did not print its {name} endpoint:\n{self.stdout}"
        return match.group(1)


def demo_command(output_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tools.demo",
        "--workload",
        "short",
        "--output-dir",
        str(output_dir),
        "--summary-json",
        str(output_dir / "summary.json"),
        *extra,
    ]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    output_dir = tmp_path_factory.mktemp("demo")
    process = subprocess.Popen(
        demo_command(output_dir, "--speed", "0", "--scale-in-idle-period", str(IDLE_PERIOD_S)),
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    record_path = output_dir / "summary.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    return DemoRun(process.returncode, stdout, stderr, process.pid, output_dir, record)


def port_is_closed(url: str) -> bool:
    address = urlsplit(url)
    try:
        with socket.create_connection((address.hostname, address.port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def process_group_is_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def stack(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in record["stacks"] if item["name"] == name)


def test_the_demo_succeeds_and_prints_the_summary_and_the_plot_path(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.stderr
    assert "Summary (" in demo_run.stdout
    assert "4 submitted, 4 finished, 0 interrupted" in demo_run.stdout
    assert f"timeline    {demo_run.output_dir / 'timeline.png'}" in demo_run.stdout


def test_the_fleet_comes_from_the_projects_nested_templates(demo_run: DemoRun) -> None:
    record = demo_run.record
    expected = {
        "network": ("nested/network.yaml", {"Vpc", "Subnet0", "Subnet1", "AgentSecurityGroup"}),
        "storage": ("nested/storage.yaml", {"ManagedSecretsBucket", "ManagedSecretsLoggingBucket"}),
        "fleet": (
            "nested/fleet.yaml",
            {"AgentAutoScaleGroup", "AgentLaunchTemplate", "InstanceRole", "InstanceProfile"},
        ),
    }
    for name, (template, logical_ids) in expected.items():
        created = stack(record, name)
        assert created["template"] == template
        listed = {r["logical_id"]: r for r in created["resources"]}
        assert logical_ids <= set(listed), f"{name}: {sorted(listed)}"
        assert all(r["status"] == "CREATE_COMPLETE" for r in listed.values())

    fleet = {r["logical_id"]: r for r in stack(record, "fleet")["resources"]}
    group = fleet["AgentAutoScaleGroup"]
    assert group["resource_type"] == "AWS::AutoScaling::AutoScalingGroup"
    assert record["group_name"] == group["physical_id"]
    assert (
        record["token_parameter"] == stack(record, "storage")["outputs"]["AgentTokenParameterPath"]
    )
    # The scaler evaluated the group the template created.
    scaler_log = (demo_run.output_dir / "scaler.log").read_text()
    evaluations = [json.loads(line) for line in scaler_log.splitlines() if '"decision"' in line]
    assert evaluations
    assert {e["observation"]["group"]["name"] for e in evaluations} == {group["physical_id"]}


def test_the_demo_names_what_moto_could_not_create(demo_run: DemoRun) -> None:
    gaps = {(gap["stack"], gap["logical_id"]): gap for gap in demo_run.record["gaps"]}
    hook = "AgentAutoScaleGroup.LifecycleHookSpecificationList[instance_terminating]"
    assert gaps[("fleet", hook)]["resource_type"] == "AWS::AutoScaling::LifecycleHook"
    token = gaps[("storage", "AgentTokenParameter")]
    assert token["resource_type"] == "AWS::CloudFormation::CustomResource"
    assert ("fleet", "AzRebalancingSuspender") in gaps
    for gap in gaps.values():
        assert (
            f"not created by moto: {gap['logical_id']} ({gap['resource_type']}); "
            f"instead {gap['equivalent']}"
        ) in demo_run.stdout


def test_every_job_finished_and_none_was_interrupted(demo_run: DemoRun) -> None:
    summary = demo_run.record["summary"]
    assert summary["jobs_submitted"] == 4
    assert summary["jobs_finished"] == 4
    assert summary["jobs_interrupted"] == 0
    assert demo_run.record["succeeded"] is True


def test_the_scaler_scaled_out_from_zero_and_the_fleet_went_back_down_after_idle(
    demo_run: DemoRun,
) -> None:
    record = demo_run.record
    scale_outs = [d for d in record["decisions"] if d["desired_capacity"] is not None]
    assert scale_outs, "the scaler never scaled out"
    assert scale_outs[0]["desired_capacity_before"] == 0
    assert scale_outs[0]["desired_capacity"] > 0
    samples = record["samples"]
    assert samples[0]["desired_capacity"] == 0
    assert max(s["desired_capacity"] for s in samples) > 0
    assert samples[-1]["desired_capacity"] == 0
    assert samples[-1]["instances"] == 0
    assert record["summary"]["settled"] is True
    # Back down only once the agents had idled for ScaleInIdlePeriod after the last job.
    last_busy_at = max(s["at"] for s in samples if s["busy_agents"] > 0)
    back_to_zero_at = min(
        s["at"] for s in samples if s["at"] > last_busy_at and s["desired_capacity"] == 0
    )
    assert back_to_zero_at > last_busy_at + IDLE_PERIOD_S


def test_the_timeline_is_a_valid_png(demo_run: DemoRun) -> None:
    path = demo_run.output_dir / "timeline.png"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100
    assert height > 100


def test_both_servers_are_gone_after_the_demo(demo_run: DemoRun) -> None:
    assert port_is_closed(demo_run.endpoint("aws"))
    assert port_is_closed(demo_run.endpoint("buildkite"))
    assert process_group_is_empty(demo_run.pgid)


def test_the_token_is_never_printed_or_written(demo_run: DemoRun) -> None:
    written = [
        demo_run.stdout,
        demo_run.stderr,
        *(path.read_text() for path in demo_run.output_dir.iterdir() if path.suffix != ".png"),
    ]
    for text in written:
        assert not TOKEN_SHAPE.search(text)


def test_ctrl_c_stops_both_servers(tmp_path: Path) -> None:
    process = subprocess.Popen(
        demo_command(tmp_path, "--speed", "2"),
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("00:05" in line for line in seen):
            if selector.select(timeout=1):
                line = process.stdout.readline()
                if not line:
                    break
                seen.append(line)
        assert any("00:05" in line for line in seen), "".join(seen)
        process.send_signal(signal.SIGINT)
        rest, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stdout = "".join(seen) + rest
    assert process.returncode == 130
    assert "interrupted" in stderr
    for pattern in ENDPOINT_LINES.values():
        match = pattern.search(stdout)
        assert match, stdout
        assert port_is_closed(match.group(1))
    assert process_group_is_empty(process.pid)


def test_help_documents_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--help"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for option in (
        "--workload",
        "--speed",
        "--duration",
        "--agents-per-instance",
        "--max-size",
        "--keep-running",
        "--warm-pool",
        "--resume-delay",
        "--compare-with",
    ):
        assert option in result.stdout
    assert "AgentsPerInstance" in result.stdout
    assert "MaxSize" in result.stdout
    assert "EnableWarmPool" in result.stdout


class _Interrupted(Exception):
    pass


def _use_then_interrupt(urls: list[str]) -> None:
    with running_endpoints("demo-test-token") as endpoints:
        urls.extend([endpoints.aws_url, endpoints.emulator.url])
        groups = endpoints.client("autoscaling").describe_auto_scaling_groups()
        assert groups["AutoScalingGroups"] == []
        assert endpoints.emulator.control.now() == 0.0
        assert not any(port_is_closed(url) for url in urls)
        raise _Interrupted


def test_the_endpoints_close_both_ports_when_the_demo_leaves_them_on_an_error() -> None:
    # In process: the ports close when the block is left, not only when the process exits.
    urls: list[str] = []
    with pytest.raises(_Interrupted):
        _use_then_interrupt(urls)
    assert len(urls) == 2
    assert all(port_is_closed(url) for url in urls)


def test_the_demo_ends_with_the_status_of_its_fleet(demo_run: DemoRun) -> None:
    before, marker, status = demo_run.stdout.partition(
        "python -m tools.status --stack buildkite-demo-fleet --region us-east-1 (against moto):"
    )
    assert marker, f"no status screen:\n{demo_run.stdout}"
    assert "Summary (" in before
    # The monitoring stack's alarms exist (moto leaves them to the demo) and none fires.
    assert "Alarms     none in ALARM (of 5)" in status
    assert "Queue      default (organization " in status
    assert "jobs     scheduled 0  running 0  waiting 0" in status
    assert f"Group      {demo_run.record['group_name']}" in status
    assert "capacity desired 0  min 0  max 6" in status
    assert "MaxSize 6" in status
    # The scaler's decisions, read back from its log group.
    assert "last decisions (/aws/lambda/buildkite-demo-agent-scaler, past hour)" in status
    assert "Scaling evaluation for queue 'default'" in status
    assert "Could not read" not in status
    gaps = {(gap["stack"], gap["logical_id"]): gap for gap in demo_run.record["gaps"]}
    assert gaps[("monitoring", "ScalerStalledAlarm")]["equivalent"].startswith(
        "PutMetricAlarm buildkite-demo-scaler-stalled"
    )


# --- the warm pool run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warm_pool_run(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``--warm-pool`` on the same workload, compared with the default run above, as
    ``make demo`` runs it: with WarmPoolMinSize 3, so the first burst finds prepared instances
    (a scaler-sized pool starts at WarmPoolMinSize and grows from demand)."""
    output_dir = tmp_path_factory.mktemp("demo-warm-pool")
    process = subprocess.run(
        demo_command(
            output_dir,
            "--speed",
            "0",
            "--scale-in-idle-period",
            str(IDLE_PERIOD_S),
            "--warm-pool",
            "--warm-pool-min-size",
            "3",
            "--compare-with",
            str(demo_run.output_dir / "summary.json"),
        ),
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    record_path = output_dir / "summary.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    return DemoRun(process.returncode, process.stdout, process.stderr, 0, output_dir, record)


def test_the_warm_pool_run_resumes_prepared_instances_instead_of_booting_cold(
    demo_run: DemoRun, warm_pool_run: DemoRun
) -> None:
    assert warm_pool_run.returncode == 0, warm_pool_run.stderr
    record = warm_pool_run.record
    assert record["succeeded"] is True
    pool = record["summary"]["warm_pool"]
    assert pool["resumed_from_pool"] >= 1
    assert (
        pool["resumed_from_pool"] + pool["taken_while_warming"] + pool["cold_starts"]
        == record["summary"]["instances_launched"]
    )
    assert pool["resume_s"] < pool["cold_boot_s"]
    # Prepared ahead: the pool holds instances before the first job, none of them in the group.
    first = record["samples"][0]
    assert first["warm_pool_instances"] > 0
    assert first["warm_pool_prepared"] == first["warm_pool_instances"]
    assert first["desired_capacity"] == 0
    # The pool is named as played by the demo, not by moto.
    assert "played by the demo (moto keeps only the configuration)" in warm_pool_run.stdout
    # The template's own pool and launching hook (EnableWarmPool=true), filled in through the API.
    gaps = {(gap["stack"], gap["logical_id"]): gap for gap in record["gaps"]}
    pool_gap = gaps[("fleet", "AgentWarmPool")]
    assert pool_gap["resource_type"] == "AWS::AutoScaling::WarmPool"
    assert pool_gap["equivalent"].startswith(f"PutWarmPool on {record['group_name']} with the ")
    hook = "AgentAutoScaleGroup.LifecycleHookSpecificationList[instance_launching]"
    assert "autoscaling:EC2_INSTANCE_LAUNCHING" in gaps[("fleet", hook)]["equivalent"]
    # The default run has neither.
    assert not any(g["logical_id"] == "AgentWarmPool" for g in demo_run.record["gaps"])


def test_the_warm_pool_run_returns_instances_to_the_pool_and_refills_it(
    warm_pool_run: DemoRun,
) -> None:
    pool = warm_pool_run.record["summary"]["warm_pool"]
    samples = warm_pool_run.record["samples"]
    summary = warm_pool_run.record["summary"]
    # ReuseOnScaleIn (the stack's default): instances that idled out went back while the pool
    # had room; the scaler sized it to the demand peak, so once the fleet is idle the pool
    # holds that many prepared instances (WarmPoolMinSize 3 is below the peak).
    assert pool["returned_to_pool"] >= 1
    assert samples[-1]["desired_capacity"] == 0
    assert samples[-1]["warm_pool_instances"] == pool["pool_instances_at_end"]
    assert pool["pool_instances_at_end"] == summary["peak_desired_capacity"] > 3
    assert pool["pool_instances_min"] < pool["pool_instances_max"]


def test_the_warm_pool_run_compares_its_waits_with_the_default_run(
    demo_run: DemoRun, warm_pool_run: DemoRun
) -> None:
    assert f"Compared with the default run ({demo_run.output_dir / 'summary.json'})" in (
        warm_pool_run.stdout
    )
    default_wait = demo_run.record["summary"]["wait_mean_s"]
    warm_wait = warm_pool_run.record["summary"]["wait_mean_s"]
    assert warm_wait < default_wait
    assert re.search(r"wait mean \(s\)\s+[0-9.]+\s+[0-9.]+\s+0\.[0-9]+x", warm_pool_run.stdout)


def test_moto_lists_the_emulated_pool_in_describe_warm_pool() -> None:
    listed = [{"InstanceId": "i-warm0000000000001", "LifecycleState": "Warmed:Stopped"}]
    with running_endpoints("demo-test-token") as endpoints:
        autoscaling = endpoints.client("autoscaling")
        autoscaling.create_launch_configuration(
            LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="t3.large"
        )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName="group",
            LaunchConfigurationName="lc",
            MinSize=0,
            MaxSize=2,
            AvailabilityZones=["us-east-1a"],
        )
        autoscaling.put_warm_pool(AutoScalingGroupName="group", MinSize=1)
        assert autoscaling.describe_warm_pool(AutoScalingGroupName="group")["Instances"] == []
        with warm_pool_instances(lambda group: listed if group == "group" else []):
            answer = autoscaling.describe_warm_pool(AutoScalingGroupName="group")
        assert [(item["InstanceId"], item["LifecycleState"]) for item in answer["Instances"]] == [
            ("i-warm0000000000001", "Warmed:Stopped")
        ]
        assert answer["WarmPoolConfiguration"]["MinSize"] == 1
        # Restored on the way out.
        assert autoscaling.describe_warm_pool(AutoScalingGroupName="group")["Instances"] == []


def test_warm_pool_options_need_the_warm_pool() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--warm-pool-min-size", "2"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--warm-pool-min-size: only with --warm-pool" in result.stderr
