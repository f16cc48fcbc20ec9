"""StopBuildkiteAgents: drains a replaced group and always answers CloudFormation.

AWS is moto (in-process). The CloudFormation response URL is an HTTPS server on 127.0.0.1 with
a certificate made for the test (crhelper only speaks HTTPS), trusted through SSL_CERT_FILE; it
captures each PUT body so the test can check it is a response CloudFormation accepts.
"""

from __future__ import annotations

import copy
import datetime
import importlib
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws

EVENTS = Path(__file__).resolve().parents[2] / "events"
REGION = "us-east-1"
RESPONSE_FIELDS = {"Status", "Reason", "PhysicalResourceId", "StackId", "RequestId"}
RESPONSE_FIELDS |= {"LogicalResourceId"}


# --- a stand-in for CloudFormation's pre-signed response URL ----------------------------------
@dataclass
class CapturedResponse:
    body: dict[str, Any]
    raw: bytes
    content_type: str | None
    seconds_after_start: float


@dataclass
class ResponseEndpoint:
    """HTTPS server on 127.0.0.1 that records every PUT to it."""

    url: str
    responses: list[CapturedResponse] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "endpoint.pem", directory / "endpoint.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def endpoint(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ResponseEndpoint]:
    cert_path, key_path = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    captured = ResponseEndpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            captured.responses.append(
                CapturedResponse(
                    json.loads(raw),
                    raw,
                    self.headers.get("Content-Type"),
                    time.monotonic() - captured.started,
                )
            )
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_path, key_path)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    captured.url = f"https://127.0.0.1:{server.server_address[1]}/cfn-response?X-Amz-Signature=x"
    try:
        yield captured
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def assert_cloudformation_response(
    response: CapturedResponse, event: dict[str, Any], status: str
) -> None:
    """The PUT body is one CloudFormation accepts, answering this very request."""
    body = response.body
    assert set(body) >= RESPONSE_FIELDS, f"missing fields: {RESPONSE_FIELDS - set(body)}"
    assert body["Status"] == status, body.get("Reason")
    assert body["StackId"] == event["StackId"]
    assert body["RequestId"] == event["RequestId"]
    assert body["LogicalResourceId"] == event["LogicalResourceId"]
    assert isinstance(body["PhysicalResourceId"], str)
    assert 1 <= len(body["PhysicalResourceId"]) <= 1024
    assert isinstance(body["Reason"], str)
    if status == "FAILED":
        assert body["Reason"], "a FAILED response must say why"
    assert len(response.raw) <= 4096, "CloudFormation rejects response bodies over 4 KiB"
    # The pre-signed URL is signed for an empty content type.
    assert not response.content_type


# --- the Lambda side --------------------------------------------------------------------------
@dataclass
class FakeLambdaContext:
    remaining_ms: int = 120_000
    function_name: str = "StopBuildkiteAgentsFunction"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:StopBuildkiteAgentsFunction"
    )
    aws_request_id: str = "7d1e0b3c-0000-4000-8000-00000000abcd"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def handler(aws: None) -> ModuleType:
    # Imported once AWS settings exist: crhelper creates its clients at import, like in Lambda.
    return importlib.import_module("stop_buildkite_agents.handler")


@pytest.fixture
def autoscaling(aws: None) -> Any:
    return boto3.client("autoscaling", region_name=REGION)


@pytest.fixture
def sent_commands(handler: ModuleType) -> Iterator[list[dict[str, Any]]]:
    """The SendCommand requests the function makes, as it made them.

    Read from the request rather than from moto's ListCommands: moto adds every instance in the
    account to a command sent without Targets, so it cannot show which instances were asked.
    """
    requests: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        requests.append(copy.deepcopy(params))

    client = handler.aws_clients.ssm()
    client.meta.events.register("before-parameter-build.ssm.SendCommand", record, "record-sends")
    yield requests
    client.meta.events.unregister(
        "before-parameter-build.ssm.SendCommand", unique_id="record-sends"
    )


def make_group(autoscaling: Any, name: str, instances: int, min_size: int = 1) -> list[str]:
    """A group running `instances` instances; returns their ids."""
    ec2 = boto3.client("ec2", region_name=REGION)
    template = f"lt-{name}"[:120]
    ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.large"},
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=min(min_size, instances),
        MaxSize=max(instances, 1) * 2,
        DesiredCapacity=instances,
        AvailabilityZones=[f"{REGION}a", f"{REGION}b"],
        LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
    )
    return [i["InstanceId"] for i in describe_group(autoscaling, name)["Instances"]]


def describe_group(autoscaling: Any, name: str) -> dict[str, Any]:
    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    return group


def capacity(autoscaling: Any, name: str) -> tuple[int, int]:
    group = describe_group(autoscaling, name)
    return group["MinSize"], group["DesiredCapacity"]


def load_event(name: str, endpoint: ResponseEndpoint) -> dict[str, Any]:
    event = json.loads((EVENTS / name).read_text())
    event["ResponseURL"] = endpoint.url
    return event


def invoke(
    handler: ModuleType,
    event: dict[str, Any],
    endpoint: ResponseEndpoint,
    context: FakeLambdaContext | None = None,
) -> CapturedResponse:
    endpoint.started = time.monotonic()
    handler.lambda_handler(copy.deepcopy(event), context or FakeLambdaContext())
    assert endpoint.responses, "the function did not answer CloudFormation"
    return endpoint.responses[0]


def group_names(event: dict[str, Any]) -> tuple[str, str | None]:
    old = event.get("OldResourceProperties", {}).get("AutoScalingGroupName")
    return event["ResourceProperties"]["AutoScalingGroupName"], old


def instances_asked_to_stop(sent: list[dict[str, Any]]) -> list[str]:
    return [instance for command in sent for instance in command["InstanceIds"]]


# --- behaviour ----------------------------------------------------------------------------------
def test_create_records_the_group_and_changes_nothing(
    handler, autoscaling, endpoint, sent_commands
):
    event = load_event("stop_agents_create.json", endpoint)
    group, _ = group_names(event)
    make_group(autoscaling, group, instances=2, min_size=1)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert capacity(autoscaling, group) == (1, 2)
    assert sent_commands == []


def test_update_of_a_replaced_group_drains_the_old_group_only(
    handler, autoscaling, endpoint, sent_commands
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    new_group, old_group = group_names(event)
    assert old_group
    assert old_group != new_group
    old_instances = make_group(autoscaling, old_group, instances=3, min_size=2)
    new_instances = make_group(autoscaling, new_group, instances=2, min_size=1)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == new_group
    assert capacity(autoscaling, old_group) == (0, 0)
    assert capacity(autoscaling, new_group) == (1, 2)
    assert sorted(instances_asked_to_stop(sent_commands)) == sorted(old_instances)
    assert not set(instances_asked_to_stop(sent_commands)) & set(new_instances)
    (command,) = sent_commands
    assert command["DocumentName"] == "AWS-RunShellScript"
    script = " ".join(command["Parameters"]["commands"])
    assert "systemctl stop" in script
    assert "buildkite-agent" in script
    # A graceful stop: never a kill, never a forced power-off.
    assert not {"kill", "poweroff", "shutdown", "terminate"} & set(script.split())
    assert command["MaxErrors"] == "100%", "one unreachable instance must not stop the rest"


def test_more_than_fifty_instances_are_asked_in_batches_of_at_most_fifty(
    handler, autoscaling, endpoint, sent_commands
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    new_group, old_group = group_names(event)
    old_instances = make_group(autoscaling, old_group, instances=120)
    make_group(autoscaling, new_group, instances=0)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert len(sent_commands) == 3
    assert all(1 <= len(command["InstanceIds"]) <= 50 for command in sent_commands)
    asked = instances_asked_to_stop(sent_commands)
    assert len(asked) == len(set(asked)), "an instance was asked twice"
    assert sorted(asked) == sorted(old_instances)
    listed = boto3.client("ssm", region_name=REGION).list_commands()["Commands"]
    assert len(listed) == 3


def test_update_of_the_same_group_changes_nothing(handler, autoscaling, endpoint, sent_commands):
    event = load_event("stop_agents_update_same_group.json", endpoint)
    group, old_group = group_names(event)
    assert old_group == group
    make_group(autoscaling, group, instances=2, min_size=1)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert capacity(autoscaling, group) == (1, 2)
    assert sent_commands == []


def test_a_missing_old_group_is_nothing_to_drain(handler, autoscaling, endpoint, sent_commands):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    new_group, _ = group_names(event)
    make_group(autoscaling, new_group, instances=1)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == new_group
    assert sent_commands == []


def test_an_old_group_without_instances_gets_no_command(
    handler, autoscaling, endpoint, sent_commands
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    _, old_group = group_names(event)
    make_group(autoscaling, old_group, instances=0)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert capacity(autoscaling, old_group) == (0, 0)
    assert sent_commands == []


def test_delete_leaves_the_group_alone(handler, autoscaling, endpoint, sent_commands):
    event = load_event("stop_agents_delete.json", endpoint)
    group = event["PhysicalResourceId"]
    make_group(autoscaling, group, instances=2, min_size=1)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == group
    assert capacity(autoscaling, group) == (1, 2)
    assert sent_commands == []


def test_delete_succeeds_when_the_group_is_already_gone(handler, endpoint, sent_commands):
    event = load_event("stop_agents_delete.json", endpoint)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "SUCCESS")
    assert response.body["PhysicalResourceId"] == event["PhysicalResourceId"]


def test_update_without_a_group_name_fails_with_the_reason(handler, endpoint, sent_commands):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    del event["ResourceProperties"]["AutoScalingGroupName"]

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "FAILED")
    assert "AutoScalingGroupName" in response.body["Reason"]
    # A failed Update keeps the resource's current physical id.
    assert response.body["PhysicalResourceId"] == event["PhysicalResourceId"]


@pytest.fixture
def failing_send_command(handler: ModuleType) -> Iterator[None]:
    """SendCommand answers AccessDenied, as it would without the IAM permission."""
    from botocore.awsrequest import AWSResponse

    def deny(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name != "SendCommand":
            return None
        error = {"Code": "AccessDeniedException", "Message": "not authorized to SendCommand"}
        return AWSResponse("https://ssm", 400, {}, None), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    client = handler.aws_clients.ssm()
    client.meta.events.register_first("before-call", deny, unique_id="deny-send")
    yield
    client.meta.events.unregister("before-call", unique_id="deny-send")


def test_an_aws_error_fails_the_resource_with_its_message(
    handler, autoscaling, endpoint, failing_send_command
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    _, old_group = group_names(event)
    make_group(autoscaling, old_group, instances=2)

    response = invoke(handler, event, endpoint)

    assert_cloudformation_response(response, event, "FAILED")
    assert "AccessDeniedException" in response.body["Reason"]


@pytest.fixture
def first_batch_unmanaged(handler: ModuleType) -> Iterator[None]:
    """The first SendCommand is refused: an instance of that batch is not managed by SSM yet."""
    from botocore.awsrequest import AWSResponse

    calls = []

    def refuse_first(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name != "SendCommand":
            return None
        calls.append(model.name)
        if len(calls) > 1:
            return None
        error = {"Code": "InvalidInstanceId", "Message": "Instances not in a valid state"}
        return AWSResponse("https://ssm", 400, {}, None), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    client = handler.aws_clients.ssm()
    client.meta.events.register_first("before-call", refuse_first, unique_id="refuse-first")
    yield
    client.meta.events.unregister("before-call", unique_id="refuse-first")


def test_a_batch_ssm_cannot_reach_does_not_stop_the_other_batches(
    handler, autoscaling, endpoint, sent_commands, first_batch_unmanaged
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    _, old_group = group_names(event)
    old_instances = make_group(autoscaling, old_group, instances=120)

    response = invoke(handler, event, endpoint)

    # Those agents are drained by the lifecycle hook when the old group is deleted.
    assert_cloudformation_response(response, event, "SUCCESS")
    assert capacity(autoscaling, old_group) == (0, 0)
    assert len(sent_commands) == 3
    assert sorted(instances_asked_to_stop(sent_commands)) == sorted(old_instances)
    listed = boto3.client("ssm", region_name=REGION).list_commands()["Commands"]
    assert len(listed) == 2


@pytest.fixture
def slow_describe(handler: ModuleType) -> Iterator[None]:
    """DescribeAutoScalingGroups hangs for longer than the function has left."""

    def hang(model: Any, **_: Any) -> None:
        if model.name == "DescribeAutoScalingGroups":
            time.sleep(1.5)

    client = handler.aws_clients.autoscaling()
    client.meta.events.register_first("before-call", hang, unique_id="hang-describe")
    yield
    client.meta.events.unregister("before-call", unique_id="hang-describe")


def test_a_hung_call_still_answers_before_the_function_times_out(
    handler, autoscaling, endpoint, slow_describe
):
    event = load_event("stop_agents_update_replaced.json", endpoint)
    _, old_group = group_names(event)
    make_group(autoscaling, old_group, instances=1)
    remaining_seconds = 1.0

    first = invoke(handler, event, endpoint, FakeLambdaContext(remaining_ms=1000))

    assert_cloudformation_response(first, event, "FAILED")
    assert "timed out" in first.body["Reason"]
    assert first.body["PhysicalResourceId"] == event["PhysicalResourceId"]
    assert first.seconds_after_start < remaining_seconds
