"""The agent token custom resource, end to end: SSM in moto, responses over real HTTPS.

crhelper always answers CloudFormation with `http.client.HTTPSConnection`, so the stand-in for
the pre-signed ResponseURL is the `endpoint` fixture (tests/unit/conftest.py): an HTTPS server on
127.0.0.1 with a throwaway self-signed certificate, trusted through SSL_CERT_FILE (read by
OpenSSL's default verify paths; no test seam in the function). The server records each PUT body
for the assertions.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aws_clients
import boto3
import pytest

from tools.testing.cloudformation import (
    ACCOUNT,
    REGION,
    FakeLambdaContext,
    ResponseEndpoint,
    invoke_handler,
)
from tools.testing.faults import slow_calls

STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/fleet-Storage-1ABC/0f1e2d3c"
PARAMETER = "/fleet/buildkite/agent-token"
PARAMETER_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{PARAMETER}"
TOKEN = "bkat_tokenvalue_0123456789abcdef_NEVER_LOG_ME"
NEW_TOKEN = "bkat_rotated_fedcba9876543210_NEVER_LOG_ME_EITHER"
CUSTOM_KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
CONTEXT = FakeLambdaContext(
    function_name="fleet-AgentTokenFunction",
    aws_request_id="6f1c4a7e-0000-4000-8000-000000000001",
    remaining_ms=30_000,
    memory_limit_in_mb=256,
)


# --- AWS (moto) and the function ------------------------------------------------------------
@pytest.fixture
def aws(mocked_aws: None) -> Any:
    """The SSM client the assertions read the parameter through."""
    return boto3.client("ssm", region_name=REGION)


@pytest.fixture
def handler_module() -> str:
    return "agent_token.handler"


def properties(token: str = TOKEN, name: str = PARAMETER, key: str = "") -> dict[str, str]:
    return {
        "ServiceToken": CONTEXT.invoked_function_arn,
        "ParameterName": name,
        "AgentToken": token,
        "KmsKeyId": key,
    }


def make_event(
    request_type: str,
    url: str,
    props: dict[str, str],
    physical_id: str | None = None,
    old_props: dict[str, str] | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": STACK_ID,
        "RequestId": f"request-{request_type.lower()}-1",
        "ResourceType": "AWS::CloudFormation::CustomResource",
        "LogicalResourceId": "AgentTokenParameter",
        "ResourceProperties": props,
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_props is not None:
        event["OldResourceProperties"] = old_props
    return event


def invoke(handler, endpoint: ResponseEndpoint, event: dict[str, Any]) -> dict[str, Any]:
    before = len(endpoint.responses)
    handler.lambda_handler(event, CONTEXT)
    assert len(endpoint.responses) == before + 1, "exactly one response per request"
    response = endpoint.responses[-1]
    raw = response.raw.decode()
    for secret in (TOKEN, NEW_TOKEN):
        assert secret not in raw
    return response.body


def assert_echoes_request(response: dict[str, Any], event: dict[str, Any]) -> None:
    assert response["StackId"] == event["StackId"]
    assert response["RequestId"] == event["RequestId"]
    assert response["LogicalResourceId"] == event["LogicalResourceId"]


def stored(ssm, name: str = PARAMETER) -> dict[str, Any]:
    parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    described = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
    )["Parameters"][0]
    return {**parameter, "KeyId": described["KeyId"], "Tier": described["Tier"]}


def parameter_names(ssm) -> set[str]:
    return {p["Name"] for p in ssm.describe_parameters()["Parameters"]}


# --- Create ---------------------------------------------------------------------------------
def test_create_stores_a_secure_string_with_the_aws_managed_key(handler, aws, endpoint):
    event = make_event("Create", endpoint.url, properties())
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == PARAMETER
    assert_echoes_request(response, event)
    assert response["Data"] == {"ParameterName": PARAMETER, "ParameterArn": PARAMETER_ARN}
    parameter = stored(aws)
    assert parameter["Value"] == TOKEN
    assert parameter["Type"] == "SecureString"
    assert parameter["KeyId"] == "alias/aws/ssm"
    assert parameter["Tier"] == "Standard"


def test_create_uses_the_given_kms_key_and_trims_the_token(handler, aws, endpoint):
    event = make_event("Create", endpoint.url, properties(token=f" {TOKEN}\n", key=CUSTOM_KEY))
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "SUCCESS", response["Reason"]
    parameter = stored(aws)
    assert parameter["Value"] == TOKEN
    assert parameter["KeyId"] == CUSTOM_KEY


def test_create_refuses_to_take_over_an_existing_parameter(handler, aws, endpoint):
    aws.put_parameter(Name=PARAMETER, Value="someone-elses", Type="SecureString")
    event = make_event("Create", endpoint.url, properties())
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "FAILED"
    assert "ParameterAlreadyExists" in response["Reason"]
    assert PARAMETER in response["Reason"]
    assert_echoes_request(response, event)
    assert stored(aws)["Value"] == "someone-elses"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "empty or only whitespace"),
        ("  \t\n  ", "empty or only whitespace"),
        (TOKEN + "x" * (4097 - len(TOKEN)), "longer than 4096 bytes"),
        (TOKEN + "é" * 2040, "longer than 4096 bytes"),
    ],
    ids=["empty", "whitespace", "over-4096-bytes", "over-4096-bytes-utf8"],
)
def test_invalid_token_fails_without_revealing_it(handler, aws, endpoint, token, reason):
    event = make_event("Create", endpoint.url, properties(token=token))
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "FAILED"
    assert reason in response["Reason"]
    assert "AgentToken" in response["Reason"]
    if token.strip():
        assert token.strip()[:20] not in response["Reason"]
    assert response["Data"] == {}
    assert_echoes_request(response, event)
    assert parameter_names(aws) == set()


def test_failed_create_then_rollback_delete_succeeds_and_touches_nothing(handler, aws, endpoint):
    aws.put_parameter(Name="/unrelated", Value="keep me", Type="String")
    failed = invoke(handler, endpoint, make_event("Create", endpoint.url, properties(token=" ")))
    assert failed["Status"] == "FAILED"

    rollback = make_event(
        "Delete", endpoint.url, properties(token=" "), physical_id=failed["PhysicalResourceId"]
    )
    response = invoke(handler, endpoint, rollback)

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == failed["PhysicalResourceId"]
    assert parameter_names(aws) == {"/unrelated"}


# --- Update ---------------------------------------------------------------------------------
def test_update_with_a_new_token_overwrites_in_place(handler, aws, endpoint):
    invoke(handler, endpoint, make_event("Create", endpoint.url, properties()))
    event = make_event(
        "Update",
        endpoint.url,
        properties(token=NEW_TOKEN),
        physical_id=PARAMETER,
        old_props=properties(),
    )
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == PARAMETER  # same id: no replacement
    assert_echoes_request(response, event)
    assert response["Data"] == {"ParameterName": PARAMETER, "ParameterArn": PARAMETER_ARN}
    parameter = stored(aws)
    assert parameter["Value"] == NEW_TOKEN
    assert parameter["Version"] == 2


def test_update_with_a_new_kms_key_re_encrypts_in_place(handler, aws, endpoint):
    invoke(handler, endpoint, make_event("Create", endpoint.url, properties()))
    event = make_event(
        "Update",
        endpoint.url,
        properties(key=CUSTOM_KEY),
        physical_id=PARAMETER,
        old_props=properties(),
    )
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert stored(aws)["KeyId"] == CUSTOM_KEY


def test_update_with_a_new_path_is_a_replacement(handler, aws, endpoint):
    invoke(handler, endpoint, make_event("Create", endpoint.url, properties()))
    new_name = "/renamed/buildkite/agent-token"
    event = make_event(
        "Update",
        endpoint.url,
        properties(token=NEW_TOKEN, name=new_name),
        physical_id=PARAMETER,
        old_props=properties(),
    )
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == new_name
    assert stored(aws, new_name)["Value"] == NEW_TOKEN
    assert stored(aws)["Value"] == TOKEN  # CloudFormation deletes the old one afterwards

    cleanup = make_event("Delete", endpoint.url, properties(), physical_id=PARAMETER)
    assert invoke(handler, endpoint, cleanup)["Status"] == "SUCCESS"
    assert parameter_names(aws) == {new_name}


def test_failed_update_keeps_the_old_parameter_and_physical_id(handler, aws, endpoint):
    invoke(handler, endpoint, make_event("Create", endpoint.url, properties()))
    event = make_event(
        "Update", endpoint.url, properties(token=""), physical_id=PARAMETER, old_props=properties()
    )
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "FAILED"
    assert response["PhysicalResourceId"] == PARAMETER
    assert stored(aws)["Value"] == TOKEN


# --- Delete ---------------------------------------------------------------------------------
def test_delete_removes_the_parameter(handler, aws, endpoint):
    invoke(handler, endpoint, make_event("Create", endpoint.url, properties()))
    event = make_event("Delete", endpoint.url, properties(), physical_id=PARAMETER)
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == PARAMETER
    assert_echoes_request(response, event)
    assert parameter_names(aws) == set()


def test_delete_of_a_missing_parameter_succeeds(handler, aws, endpoint):
    event = make_event("Delete", endpoint.url, properties(), physical_id=PARAMETER)
    response = invoke(handler, endpoint, event)

    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == PARAMETER


# --- A call that outlasts the function -------------------------------------------------------
HANG_S = 1.5
ABOUT_TO_TIME_OUT = dataclasses.replace(CONTEXT, remaining_ms=1000)


@pytest.fixture
def slow_ssm(handler) -> Iterator[None]:
    """Every SSM write hangs for longer than the function has left."""
    client = aws_clients.ssm()  # the client the function's parameter store uses
    with slow_calls(client, "PutParameter", HANG_S), slow_calls(client, "DeleteParameter", HANG_S):
        yield


def first_answer(handler, endpoint: ResponseEndpoint, event: dict[str, Any]) -> dict[str, Any]:
    """The answer crhelper's timer sends before the (hung) call returns."""
    response = invoke_handler(handler, event, endpoint, ABOUT_TO_TIME_OUT)
    assert response.seconds_after_start < ABOUT_TO_TIME_OUT.remaining_ms / 1000
    for secret in (TOKEN, NEW_TOKEN):
        assert secret not in response.raw.decode()
    return response.body


@pytest.mark.parametrize("request_type", ["Update", "Delete"])
def test_a_timed_out_update_or_delete_answers_with_the_existing_physical_id(
    handler, aws, endpoint, slow_ssm, request_type
):
    event = make_event(
        request_type, endpoint.url, properties(NEW_TOKEN), PARAMETER, old_props=properties()
    )

    answer = first_answer(handler, endpoint, event)

    assert answer["Status"] == "FAILED"
    assert "timed out" in answer["Reason"]
    assert answer["PhysicalResourceId"] == PARAMETER


def test_a_timed_out_create_answers_with_an_id_a_rollback_delete_leaves_alone(
    handler, aws, endpoint, slow_ssm
):
    aws.put_parameter(Name="/unrelated", Value="keep me", Type="String")
    event = make_event("Create", endpoint.url, properties())

    answer = first_answer(handler, endpoint, event)

    assert answer["Status"] == "FAILED"
    assert "timed out" in answer["Reason"]
    physical_id = answer["PhysicalResourceId"]
    assert physical_id
    assert not physical_id.startswith("/")  # not a parameter name: nothing was stored yet

    rollback = make_event("Delete", endpoint.url, properties(), physical_id=physical_id)
    response = invoke(handler, endpoint, rollback)
    assert response["Status"] == "SUCCESS", response["Reason"]
    assert response["PhysicalResourceId"] == physical_id
    assert "/unrelated" in parameter_names(aws)


# --- The token never reaches a log ----------------------------------------------------------
class RecordCapture(logging.Handler):
    """Keeps every record's message, arguments and formatted traceback as text."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        self.texts.append(repr(record.msg))
        self.texts.append(repr(record.args))
        self.texts.append(repr(getattr(record, "__dict__", {})))


def _all_request_kinds(handler, endpoint: ResponseEndpoint, ssm) -> None:
    """Create, update, failed create, invalid token, delete and delete of a missing one."""
    url = endpoint.url
    invoke(handler, endpoint, make_event("Create", url, properties()))
    invoke(
        handler,
        endpoint,
        make_event("Update", url, properties(NEW_TOKEN), PARAMETER, old_props=properties()),
    )
    invoke(handler, endpoint, make_event("Create", url, properties(NEW_TOKEN)))  # exists: FAILED
    too_long = NEW_TOKEN + "y" * 4096
    invoke(handler, endpoint, make_event("Create", url, properties(too_long, "/other/token")))
    invoke(handler, endpoint, make_event("Delete", url, properties(NEW_TOKEN), PARAMETER))
    invoke(handler, endpoint, make_event("Delete", url, properties(NEW_TOKEN), PARAMETER))
    assert parameter_names(ssm) == set()


@pytest.mark.parametrize("level", LEVELS)
def test_no_log_record_or_output_contains_the_token(handler, aws, endpoint, level, capfd):
    """At every level, even with crhelper's and botocore's loggers lowered to it beforehand."""
    powertools_handler = handler.logger.logger_handler
    powertools_stdout = io.StringIO()
    previous_stream = powertools_handler.setStream(powertools_stdout)
    capture = RecordCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    library_loggers = ["crhelper", "botocore", "boto3", "urllib3"]
    saved_levels = {name: logging.getLogger(name).level for name in library_loggers}
    saved_powertools_level = handler.logger.log_level
    try:
        handler.logger.setLevel(level)
        for name in library_loggers:
            logging.getLogger(name).setLevel(level)
        _all_request_kinds(handler, endpoint, aws)
    finally:
        root.removeHandler(capture)
        powertools_handler.setStream(previous_stream)
        handler.logger.setLevel(saved_powertools_level)
        for name, saved in saved_levels.items():
            logging.getLogger(name).setLevel(saved)

    out, err = capfd.readouterr()
    everything = "\n".join([*capture.texts, powertools_stdout.getvalue(), out, err])
    assert TOKEN not in everything
    assert NEW_TOKEN not in everything
    # The capture works: what each level lets through was seen.
    if level in ("DEBUG", "INFO"):
        assert "agent token stored" in powertools_stdout.getvalue()
    if level == "DEBUG":
        # crhelper logged the event itself; the token in it was redacted.
        assert "SecretValue('**********')" in everything
    if level in ("DEBUG", "INFO", "WARNING", "ERROR"):
        assert "ParameterAlreadyExists" in everything  # crhelper's ERROR for the failed create


SUBPROCESS_SCRIPT = """
import json, sys
from moto import mock_aws

with mock_aws():
    from agent_token import handler

    class Context:
        function_name = "fleet-AgentTokenFunction"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
        aws_request_id = "req-1"

        @staticmethod
        def get_remaining_time_in_millis():
            return 30000

    for event in json.load(sys.stdin):
        handler.lambda_handler(event, Context())
"""


def test_log_level_environment_cannot_make_the_function_print_the_token(endpoint):
    """Every logging knob an operator can turn on the function, in a fresh interpreter."""
    events = [
        make_event("Create", endpoint.url, properties()),
        make_event("Update", endpoint.url, properties(NEW_TOKEN), PARAMETER, properties()),
        make_event("Create", endpoint.url, properties(NEW_TOKEN)),  # already exists: FAILED
        make_event("Delete", endpoint.url, properties(NEW_TOKEN), PARAMETER),
    ]
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "POWERTOOLS_")) and key != "LOG_LEVEL"
    }
    environment.update(
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
            "LOG_LEVEL": "DEBUG",
            "POWERTOOLS_LOG_LEVEL": "DEBUG",
            "POWERTOOLS_LOGGER_LOG_EVENT": "true",
            "POWERTOOLS_LOGGER_SAMPLE_RATE": "1",
            "POWERTOOLS_DEBUG": "true",
            "SSL_CERT_FILE": str(endpoint.cert_file),
        }
    )
    # The events (and so the token) go through stdin, never the command line.
    result = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_SCRIPT],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    statuses = [response.body["Status"] for response in endpoint.responses]
    assert statuses == ["SUCCESS", "SUCCESS", "FAILED", "SUCCESS"]
    for secret in (TOKEN, NEW_TOKEN):
        assert secret not in result.stdout
        assert secret not in result.stderr
    # The knobs took effect: the function logged at DEBUG, Powertools' own debug output is on.
    debug_lines = [line for line in result.stdout.splitlines() if '"level":"DEBUG"' in line]
    assert any("custom resource request" in line for line in debug_lines)
    assert "aws_lambda_powertools" in result.stdout
    assert "agent token stored" in result.stdout
