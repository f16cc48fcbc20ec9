"""The agent scaler end to end over real HTTP: moto in server mode and the Buildkite emulator.

Each test starts moto on a free 127.0.0.1 port (an Auto Scaling group built from a launch
template, with scale-in protection and a terminating lifecycle hook, the agent token as an
SSM SecureString, and the schedule lease table) next to the emulator, and invokes the real
handlers through ``tools.invoke_scaler`` the way the local demo does.

moto checks IAM here: each handler runs as a principal holding the policy the template gives
its role (AgentScalerRole for the schedule, AgentScalerPushRole for the push trigger), so a call
its role lacks fails the scenario. moto checks the actions only; the IAM contract test
(tests/templates/test_iam_contract.py) checks their resources and conditions.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import secrets
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from agent_scaler import demand, handler
from agent_scaler.group import GroupNotFoundError, ScalingActionError
from agent_scaler.queue_metrics import TokenError
from agent_scaler.state_tags import DEMAND_PEAKS_TAG, format_peaks, state_from_tags, tags_by_key
from buildkite_api import AuthenticationError, ServerError
from moto.server import ThreadedMotoServer

from tools.buildkite_emulator import BuildkiteEmulator
from tools.invoke_scaler import LocalContext, environment, invoke, main
from tools.testing.autoscaling import create_group
from tools.testing.iam_contract import PUSH_TRIGGER, ContractStack, role_policies
from tools.testing.moto_iam import administrator, enforcing_iam, principal_with

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events"
REGION = "us-east-1"
GROUP = "buildkite-agents"
QUEUE = "default"
LEASE_TABLE = "buildkite-scaler-lease"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """moto in server mode on a free loopback port, shared by this module's tests."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(moto_server: str) -> Iterator[str]:
    """The moto server, emptied before and after each test (its state lives in-process)."""
    _reset_moto(moto_server)
    try:
        yield moto_server
    finally:
        _reset_moto(moto_server)


def _reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (loopback)
        pass


@dataclass
class Fleet:
    """The emulated account and Buildkite, and the function environment pointing at them."""

    endpoint: str
    emulator: BuildkiteEmulator
    autoscaling: Any
    ssm: Any
    token_parameter: str
    env: dict[str, str]  # the scheduled function's, as AgentScalerRole
    push_env: dict[str, str]  # the push function's, as AgentScalerPushRole
    iam: Any  # as an administrator

    def desired(self) -> int:
        return self._group()["DesiredCapacity"]

    def instance_ids(self) -> list[str]:
        return sorted(i["InstanceId"] for i in self._group()["Instances"])

    def set_desired(self, desired: int) -> list[str]:
        self.autoscaling.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=desired)
        return self.instance_ids()

    def rotate_ssm_token(self, token: str) -> None:
        self.ssm.put_parameter(
            Name=self.token_parameter, Value=token, Type="SecureString", Overwrite=True
        )

    def _group(self) -> dict[str, Any]:
        response = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
        return response["AutoScalingGroups"][0]


@functools.cache
def _test_session() -> boto3.session.Session:
    # Shared by the tests so botocore loads each service model once.
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture
def fleet(moto_endpoint: str, buildkite_emulator: BuildkiteEmulator) -> Iterator[Fleet]:
    iam = _test_session().client("iam", endpoint_url=moto_endpoint)
    admin = administrator(iam)
    session = boto3.session.Session(
        aws_access_key_id=admin["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=admin["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    ec2 = session.client("ec2", endpoint_url=moto_endpoint)
    autoscaling = session.client("autoscaling", endpoint_url=moto_endpoint)
    ssm = session.client("ssm", endpoint_url=moto_endpoint)
    session.client("dynamodb", endpoint_url=moto_endpoint).create_table(
        TableName=LEASE_TABLE,
        AttributeDefinitions=[{"AttributeName": "lease", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "lease", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    create_group(
        autoscaling,
        GROUP,
        min_size=0,
        max_size=10,
        desired=0,
        ec2=ec2,
        protected_from_scale_in=True,
    )
    autoscaling.put_lifecycle_hook(
        LifecycleHookName="drain-agents",
        AutoScalingGroupName=GROUP,
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=3600,
        DefaultResult="CONTINUE",
    )
    # A parameter name of its own per test: the scaler's token cache lives as long as the
    # process (like a Lambda container), and the moto server is shared by the module.
    token_parameter = f"/buildkite/agent-token-{secrets.token_hex(4)}"
    ssm.put_parameter(Name=token_parameter, Value=buildkite_emulator.token, Type="SecureString")
    common = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_REGION": REGION,
        "BUILDKITE_QUEUE": QUEUE,
        "BUILDKITE_AGENT_ENDPOINT": buildkite_emulator.url,
        "BUILDKITE_AGENT_TOKEN_PARAMETER": token_parameter,
        "AUTO_SCALING_GROUP_NAME": GROUP,
        "MIN_SIZE": "0",
        "MAX_SIZE": "10",
    }
    env = {
        **common,
        **principal_with(iam, "agent-scaler", role_policies("AgentScalerRole")),
        "SCALER_LEASE_TABLE": LEASE_TABLE,
    }
    push_env = {
        **common,
        **principal_with(iam, "agent-scaler-push", role_policies("AgentScalerPushRole")),
    }
    with enforcing_iam(moto_endpoint):
        yield Fleet(
            moto_endpoint,
            buildkite_emulator,
            autoscaling,
            ssm,
            token_parameter,
            env,
            push_env,
            session.client("iam", endpoint_url=moto_endpoint),
        )


@pytest.fixture
def scaler_log() -> Iterator[io.StringIO]:
    """Everything the scaler's Powertools logger writes during the test, as JSON lines."""
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(handler.logger.registered_formatter)
    underlying = logging.getLogger(handler.logger.name)
    underlying.addHandler(capture)
    try:
        yield stream
    finally:
        underlying.removeHandler(capture)


def scheduled_event() -> dict[str, Any]:
    return json.loads((EVENTS / "scheduled.json").read_text())


def evaluate_once(fleet: Fleet, **env: str) -> dict[str, Any]:
    """One scheduled invocation whose context leaves no time for a second evaluation."""
    return invoke(handler.lambda_handler, scheduled_event(), {**fleet.env, **env}, deadline_s=1)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def group_tags(fleet: Fleet) -> dict[str, str]:
    (group,) = fleet.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])[
        "AutoScalingGroups"
    ]
    return tags_by_key(group.get("Tags", []))


def evaluations(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in log_lines(stream) if "decision" in line]


# --- scaling out ----------------------------------------------------------------------------------


def test_scales_out_from_zero_on_scheduled_jobs(fleet: Fleet, scaler_log: io.StringIO) -> None:
    fleet.emulator.control.enqueue_jobs(QUEUE, count=3)

    assert evaluate_once(fleet) == {"evaluations": 1}

    assert fleet.desired() == 3
    assert len(fleet.instance_ids()) == 3
    (line,) = evaluations(scaler_log)
    assert line["reasons"][0] == "3 scheduled + 0 running need 3 agents = 3 instances"
    assert line["correlation_id"] == scheduled_event()["id"]
    assert line["trigger"] == "schedule"


def test_repeated_evaluations_while_instances_boot_never_over_provision(
    fleet: Fleet, scaler_log: io.StringIO
) -> None:
    control = fleet.emulator.control
    control.enqueue_jobs(QUEUE, count=4, duration_s=300)
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds
        # Half-way through the minute two of the four instances finish booting.
        if clock["now"] >= 20 and not control.instances():
            for instance_id in fleet.instance_ids()[:2]:
                control.register_instance(instance_id, QUEUE)

    context = LocalContext(function_name="AgentScalerFunction", deadline_s=120)
    with environment(fleet.env):
        result = handler.run_scheduled(
            scheduled_event(), context, clock=lambda: clock["now"], sleep=sleep
        )

    assert result == {"evaluations": 5}
    assert fleet.desired() == 4
    actions = [line["message"].rsplit(": ", 1)[1] for line in evaluations(scaler_log)]
    assert actions == ["scale out 0 -> 4"] + ["no change"] * 4
    assert control.queue_counts(QUEUE)["running_jobs"] == 2
    assert [line["evaluation"] for line in evaluations(scaler_log)] == [1, 2, 3, 4, 5]


def test_max_size_clamps_and_says_so(fleet: Fleet, scaler_log: io.StringIO) -> None:
    fleet.autoscaling.update_auto_scaling_group(AutoScalingGroupName=GROUP, MaxSize=3)
    fleet.emulator.control.enqueue_jobs(QUEUE, count=10)

    evaluate_once(fleet, MAX_SIZE="3")

    assert fleet.desired() == 3
    assert (
        "MaxSize 3 reached: 10 instances needed, clamped to 3"
        in (evaluations(scaler_log)[0]["reasons"])
    )


@pytest.mark.parametrize(
    ("scale_out_for_waiting_jobs", "desired"),
    [pytest.param("false", 0, id="waiting ignored"), pytest.param("true", 5, id="counted")],
)
def test_scale_out_for_waiting_jobs_is_honoured(
    fleet: Fleet, scale_out_for_waiting_jobs: str, desired: int
) -> None:
    fleet.emulator.control.set_counts(QUEUE, waiting_jobs=5)
    evaluate_once(fleet, SCALE_OUT_FOR_WAITING_JOBS=scale_out_for_waiting_jobs)
    assert fleet.desired() == desired


def test_push_trigger_scales_out_once_per_batch(fleet: Fleet, scaler_log: io.StringIO) -> None:
    fleet.emulator.control.enqueue_jobs(QUEUE, count=2)
    batch = json.loads((EVENTS / "sqs_job_scheduled.json").read_text())

    assert invoke(handler.push_handler, batch, fleet.push_env) == {"evaluations": 1}

    assert fleet.desired() == 2
    assert len(fleet.emulator.control.agent_requests(route="metrics_queue")) == 1
    (line,) = evaluations(scaler_log)
    assert line["trigger"] == "push"


def test_push_trigger_never_drains(fleet: Fleet) -> None:
    instance_ids = fleet.set_desired(2)
    for instance_id in instance_ids:
        fleet.emulator.control.register_instance(instance_id, QUEUE)
    batch = json.loads((EVENTS / "sqs_job_scheduled.json").read_text())

    invoke(
        handler.push_handler,
        batch,
        {**fleet.push_env, "DISABLE_SCALE_IN": "false", "SCALE_IN_COOLDOWN_PERIOD": "0"},
    )

    assert fleet.instance_ids() == instance_ids


# --- the warm pool --------------------------------------------------------------------------------


def with_a_warm_pool(fleet: Fleet, max_prepared: int = 1) -> None:
    fleet.autoscaling.put_warm_pool(
        AutoScalingGroupName=GROUP,
        MaxGroupPreparedCapacity=max_prepared,
        MinSize=0,
        PoolState="Stopped",
        InstanceReusePolicy={"ReuseOnScaleIn": True},
    )


def test_the_scheduled_scaler_of_a_stack_with_a_pool_sizes_it_under_its_role(
    fleet: Fleet, scaler_log: io.StringIO
) -> None:
    with_a_warm_pool(fleet)
    pool_role = ContractStack.from_template({**PUSH_TRIGGER, "EnableWarmPool": "true"})
    credentials = principal_with(
        fleet.iam, "agent-scaler-with-pool", pool_role.role_policies("AgentScalerRole")
    )
    fleet.emulator.control.enqueue_jobs(QUEUE, count=3)

    evaluate_once(fleet, **credentials, WARM_POOL_ENABLED="true")

    assert fleet.desired() == 3
    pool = fleet.autoscaling.describe_warm_pool(AutoScalingGroupName=GROUP)
    assert pool["WarmPoolConfiguration"]["MaxGroupPreparedCapacity"] == 3
    (line,) = evaluations(scaler_log)
    assert line["decision"]["warm_pool_max_prepared_capacity"] == 3


def test_the_push_scaler_never_reads_the_pool_its_role_does_not_allow(fleet: Fleet) -> None:
    with_a_warm_pool(fleet)
    fleet.emulator.control.enqueue_jobs(QUEUE, count=2)
    batch = json.loads((EVENTS / "sqs_job_scheduled.json").read_text())

    env = {**fleet.push_env, "WARM_POOL_ENABLED": "true"}
    assert invoke(handler.push_handler, batch, env) == {"evaluations": 1}

    assert fleet.desired() == 2
    pool = fleet.autoscaling.describe_warm_pool(AutoScalingGroupName=GROUP)
    assert pool["WarmPoolConfiguration"]["MaxGroupPreparedCapacity"] == 1


# --- scaling in -----------------------------------------------------------------------------------


def test_busy_instances_are_never_drained(fleet: Fleet, scaler_log: io.StringIO) -> None:
    control = fleet.emulator.control
    instance_ids = fleet.set_desired(3)
    for instance_id in instance_ids:
        control.register_instance(instance_id, QUEUE)
    (job_id,) = control.enqueue_jobs(QUEUE, count=1, duration_s=600)
    busy_instance = control.job(job_id).instance_id
    scale_in = {"DISABLE_SCALE_IN": "false", "SCALE_IN_COOLDOWN_PERIOD": "0", "MIN_SIZE": "1"}
    fleet.autoscaling.update_auto_scaling_group(AutoScalingGroupName=GROUP, MinSize=1)

    evaluate_once(fleet, **scale_in)

    assert fleet.instance_ids() == instance_ids
    reasons = " ".join(evaluations(scaler_log)[0]["reasons"])
    assert "cannot prove which instances are idle" in reasons

    control.advance(600)  # the job finishes; every agent is idle now
    evaluate_once(fleet, **scale_in)

    drained = evaluations(scaler_log)[1]["decision"]["drain_instance_ids"]
    assert len(drained) == 2
    assert fleet.desired() == 1
    assert fleet.instance_ids() == sorted(set(instance_ids) - set(drained))
    assert busy_instance in instance_ids


def test_the_idle_tail_above_the_demand_window_is_drained_through_the_hook(
    fleet: Fleet, scaler_log: io.StringIO
) -> None:
    control = fleet.emulator.control
    instance_ids = fleet.set_desired(4)
    for instance_id in instance_ids:
        control.register_instance(instance_id, QUEUE)
    (job_id,) = control.enqueue_jobs(QUEUE, count=1, duration_s=600)
    busy_instance = control.job(job_id).instance_id
    # Each instance's lifecycle handler reports its agent: protected while busy, not when idle.
    idle_instances = [i for i in instance_ids if i != busy_instance]
    for reported, protected in (([busy_instance], True), (idle_instances, False)):
        fleet.autoscaling.set_instance_protection(
            InstanceIds=reported, AutoScalingGroupName=GROUP, ProtectedFromScaleIn=protected
        )
    # The scheduled scaler has seen demand of at most 1 instance over the whole window.
    now = time.time()
    length = demand.bucket_seconds(600)
    peaks = tuple(((now // length - n) * length, 1) for n in range(22, -1, -1))
    fleet.autoscaling.create_or_update_tags(
        Tags=[
            {
                "ResourceId": GROUP,
                "ResourceType": "auto-scaling-group",
                "Key": DEMAND_PEAKS_TAG,
                "Value": format_peaks(peaks),
                "PropagateAtLaunch": False,
            }
        ]
    )

    evaluate_once(fleet)  # DisableScaleIn stays true: this rule does not depend on it

    (evaluation,) = evaluations(scaler_log)
    drained = evaluation["decision"]["drain_instance_ids"]
    assert sorted(drained) == sorted(idle_instances)  # keeps 1: the one running the job
    assert fleet.desired() == 1
    assert fleet.instance_ids() == [busy_instance]
    assert "through the terminating lifecycle hook" in " ".join(evaluation["reasons"])
    stored = state_from_tags(group_tags(fleet), time.time()).state.demand_peaks
    assert demand.peak(stored, time.time(), 600, 600) == 1


def test_disable_scale_in_leaves_idle_instances_alone(
    fleet: Fleet, scaler_log: io.StringIO
) -> None:
    instance_ids = fleet.set_desired(2)
    for instance_id in instance_ids:
        fleet.emulator.control.register_instance(instance_id, QUEUE)

    evaluate_once(fleet, DISABLE_SCALE_IN="true", SCALE_IN_COOLDOWN_PERIOD="0")

    assert fleet.instance_ids() == instance_ids
    assert fleet.desired() == 2
    assert (
        "scale-in disabled: idle instances leave on their own after 600 s"
        in (evaluations(scaler_log)[0]["reasons"])
    )


# --- failures -------------------------------------------------------------------------------------


def test_token_rotation_is_picked_up_after_a_401(fleet: Fleet, scaler_log: io.StringIO) -> None:
    control = fleet.emulator.control
    evaluate_once(fleet)  # caches the current token in this container

    new_token = secrets.token_hex(20)
    control.configure(token=new_token)
    fleet.rotate_ssm_token(new_token)
    control.enqueue_jobs(QUEUE, count=2)
    control.clear_agent_requests()

    evaluate_once(fleet)

    assert fleet.desired() == 2
    assert [r.status for r in control.agent_requests(route="metrics_queue")] == [401, 200]


def test_a_refused_token_that_was_not_rotated_changes_nothing_and_raises(
    fleet: Fleet, scaler_log: io.StringIO
) -> None:
    fleet.emulator.control.configure(token=secrets.token_hex(20))
    fleet.emulator.control.enqueue_jobs(QUEUE, count=2)

    with pytest.raises(AuthenticationError, match="HTTP 401"):
        evaluate_once(fleet)

    assert fleet.desired() == 0
    error = log_lines(scaler_log)[-1]
    assert error["level"] == "ERROR"
    assert error["message"].startswith("Scaling failed (AuthenticationError)")


def test_api_503_storm_changes_nothing_and_raises(fleet: Fleet, scaler_log: io.StringIO) -> None:
    control = fleet.emulator.control
    control.enqueue_jobs(QUEUE, count=4)
    control.add_fault("metrics_queue", status=503, message="Service Unavailable", count=None)

    with pytest.raises(ServerError, match="HTTP 503"):
        evaluate_once(fleet)

    assert fleet.desired() == 0
    assert len(control.agent_requests(route="metrics_queue")) == 3  # first try + 2 retries
    error = log_lines(scaler_log)[-1]
    assert error["level"] == "ERROR"
    assert "HTTP 503" in error["message"]
    assert evaluations(scaler_log) == []


def test_group_not_found_raises_with_a_clear_message(fleet: Fleet, scaler_log: io.StringIO) -> None:
    fleet.emulator.control.enqueue_jobs(QUEUE, count=1)

    with pytest.raises(GroupNotFoundError) as raised:
        evaluate_once(fleet, AUTO_SCALING_GROUP_NAME="no-such-group")

    assert "Auto Scaling group 'no-such-group' not found" in str(raised.value)
    assert "AUTO_SCALING_GROUP_NAME" in str(raised.value)
    assert fleet.desired() == 0
    assert log_lines(scaler_log)[-1]["level"] == "ERROR"


def test_a_missing_token_parameter_is_named_and_changes_nothing(
    fleet: Fleet, scaler_log: io.StringIO
) -> None:
    fleet.emulator.control.enqueue_jobs(QUEUE, count=1)

    with pytest.raises(TokenError, match="SSM parameter '/buildkite/no-such-token'"):
        evaluate_once(fleet, BUILDKITE_AGENT_TOKEN_PARAMETER="/buildkite/no-such-token")

    assert fleet.desired() == 0
    assert fleet.emulator.control.agent_requests() == []
    assert log_lines(scaler_log)[-1]["message"].startswith("Scaling failed (TokenError)")


def test_bad_configuration_raises_before_touching_anything(
    fleet: Fleet, scaler_log: io.StringIO
) -> None:
    fleet.emulator.control.enqueue_jobs(QUEUE, count=1)

    with pytest.raises(ValueError, match=r"MinSize \(5\) must not exceed MaxSize \(3\)"):
        evaluate_once(fleet, MIN_SIZE="5", MAX_SIZE="3")

    assert fleet.emulator.control.agent_requests() == []
    assert log_lines(scaler_log)[-1]["level"] == "ERROR"


def test_the_token_never_appears_in_logs_errors_or_output(
    fleet: Fleet,
    scaler_log: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    handler.logger.setLevel(logging.DEBUG)
    old_token = fleet.emulator.token
    new_token = secrets.token_hex(20)
    errors: list[str] = []
    try:
        fleet.emulator.control.enqueue_jobs(QUEUE, count=1)
        evaluate_once(fleet)
        fleet.emulator.control.configure(token=new_token)
        try:
            evaluate_once(fleet)  # refused: the parameter still holds the old token
        except AuthenticationError as exc:
            errors.append(repr(exc) + str(exc))
        fleet.rotate_ssm_token(new_token)
        evaluate_once(fleet)  # 401 with the cached token, then the rotated one
    finally:
        handler.logger.setLevel(logging.INFO)

    captured = capfd.readouterr()
    everything = "\n".join(
        [scaler_log.getvalue(), caplog.text, captured.out, captured.err, *errors]
    )
    assert len(errors) == 1
    assert "Scaling evaluation" in everything  # the capture did see the scaler's logs
    assert old_token not in everything
    assert new_token not in everything


# --- IAM ---------------------------------------------------------------------------------------


def without_action(documents: tuple[dict[str, Any], ...], action: str) -> list[dict[str, Any]]:
    """The policy documents with `action` taken out of every statement."""
    trimmed = []
    for document in documents:
        statements = []
        for statement in document["Statement"]:
            listed = statement["Action"]
            kept = [a for a in ([listed] if isinstance(listed, str) else listed) if a != action]
            if kept:
                statements.append({**statement, "Action": kept})
        trimmed.append({**document, "Statement": statements})
    return trimmed


def test_moto_refuses_a_call_the_role_does_not_allow(fleet: Fleet) -> None:
    """The scenarios above pass as AgentScalerRole; without one of its actions they would not."""
    policies = without_action(role_policies("AgentScalerRole"), "autoscaling:SetDesiredCapacity")
    restricted = principal_with(fleet.iam, "scaler-without-scale-out", policies)
    fleet.emulator.control.enqueue_jobs(QUEUE, count=2)

    with pytest.raises(ScalingActionError, match="AccessDenied"):
        evaluate_once(fleet, **restricted)

    assert fleet.desired() == 0


# --- the local runner -----------------------------------------------------------------------------


def test_local_runner_command_runs_the_handler_once(
    fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_file = tmp_path / "env.json"
    function_env = {k: v for k, v in fleet.env.items() if not k.startswith("AWS_")}
    env_file.write_text(json.dumps({"AgentScalerFunction": function_env}))
    # The caller's own credentials, from the shell (here: the scaler's principal in moto).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, fleet.env[name])
    fleet.emulator.control.enqueue_jobs(QUEUE, count=2)

    status = main(
        [
            "--event",
            str(EVENTS / "scheduled.json"),
            "--env-vars",
            str(env_file),
            "--aws-endpoint",
            fleet.endpoint,
            "--once",
        ]
    )

    assert status == 0
    assert fleet.desired() == 2
    assert capsys.readouterr().out.strip().splitlines()[-1] == '{"evaluations": 1}'
