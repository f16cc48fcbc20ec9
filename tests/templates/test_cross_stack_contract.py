"""The root template and its nested stacks agree on parameters and outputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.cfn_template import load_template

ROOT = Path(__file__).resolve().parents[2]
NESTED_TYPES = ("AWS::Serverless::Application", "AWS::CloudFormation::Stack")


def nested_applications(root: dict) -> dict[str, tuple[dict, dict]]:
    """Logical id -> (nested resource properties, child template) for local nested stacks."""
    children = {}
    for name, resource in root["Resources"].items():
        if resource["Type"] not in NESTED_TYPES:
            continue
        properties = resource["Properties"]
        location = properties.get("Location") or properties.get("TemplateURL")
        assert isinstance(location, str), f"{name}: nested stack must use a local Location"
        children[name] = (properties, load_template(ROOT / location))
    return children


def output_references(value: Any) -> Iterator[tuple[str, str]]:
    """Every (child, output) named by Fn::GetAtt Child.Outputs.X or ${Child.Outputs.X}."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Fn::GetAtt" and str(item[1]).startswith("Outputs."):
                yield item[0], item[1].removeprefix("Outputs.")
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                yield from re.findall(r"\$\{(\w+)\.Outputs\.(\w+)\}", text)
                if isinstance(item, list):
                    yield from output_references(item[1])
            else:
                yield from output_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from output_references(item)


@pytest.fixture(scope="module")
def children(root_template):
    return nested_applications(root_template)


def test_root_has_the_four_nested_stacks(children):
    assert set(children) == {"Network", "Storage", "Fleet", "Monitoring"}


def test_every_passed_parameter_exists_in_the_child(children):
    for name, (properties, child) in children.items():
        declared = set(child.get("Parameters") or {})
        passed = set(properties.get("Parameters") or {})
        assert passed <= declared, f"{name}: unknown child parameters {sorted(passed - declared)}"


def test_every_child_parameter_without_default_is_passed(children):
    for name, (properties, child) in children.items():
        required = {
            p for p, spec in (child.get("Parameters") or {}).items() if "Default" not in spec
        }
        passed = set(properties.get("Parameters") or {})
        assert required <= passed, f"{name}: required parameters not passed {required - passed}"


def test_the_root_passes_every_child_parameter(children):
    """Every setting of a nested stack is the user's to set from the root."""
    for name, (properties, child) in children.items():
        declared = set(child.get("Parameters") or {})
        passed = set(properties.get("Parameters") or {})
        assert declared == passed, f"{name}: not passed {sorted(declared - passed)}"


def test_every_referenced_child_output_is_declared(root_template, children):
    references = list(output_references(root_template))
    assert references, "the root re-exports nothing from its children"
    for child_name, output in references:
        assert child_name in children, f"{child_name} is not a nested stack"
        declared = children[child_name][1].get("Outputs") or {}
        assert output in declared, f"{child_name} declares no output {output}"


def test_root_outputs_are_exported_with_the_stack_name_prefix(root_template):
    for name, output in root_template["Outputs"].items():
        assert output.get("Export", {}).get("Name") == {"Fn::Sub": f"${{AWS::StackName}}-{name}"}


def test_output_references_are_found_in_getatt_and_sub():
    value = {
        "A": {"Fn::GetAtt": ["Net", "Outputs.VpcId"]},
        "B": [{"Fn::Sub": "x-${Store.Outputs.Bucket}-${AWS::Region}"}],
        "C": {"Fn::Sub": ["${X}", {"X": {"Fn::GetAtt": ["Fleet", "Outputs.Group"]}}]},
        "D": {"Fn::GetAtt": ["Function", "Arn"]},
    }
    assert sorted(output_references(value)) == [
        ("Fleet", "Group"),
        ("Net", "VpcId"),
        ("Store", "Bucket"),
    ]


def test_every_parameter_is_in_an_interface_group(root_template):
    groups = root_template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [p for group in groups for p in group["Parameters"]]
    assert sorted(grouped) == sorted(root_template["Parameters"])
    assert len(grouped) == len(set(grouped)), "a parameter is in two groups"
    assert [g["Label"]["default"] for g in groups] == [
        "Base",
        "Network",
        "Instances",
        "Auto-scaling",
        "Warm pool",
        "Scheduled scaling",
        "Storage & secrets",
        "Monitoring",
        "Cost tags",
        "Agent instance",
    ]


def test_every_parameter_is_documented(root_template):
    for name, spec in root_template["Parameters"].items():
        assert len(spec.get("Description", "")) > 15, f"{name} needs a description"
