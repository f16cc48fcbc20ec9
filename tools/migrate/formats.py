"""Write our parameters for `sam deploy`, for samconfig.toml, or as a CloudFormation file."""

from __future__ import annotations

import json
import re

CAPABILITIES = "CAPABILITY_IAM CAPABILITY_AUTO_EXPAND"


def overrides(parameters: dict[str, str]) -> str:
    """A `sam deploy --parameter-overrides` value: Key="value" pairs, space-separated."""
    return " ".join(f'{name}="{_quoted(value)}"' for name, value in parameters.items())


def _quoted(value: str) -> str:
    if "\n" in value or value.endswith("\\"):
        raise ValueError(f"{value!r} cannot be written as a SAM parameter override")
    return value.replace('"', '\\"')


def samconfig(parameters: dict[str, str], config_env: str) -> str:
    """A samconfig.toml deploy section for environment `config_env`."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", config_env):
        raise ValueError(f"config environment {config_env!r}: letters, digits, _ and - only")
    capabilities = CAPABILITIES
    if parameters.get("InstanceRoleName"):
        capabilities += " CAPABILITY_NAMED_IAM"
    # JSON string escapes are valid TOML basic-string escapes.
    return (
        f"[{config_env}.deploy.parameters]\n"
        f"capabilities = {json.dumps(capabilities)}\n"
        f"parameter_overrides = {json.dumps(overrides(parameters))}\n"
    )


def cloudformation(parameters: dict[str, str]) -> str:
    """A parameter file for `aws cloudformation create-stack --parameters file://...`."""
    items = [{"ParameterKey": name, "ParameterValue": value} for name, value in parameters.items()]
    return json.dumps(items, indent=2) + "\n"
