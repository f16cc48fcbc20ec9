"""Read a reference stack's parameter values: from a file, or from CloudFormation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class SourceError(ValueError):
    """The input does not hold a stack's parameters."""


@dataclass(frozen=True)
class StackParameters:
    values: dict[str, str]
    stack_name: str = ""


def from_file(path: Path) -> StackParameters:
    """`aws cloudformation describe-stacks` output, or a [{ParameterKey, ParameterValue}] list."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise SourceError(f"{path} is not JSON: {error}") from None
    return from_document(document, source=str(path))


def from_document(document: Any, *, source: str = "input") -> StackParameters:
    if isinstance(document, dict) and "Stacks" in document:
        stacks = document["Stacks"]
        if not isinstance(stacks, list) or len(stacks) != 1:
            raise SourceError(f"{source}: describe one stack (found {len(stacks)})")
        document = stacks[0]
    if isinstance(document, dict) and "Parameters" in document:
        return StackParameters(
            _parameter_list(document["Parameters"], source), str(document.get("StackName", ""))
        )
    if isinstance(document, list):
        return StackParameters(_parameter_list(document, source))
    raise SourceError(
        f"{source}: expected describe-stacks output or a [{{ParameterKey, ParameterValue}}] list"
    )


def _parameter_list(items: Any, source: str) -> dict[str, str]:
    values: dict[str, str] = {}
    if not isinstance(items, list):
        raise SourceError(f"{source}: Parameters is not a list")
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "ParameterKey" not in item:
            raise SourceError(f"{source}: parameter {index} has no ParameterKey")
        if item.get("UsePreviousValue"):
            raise SourceError(
                f"{source}: {item['ParameterKey']} uses its previous value; give the value"
            )
        value = item.get("ParameterValue", "")
        values[str(item["ParameterKey"])] = "" if value is None else str(value)
    return values


def from_stack(name: str, region: str | None = None) -> StackParameters:
    """The parameters of a deployed stack, read with describe-stacks (NoEcho values are ****)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("cloudformation", region_name=region)
        stacks = client.describe_stacks(StackName=name)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise SourceError(f"cannot describe stack {name}: {error}") from None
    return from_document({"Stacks": stacks}, source=f"stack {name}")
