"""Reads the custom resource's properties into a validated request, with the token redacted.

Properties (set by nested/storage.yaml):
  ParameterName  the SSM parameter to manage, e.g. /<root stack>/buildkite/agent-token
  AgentToken     the Buildkite agent token (a NoEcho stack parameter)
  KmsKeyId       optional KMS key id/ARN/alias; empty means the AWS managed key alias/aws/ssm
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_token.secret import SecretValue

TOKEN_PROPERTY = "AgentToken"  # noqa: S105 - the property name, not a secret
AWS_MANAGED_SSM_KEY = "alias/aws/ssm"
# SSM standard-tier parameters hold at most 4 KB; the limit is on the UTF-8 encoded value.
MAX_TOKEN_BYTES = 4096
_PROPERTY_SECTIONS = ("ResourceProperties", "OldResourceProperties")


class InvalidRequestError(ValueError):
    """The custom resource's properties are unusable. Messages never contain the token."""


@dataclass(frozen=True)
class TokenParameterRequest:
    """What to store: the parameter name, the token and the KMS key that encrypts it."""

    parameter_name: str
    token: SecretValue
    kms_key_id: str


def redact_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of `event` whose token properties are wrapped in `SecretValue`.

    Everything downstream (crhelper, which logs the event at DEBUG, and our own code) sees only
    the wrapper, so rendering the event can never print the token.
    """
    redacted = dict(event)
    for section in _PROPERTY_SECTIONS:
        properties = event.get(section)
        if isinstance(properties, Mapping) and TOKEN_PROPERTY in properties:
            copied = dict(properties)
            value = copied[TOKEN_PROPERTY]
            if not isinstance(value, SecretValue):
                copied[TOKEN_PROPERTY] = SecretValue("" if value is None else str(value))
            redacted[section] = copied
    return redacted


def parse_request(properties: Mapping[str, Any]) -> TokenParameterRequest:
    """Validate the properties of a Create or Update request."""
    parameter_name = str(properties.get("ParameterName") or "")
    if not parameter_name.startswith("/"):
        raise InvalidRequestError("ParameterName must be a parameter path starting with '/'")
    token = properties.get(TOKEN_PROPERTY)
    if not isinstance(token, SecretValue):
        raise InvalidRequestError(f"{TOKEN_PROPERTY} is missing")
    kms_key_id = str(properties.get("KmsKeyId") or "").strip() or AWS_MANAGED_SSM_KEY
    return TokenParameterRequest(parameter_name, validated_token(token), kms_key_id)


def validated_token(token: SecretValue) -> SecretValue:
    """The token without surrounding whitespace; rejects empty, blank and oversized values.

    Surrounding whitespace (a pasted trailing newline) is never part of an agent token and
    would break the agent's configuration file, so it is removed before storing.
    """
    value = token.reveal().strip()
    if not value:
        raise InvalidRequestError(f"{TOKEN_PROPERTY} is empty or only whitespace")
    if len(value.encode("utf-8")) > MAX_TOKEN_BYTES:
        raise InvalidRequestError(
            f"{TOKEN_PROPERTY} is longer than {MAX_TOKEN_BYTES} bytes, the most a standard SSM "
            "parameter holds"
        )
    return SecretValue(value)
