"""packer/fill_ami_mappings.py: the fleet template's AgentImages mapping from the Packer manifest.

The script is run as its users run it (a subprocess with the venv's Python), on copies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.cfn_template import load_template

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packer" / "fill_ami_mappings.py"
FLEET = ROOT / "nested" / "fleet.yaml"

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  InstanceArchitecture:
    Type: String
    Default: x86_64
Mappings:
  Other:
    a:
      b: c
  # The agent image per region and architecture, written by the AMI build.
  AgentImages:
    none:
      x8664: none
      arm64: none
    ap-southeast-2:
      x8664: ami-0ccccccccccccccc1
      arm64: ami-0ccccccccccccccc2

  Later:
    d:
      e: f
Resources:
  Image:
    Type: AWS::SSM::Parameter
    Properties:
      Type: String
      Value: !FindInMap [AgentImages, !Ref AWS::Region, x8664]
"""


def build(arch: str, artifact_id: str, build_time: int) -> dict:
    return {
        "name": "buildkite-agent",
        "builder_type": "amazon-ebs",
        "build_time": build_time,
        "files": None,
        "artifact_id": artifact_id,
        "packer_run_uuid": f"run-{arch}-{build_time}",
        "custom_data": {"arch": arch, "agent_version": "3.111.0"},
    }


def run_fill(tmp_path: Path, builds: list[dict], template: str, *flags: str):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"builds": builds, "last_run_uuid": "x"}), encoding="utf-8")
    target = tmp_path / "fleet.yaml"
    target.write_text(template, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--manifest",
            str(manifest),
            "--template",
            str(target),
            *flags,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result, target


def agent_images(path: Path) -> dict:
    return load_template(path)["Mappings"]["AgentImages"]


@pytest.fixture
def builds() -> list[dict]:
    return [
        build("x86_64", "us-east-1:ami-0aaaaaaaaaaaaaaa1,eu-west-1:ami-0aaaaaaaaaaaaaaa2", 100),
        build("arm64", "us-east-1:ami-0bbbbbbbbbbbbbbb1", 200),
        # An older x86_64 build: the newest one per architecture wins.
        build("x86_64", "us-east-1:ami-0dddddddddddddd01", 50),
    ]


def test_fill_writes_the_newest_image_per_region_and_architecture(tmp_path, builds):
    result, target = run_fill(tmp_path, builds, TEMPLATE)
    assert result.returncode == 0, result.stderr
    assert agent_images(target) == {
        "ap-southeast-2": {"x8664": "ami-0ccccccccccccccc1", "arm64": "ami-0ccccccccccccccc2"},
        "eu-west-1": {"x8664": "ami-0aaaaaaaaaaaaaaa2", "arm64": "none"},
        "us-east-1": {"x8664": "ami-0aaaaaaaaaaaaaaa1", "arm64": "ami-0bbbbbbbbbbbbbbb1"},
    }


def test_fill_changes_only_the_mapping(tmp_path, builds):
    result, target = run_fill(tmp_path, builds, TEMPLATE)
    assert result.returncode == 0, result.stderr
    before, after = TEMPLATE.splitlines(), target.read_text(encoding="utf-8").splitlines()
    start = before.index("  AgentImages:")
    assert after[: start + 1] == before[: start + 1]
    tail = before[before.index("") :]  # the blank line after the mapping, and all that follows
    assert after[-len(tail) :] == tail
    template = load_template(target)
    assert template["Mappings"]["Other"] == {"a": {"b": "c"}}
    value = template["Resources"]["Image"]["Properties"]["Value"]
    assert value == {"Fn::FindInMap": ["AgentImages", {"Ref": "AWS::Region"}, "x8664"]}


def test_fill_is_idempotent_and_check_reports_staleness(tmp_path, builds):
    result, target = run_fill(tmp_path, builds, TEMPLATE, "--check")
    assert result.returncode == 1
    assert target.read_text(encoding="utf-8") == TEMPLATE

    result, target = run_fill(tmp_path, builds, TEMPLATE)
    filled = target.read_text(encoding="utf-8")
    result, target = run_fill(tmp_path, builds, filled, "--check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_fill_keeps_the_placeholder_until_an_image_exists(tmp_path):
    sydney = (
        "    ap-southeast-2:\n"
        "      x8664: ami-0ccccccccccccccc1\n"
        "      arm64: ami-0ccccccccccccccc2\n"
    )
    template = TEMPLATE.replace(sydney, "")
    assert template != TEMPLATE
    result, target = run_fill(
        tmp_path, [build("arm64", "sa-east-1:ami-0eeeeeeeeeeeeeee1", 1)], template
    )
    assert result.returncode == 0, result.stderr
    assert agent_images(target) == {
        "sa-east-1": {"x8664": "none", "arm64": "ami-0eeeeeeeeeeeeeee1"}
    }


@pytest.mark.parametrize(
    "bad_build",
    [
        build("riscv64", "us-east-1:ami-0aaaaaaaaaaaaaaa1", 1),
        build("x86_64", "us-east-1:not-an-ami", 1),
        build("x86_64", "", 1),
    ],
    ids=["unknown-arch", "bad-ami", "no-artifact"],
)
def test_fill_refuses_a_malformed_manifest(tmp_path, bad_build):
    result, target = run_fill(tmp_path, [bad_build], TEMPLATE)
    assert result.returncode == 2
    assert "fill_ami_mappings:" in result.stderr
    assert target.read_text(encoding="utf-8") == TEMPLATE


def test_fill_refuses_a_template_without_the_mapping(tmp_path, builds):
    result, _ = run_fill(tmp_path, builds, TEMPLATE.replace("AgentImages", "Images"))
    assert result.returncode == 2
    assert "AgentImages" in result.stderr


def test_fill_works_on_the_fleet_template(tmp_path, builds):
    fleet = FLEET.read_text(encoding="utf-8")
    result, target = run_fill(tmp_path, builds, fleet)
    assert result.returncode == 0, result.stderr
    images = agent_images(target)
    assert images["us-east-1"] == {
        "x8664": "ami-0aaaaaaaaaaaaaaa1",
        "arm64": "ami-0bbbbbbbbbbbbbbb1",
    }
    original = load_template(FLEET)
    filled = load_template(target)
    assert {k: v for k, v in filled.items() if k != "Mappings"} == {
        k: v for k, v in original.items() if k != "Mappings"
    }
