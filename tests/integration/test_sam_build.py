"""`sam build` makes python3.13/arm64 artifacts without Docker and without python3.12/3.13."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.cfn_template import load_template

ROOT = Path(__file__).resolve().parents[2]
ARM64_PLATFORM_MARKERS = ("manylinux", "musllinux")

pytestmark = pytest.mark.slow


def path_without_newer_pythons() -> str:
    """PATH minus every directory that holds a python3.12 or python3.13 interpreter."""
    kept = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if any((Path(directory) / name).exists() for name in ("python3.12", "python3.13")):
            continue
        kept.append(directory)
    venv_bin = str(Path(sys.executable).parent)
    return os.pathsep.join([venv_bin, *[d for d in kept if d != venv_bin]])


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    env = {**os.environ, "PATH": path_without_newer_pythons(), "SAM_CLI_TELEMETRY": "0"}
    for name in ("python3.12", "python3.13"):
        assert shutil.which(name, path=env["PATH"]) is None
    result = subprocess.run(
        [
            "sam",
            "build",
            "--no-cached",
            "--build-dir",
            str(build_dir),
            "--template",
            "template.yaml",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return build_dir


def wheel_tags(layer_python: Path) -> dict[str, list[str]]:
    tags = {}
    for wheel_file in layer_python.glob("*.dist-info/WHEEL"):
        lines = wheel_file.read_text().splitlines()
        tags[wheel_file.parent.name] = [
            line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")
        ]
    return tags


def test_layer_holds_requests_and_arm64_or_pure_wheels(built):
    layer_python = built / "BuildkiteLayer" / "python"
    assert (layer_python / "requests" / "__init__.py").is_file()
    assert (layer_python / "buildkite_api" / "__init__.py").is_file()
    assert (layer_python / "aws_clients" / "__init__.py").is_file()
    tags = wheel_tags(layer_python)
    assert any(name.startswith("requests-") for name in tags)
    for distribution, distribution_tags in tags.items():
        assert distribution_tags, f"{distribution} has no wheel tags"
        for tag in distribution_tags:
            python, abi, platform = tag.split("-")
            if platform == "any":
                assert abi == "none", f"{distribution}: {tag}"
                continue
            assert platform.endswith("_aarch64"), f"{distribution}: {tag} is not arm64"
            assert platform.startswith(ARM64_PLATFORM_MARKERS), f"{distribution}: {tag}"
            assert python == "cp313", f"{distribution}: {tag} is not for python3.13"


def test_layer_imports_with_only_the_layer_on_the_path(built):
    layer_python = built / "BuildkiteLayer" / "python"
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            "import aws_clients, buildkite_api, custom_resources, requests\n"
            "print(requests.__file__)",
        ],
        env={"PYTHONPATH": str(layer_python), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(layer_python))


def test_every_function_and_layer_is_python313_arm64(built):
    template = load_template(built / "template.yaml")
    globals_ = template.get("Globals", {}).get("Function", {})
    functions = {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    for name, properties in functions.items():
        assert properties.get("Runtime", globals_.get("Runtime")) == "python3.13", name
        assert properties.get("Architectures", globals_.get("Architectures")) == ["arm64"], name
        handler_package = properties["Handler"].split(".")[0]
        code = built / properties["CodeUri"]
        assert (code / handler_package / "__init__.py").is_file(), f"{name}: package not built"
    layer = template["Resources"]["BuildkiteLayer"]["Properties"]
    assert layer["CompatibleRuntimes"] == ["python3.13"]
    assert layer["CompatibleArchitectures"] == ["arm64"]


def test_nested_stacks_are_built_with_the_application(built):
    for child in ("Network", "Storage", "Fleet"):
        assert (built / child / "template.yaml").is_file(), child
