"""The agent token request: properties are validated and the token is redacted everywhere."""

import json
import logging
import pickle

import pytest
from agent_token.request import (
    AWS_MANAGED_SSM_KEY,
    InvalidRequestError,
    parse_request,
    redact_event,
)
from agent_token.secret import REDACTED, SecretValue

TOKEN = "bkat_0123456789abcdefSECRET"


def properties(**overrides):
    values = {
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:agent-token",
        "ParameterName": "/fleet/buildkite/agent-token",
        "AgentToken": TOKEN,
        "KmsKeyId": "",
    }
    values.update(overrides)
    return values


def test_secret_value_never_renders_its_value():
    secret = SecretValue(TOKEN)
    renderings = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        "%s %r" % (secret, secret),  # noqa: UP031 - the %-style that logging uses
        str({"AgentToken": secret}),
        json.dumps({"AgentToken": secret}, default=str),
    ]
    for rendered in renderings:
        assert TOKEN not in rendered
        assert REDACTED in rendered
    assert secret.reveal() == TOKEN


def test_secret_value_cannot_be_pickled():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(SecretValue(TOKEN))


def test_secret_value_in_a_log_record_is_redacted(caplog):
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").debug("event %s", {"AgentToken": SecretValue(TOKEN)})
    assert TOKEN not in caplog.text
    assert REDACTED in caplog.text


def test_redact_event_wraps_new_and_old_tokens_and_leaves_the_input_alone():
    event = {
        "RequestType": "Update",
        "ResourceProperties": properties(),
        "OldResourceProperties": properties(AgentToken="old-" + TOKEN),
    }
    redacted = redact_event(event)
    assert TOKEN not in str(redacted)
    assert redacted["ResourceProperties"]["AgentToken"] == SecretValue(TOKEN)
    assert redacted["OldResourceProperties"]["AgentToken"] == SecretValue("old-" + TOKEN)
    assert redacted["ResourceProperties"]["ParameterName"] == "/fleet/buildkite/agent-token"
    assert event["ResourceProperties"]["AgentToken"] == TOKEN  # the caller's event is untouched


def test_redact_event_without_token_properties_is_a_plain_copy():
    event = {"RequestType": "Delete", "ResourceProperties": {"ParameterName": "/x"}}
    assert redact_event(event) == event


def test_parse_request_defaults_to_the_aws_managed_key():
    request = parse_request(
        redact_event({"ResourceProperties": properties()})["ResourceProperties"]
    )
    assert request.parameter_name == "/fleet/buildkite/agent-token"
    assert request.token.reveal() == TOKEN
    assert request.kms_key_id == AWS_MANAGED_SSM_KEY


def test_parse_request_uses_the_given_key_and_strips_the_token():
    given = properties(AgentToken=f"  {TOKEN}\n", KmsKeyId="1234abcd-12ab-34cd-56ef-1234567890ab")
    request = parse_request(redact_event({"ResourceProperties": given})["ResourceProperties"])
    assert request.token.reveal() == TOKEN
    assert request.kms_key_id == "1234abcd-12ab-34cd-56ef-1234567890ab"


def test_a_token_of_exactly_4096_bytes_is_accepted():
    token = "é" * 2048  # 2 bytes each in UTF-8
    given = redact_event({"ResourceProperties": properties(AgentToken=token)})
    assert parse_request(given["ResourceProperties"]).token.reveal() == token


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "empty or only whitespace"),
        (" \t\n ", "empty or only whitespace"),
        ("x" * 4097, "longer than 4096 bytes"),
        ("é" * 2049, "longer than 4096 bytes"),  # 2049 characters, 4098 bytes
    ],
    ids=["empty", "whitespace", "4097-ascii", "4098-bytes-utf8"],
)
def test_invalid_tokens_are_rejected_without_echoing_them(token, reason):
    given = redact_event({"ResourceProperties": properties(AgentToken=token)})
    with pytest.raises(InvalidRequestError, match=reason) as raised:
        parse_request(given["ResourceProperties"])
    if token.strip():
        assert token.strip() not in str(raised.value)
        assert token.strip()[:16] not in str(raised.value)


def test_missing_token_property_is_rejected():
    given = properties()
    del given["AgentToken"]
    with pytest.raises(InvalidRequestError, match="AgentToken is missing"):
        parse_request(redact_event({"ResourceProperties": given})["ResourceProperties"])


@pytest.mark.parametrize("name", ["", "fleet/buildkite/agent-token"])
def test_parameter_name_must_be_a_path(name):
    given = redact_event({"ResourceProperties": properties(ParameterName=name)})
    with pytest.raises(InvalidRequestError, match="ParameterName"):
        parse_request(given["ResourceProperties"])
