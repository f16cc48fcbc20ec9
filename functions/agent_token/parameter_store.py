"""Writes and deletes the agent token's SecureString parameter in SSM Parameter Store.

Errors are re-raised as `ParameterStoreError` whose message names the operation, the parameter
and the AWS error code, and carries AWS's own message only for error codes whose messages do
not echo request values (validation messages can quote the value that was sent).
"""

from __future__ import annotations

from typing import Any

import aws_clients
from botocore.exceptions import BotoCoreError, ClientError

from agent_token.secret import SecretValue

# Error codes whose messages describe the caller, the key or the parameter, never the value.
_SAFE_MESSAGE_CODES = frozenset(
    {
        "AccessDeniedException",
        "InvalidKeyId",
        "ParameterAlreadyExists",
        "ParameterLimitExceeded",
        "ParameterMaxVersionLimitExceeded",
        "HierarchyLevelLimitExceededException",
        "HierarchyTypeMismatchException",
        "ThrottlingException",
        "TooManyUpdates",
    }
)


class ParameterStoreError(RuntimeError):
    """An SSM call failed. The message never contains the parameter's value."""


class TokenParameterStore:
    """Creates, overwrites and deletes one SecureString parameter per call."""

    def __init__(self, ssm_client: Any | None = None) -> None:
        self._ssm = ssm_client or aws_clients.ssm()

    def put(self, name: str, token: SecretValue, kms_key_id: str, *, overwrite: bool) -> int:
        """Store `token` under `name`, encrypted with `kms_key_id`; returns the new version.

        With `overwrite=False` an existing parameter of that name is an error, so the stack
        never takes over a parameter it did not create.
        """
        try:
            response = self._ssm.put_parameter(
                Name=name,
                Description="Buildkite agent token (managed by CloudFormation; do not edit)",
                Value=token.reveal(),
                Type="SecureString",
                KeyId=kms_key_id,
                Tier="Standard",
                Overwrite=overwrite,
            )
        except (ClientError, BotoCoreError) as error:
            raise ParameterStoreError(_describe("PutParameter", name, error)) from None
        return int(response.get("Version", 0))

    def delete(self, name: str) -> bool:
        """Delete `name`; returns False when it did not exist (which is not an error)."""
        try:
            self._ssm.delete_parameter(Name=name)
        except ClientError as error:
            if _error_code(error) == "ParameterNotFound":
                return False
            raise ParameterStoreError(_describe("DeleteParameter", name, error)) from None
        except BotoCoreError as error:
            raise ParameterStoreError(_describe("DeleteParameter", name, error)) from None
        return True


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def _describe(operation: str, name: str, error: ClientError | BotoCoreError) -> str:
    if isinstance(error, BotoCoreError):
        return f"{operation} {name} failed: {type(error).__name__}"
    code = _error_code(error)
    summary = f"{operation} {name} failed: {code}"
    message = str(error.response.get("Error", {}).get("Message", "")).strip()
    if code in _SAFE_MESSAGE_CODES and message:
        return f"{summary}: {message}"
    return summary
