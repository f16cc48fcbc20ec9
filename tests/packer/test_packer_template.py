"""The Packer template and what it provisions: parses, points at files that exist, pins versions.

HCL2 is parsed with the `hcl2` module installed in the venv, which is checkov's fork
(bc-python-hcl2). It wraps most values in one-element lists; `unwrap` takes them out.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tools.cfn_template import load_template, render

ROOT = Path(__file__).resolve().parents[2]
PACKER_DIR = ROOT / "packer"
TEMPLATE = PACKER_DIR / "buildkite-agent.pkr.hcl"
VERSIONS = PACKER_DIR / "versions.pkr.hcl"
CONF_DIR = PACKER_DIR / "conf"
SCRIPTS_DIR = PACKER_DIR / "scripts"
CLOUDWATCH_CONFIG = CONF_DIR / "cloudwatch-agent" / "buildkite-agent.json"

# The boot script (bk-cloudwatch-config) puts the stack's log group prefix in place of this.
LOG_GROUPS = {
    "{log_group_prefix}/buildkite-agent",
    "{log_group_prefix}/cfn-init",
    "{log_group_prefix}/cloud-init",
    "{log_group_prefix}/cloud-init/output",
    "{log_group_prefix}/docker-daemon",
    "{log_group_prefix}/elastic-stack",
    "{log_group_prefix}/system",
    "{log_group_prefix}/auth",
    "{log_group_prefix}/lifecycled",
}
RELEASE_ARTIFACTS = (
    "buildkite_agent",
    "docker_buildx",
    "docker_compose",
    "git_lfs",
    "s3secrets_helper",
)
PLUGINS = ("plugin_secrets", "plugin_ecr", "plugin_docker_login")


def unwrap(value: Any) -> Any:
    """The value inside the fork's one-element list wrappers."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return hcl2.load(handle)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load(TEMPLATE)


@pytest.fixture(scope="module")
def versions() -> dict[str, Any]:
    return load(VERSIONS)


@pytest.fixture(scope="module")
def build(template) -> dict[str, Any]:
    return unwrap(template["build"])


def provisioners(build: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item[kind] for item in build["provisioner"] if kind in item]


def local_path(value: str) -> Path:
    assert value.startswith("${path.root}/"), f"provisioned path not under path.root: {value}"
    return PACKER_DIR / value.removeprefix("${path.root}/")


def versions_locals(versions) -> dict[str, dict[str, str]]:
    locals_block = unwrap(versions["locals"])
    return {name: unwrap(locals_block[name]) for name in ("versions", "checksums")}


def script_environment_reads(path: Path) -> set[str]:
    """Upper-case variables an install script expands and does not assign."""
    code = "\n".join(
        line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
    )
    expanded = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", code))
    assigned = set(re.findall(r"(?:^|\s)(?:local\s+|export\s+)?([A-Z][A-Z0-9_]*)=", code, re.M))
    return expanded - assigned - {"PATH", "HOME"}


def test_template_and_versions_parse(template, versions):
    assert set(template) == {"variable", "locals", "source", "build"}
    assert set(versions) == {"packer", "locals"}


def test_amazon_plugin_is_required_and_pinned(versions):
    packer_block = unwrap(versions["packer"])
    amazon = unwrap(unwrap(packer_block["required_plugins"])["amazon"])
    assert amazon["source"] == "github.com/hashicorp/amazon"
    assert re.fullmatch(r"\d+\.\d+\.\d+", amazon["version"]), amazon["version"]
    assert unwrap(packer_block["required_version"])


def test_architecture_variable_allows_exactly_x86_64_and_arm64(template):
    variables = {name: body for item in template["variable"] for name, body in item.items()}
    arch = variables["arch"]
    assert unwrap(arch["default"]) == "x86_64"
    condition = unwrap(unwrap(arch["validation"])["condition"])
    assert "x86_64" in condition
    assert "arm64" in condition
    expected = {"region", "instance_type", "agent_version", "ami_name_prefix", "ami_users"}
    assert expected | {"ami_regions"} <= set(variables)


def test_source_is_latest_al2023_with_imdsv2_and_encryption(template):
    source = unwrap(template["source"])["amazon-ebs"]["al2023"]
    ami_filter = unwrap(source["source_ami_filter"])
    assert unwrap(ami_filter["owners"]) == "amazon"
    assert unwrap(ami_filter["most_recent"]) is True
    filters = unwrap(ami_filter["filters"])
    assert filters["name"] == "al2023-ami-2023.*-kernel-*-${var.arch}"
    assert filters["architecture"] == "${var.arch}"
    assert unwrap(unwrap(source["metadata_options"])["http_tokens"]) == "required"
    assert unwrap(source["imds_support"]) == "v2.0"
    assert unwrap(source["encrypt_boot"]) is True
    assert unwrap(unwrap(source["launch_block_device_mappings"])["encrypted"]) is True
    assert "${var.arch}" in unwrap(source["ami_name"])


def test_every_provisioned_file_exists(build):
    sources = [local_path(unwrap(item["source"])) for item in provisioners(build, "file")]
    scripts = []
    for item in provisioners(build, "shell"):
        if "script" in item:
            scripts.append(local_path(unwrap(item["script"])))
        for path in unwrap(item.get("scripts", [])) or []:
            scripts.append(local_path(path))
    assert CONF_DIR in sources
    assert SCRIPTS_DIR / "build-lib.sh" in sources
    assert len(scripts) >= 7
    missing = [path for path in sources + scripts if not path.exists()]
    assert not missing, f"provisioned but missing: {missing}"
    not_executable = [path for path in scripts if not path.stat().st_mode & 0o111]
    assert not not_executable


def test_every_install_script_is_provisioned(build):
    provisioned = {
        local_path(path).name
        for item in provisioners(build, "shell")
        for path in (unwrap(item.get("scripts", [])) or [])
    }
    on_disk = {path.name for path in SCRIPTS_DIR.glob("*.sh")} - {"build-lib.sh"}
    assert on_disk == provisioned


def test_install_scripts_get_every_variable_they_read_and_nothing_else(build):
    (installer,) = [item for item in provisioners(build, "shell") if "scripts" in item]
    passed = {entry.split("=", 1)[0] for entry in unwrap(installer["environment_vars"])}
    read = set()
    for script in SCRIPTS_DIR.glob("*.sh"):
        read |= script_environment_reads(script)
    assert read - passed == set(), "read by install scripts but not passed by the template"
    assert passed - read == set(), "passed by the template but read by no install script"


def test_version_references_resolve_to_pins(versions):
    pins = versions_locals(versions)
    text = TEMPLATE.read_text(encoding="utf-8")
    for key in re.findall(r"local\.versions\.(\w+)", text):
        assert key in pins["versions"], key
    for key in re.findall(r"local\.checksums\.(\w+)", text):
        assert key in pins["checksums"], key
    for prefix in re.findall(r'local\.checksums\["(\w+)_\$\{var\.arch\}"\]', text):
        for arch in ("x86_64", "arm64"):
            assert f"{prefix}_{arch}" in pins["checksums"], f"{prefix}_{arch}"


def test_every_release_and_plugin_has_a_pin_slot(versions):
    pins = versions_locals(versions)
    assert set(pins["versions"]) == set(RELEASE_ARTIFACTS) | set(PLUGINS)
    expected_slots = {
        f"{name}_{arch}" for name in RELEASE_ARTIFACTS for arch in ("x86_64", "arm64")
    }
    expected_slots |= {f"{name}_commit" for name in PLUGINS}
    assert set(pins["checksums"]) == expected_slots
    for key, value in pins["checksums"].items():
        pattern = r"[0-9a-f]{40}" if key.endswith("_commit") else r"[0-9a-f]{64}"
        assert value == "" or re.fullmatch(pattern, value), f"{key} = {value!r}"
    for key, value in pins["versions"].items():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), f"{key} = {value!r}"


def test_manifest_records_the_architecture(build):
    manifest = unwrap(unwrap(build["post-processor"])["manifest"])
    assert unwrap(manifest["custom_data"])["arch"] == "${var.arch}"
    assert unwrap(manifest["output"]) == "${local.manifest_path}"


def test_files_the_instance_config_installs_exist():
    text = (SCRIPTS_DIR / "install-instance-config.sh").read_text(encoding="utf-8")
    referenced = re.findall(r'"\$conf/([^"*]+)"', text)
    assert len(referenced) >= 4
    missing = [path for path in referenced if not (CONF_DIR / path).exists()]
    assert not missing, missing


def test_units_run_installed_scripts():
    installed = {path.name for path in (CONF_DIR / "bin").iterdir()}
    for unit in (CONF_DIR / "systemd").iterdir():
        for command in re.findall(r"^Exec\w+=[+\-@!]*(\S+)", unit.read_text(), re.M):
            if command.startswith("/usr/local/bin/"):
                assert command.removeprefix("/usr/local/bin/") in installed, (unit.name, command)


def test_agent_unit_waits_for_jobs_and_terminates_after():
    unit = (CONF_DIR / "systemd" / "buildkite-agent.service").read_text(encoding="utf-8")
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    # The stop waits for the job, but not forever (0 and infinity are systemd's "forever"); the
    # bound itself is checked against the grace period in test_drain_limits.py.
    assert settings["TimeoutStopSec"] not in {"0", "infinity"}
    assert settings["KillMode"] == "process"
    assert settings["ExecStopPost"] == "+/usr/local/bin/bk-terminate-instance"
    assert settings["User"] == "buildkite-agent"
    assert "--config /etc/buildkite-agent/buildkite-agent.cfg" in settings["ExecStart"]


def test_docker_prune_timer_is_hourly():
    timer = (CONF_DIR / "systemd" / "bk-docker-prune.timer").read_text(encoding="utf-8")
    assert re.search(r"^OnCalendar=hourly$", timer, re.M)
    assert "systemctl enable bk-docker-prune.timer" in (
        SCRIPTS_DIR / "install-instance-config.sh"
    ).read_text(encoding="utf-8")


def test_cloudwatch_config_ships_exactly_the_nine_groups_by_instance():
    config = json.loads(CLOUDWATCH_CONFIG.read_text(encoding="utf-8"))
    collected = config["logs"]["logs_collected"]["files"]["collect_list"]
    groups = [entry["log_group_name"] for entry in collected]
    assert sorted(groups) == sorted(LOG_GROUPS)
    assert len(groups) == len(set(groups)) == 9
    assert {entry["log_stream_name"] for entry in collected} == {"{instance_id}"}
    paths = [entry["file_path"] for entry in collected]
    assert len(paths) == len(set(paths))
    assert all(path.startswith("/var/log/") for path in paths)


def test_the_storage_stack_creates_exactly_the_groups_the_agent_ships_to():
    """So retention set by the stack covers every shipped log, and no group is left unused."""
    storage = render(
        load_template(ROOT / "nested" / "storage.yaml"),
        {
            "ParentStackName": "ci",
            "AgentTokenFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "BuildkiteAgentToken": "t",
            "EnableEC2LogRetentionPolicy": "true",
        },
    )
    created = {
        storage.evaluate(group["Properties"]["LogGroupName"])
        for group in storage.of_type("AWS::Logs::LogGroup").values()
    }
    prefix = storage.evaluate(storage.outputs["InstanceLogGroupPrefix"]["Value"])
    assert prefix == "/buildkite/ci"
    assert created == {name.replace("{log_group_prefix}", prefix) for name in LOG_GROUPS}


def test_log_files_the_scripts_write_are_shipped():
    shipped = {
        entry["file_path"]
        for entry in json.loads(CLOUDWATCH_CONFIG.read_text(encoding="utf-8"))["logs"][
            "logs_collected"
        ]["files"]["collect_list"]
    }
    written = set()
    for path in [*(CONF_DIR / "systemd").iterdir(), *(CONF_DIR / "bin").iterdir()]:
        text = path.read_text(encoding="utf-8")
        written |= set(re.findall(r"append:(/var/log/[\w.-]+)", text))
        written |= {f"/var/log/{name}" for name in re.findall(r"BK_LOG_DIR/([\w.-]+)", text)}
    rsyslog = (CONF_DIR / "rsyslog" / "30-docker-daemon.conf").read_text(encoding="utf-8")
    written |= set(re.findall(r"file=\"(/var/log/[\w.-]+)\"", rsyslog))
    assert written, "found no log files"
    assert written <= shipped, written - shipped


# --- the quick start runs the same install steps (packer/quick-start) ---------------------------
def listed_steps() -> list[str]:
    """scripts/install-steps.txt, comments and the quick start's "&" marks dropped."""
    lines = (SCRIPTS_DIR / "install-steps.txt").read_text(encoding="utf-8").splitlines()
    steps = [line.split("#", 1)[0].strip() for line in lines]
    return [step.removesuffix("&").strip() for step in steps if step]


def test_the_image_build_and_the_quick_start_run_the_same_steps_in_the_same_order(build):
    (installer,) = [item for item in provisioners(build, "shell") if "scripts" in item]
    scripts = [local_path(path).name for path in unwrap(installer["scripts"])]
    # cleanup.sh is bake-only: it wipes host keys and cloud-init's record of the instance.
    assert scripts[-1] == "cleanup.sh"
    assert scripts[:-1] == listed_steps()
    assert len(listed_steps()) >= 7


def test_the_quick_start_gives_the_steps_what_the_image_build_gives_them(build):
    (installer,) = [item for item in provisioners(build, "shell") if "scripts" in item]
    passed = {entry.split("=", 1)[0] for entry in unwrap(installer["environment_vars"])}
    result = subprocess.run(
        [
            "bash",
            "-c",
            '. "$0" && pinned_environment "$1" x86_64',
            str(SCRIPTS_DIR / "build-lib.sh"),
            str(VERSIONS),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    values = dict(line.split("=", 1) for line in result.stdout.splitlines())
    # bk-quick-start-install sets the other three itself.
    assert set(values) | {"BK_ARCH", "BK_BUILD_DIR", "BK_ACCEPT_PUBLISHED_CHECKSUMS"} == passed
    assert values["BUILDKITE_AGENT_VERSION"] == "3.137.0"
    assert values["PLUGIN_ECR_REF"] == "v2.11.0"
    assert re.fullmatch(r"[0-9a-f]{40}", values["PLUGIN_ECR_COMMIT"])
    assert values["DOCKER_BINFMT_IMAGE"].startswith("tonistiigi/binfmt:")
    assert "@sha256:" in values["DOCKER_BINFMT_IMAGE"]


REFERENCE_MINIMUMS = {
    "buildkite_agent": "3.137.0",
    "docker_buildx": "0.34.1",
    "docker_compose": "5.1.4",
    "git_lfs": "3.7.1",
    "s3secrets_helper": "2.8.0",
    "plugin_ecr": "v2.11.0",
}


@pytest.mark.parametrize(("name", "minimum"), sorted(REFERENCE_MINIMUMS.items()))
def test_versions_are_at_least_the_reference_stacks(versions, name, minimum):
    def parts(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.removeprefix("v").split("."))

    assert parts(versions_locals(versions)["versions"][name]) >= parts(minimum)


def test_plugin_commits_are_pinned(versions):
    """The plugins are git tags, verified by commit: pinned even for the quick start."""
    checksums = versions_locals(versions)["checksums"]
    for plugin in PLUGINS:
        assert re.fullmatch(r"[0-9a-f]{40}", checksums[f"{plugin}_commit"]), plugin


# Commands the reference stack's own instance checks expect, plus the build tools users rely on.
REFERENCE_TOOLS = (
    "aws",
    "curl",
    "dig",
    "git",
    "git-lfs",
    "lsof",
    "make",
    "wget",
    "zip",
    "unzip",
    "pigz",
    "mdadm",
    "nvme",
    "gcc",
    "python3",
    "pip3",
    "docker-credential-ecr-login",
)


def test_the_image_has_the_tools_the_reference_stack_has():
    packages = (SCRIPTS_DIR / "install-packages.sh").read_text(encoding="utf-8")
    (checked,) = re.findall(r"for command in ([^;]+); do", packages.replace("\\\n", " "))
    checked_commands = set(checked.split())
    # git-lfs is a pinned release (install-git-lfs.sh); the rest are checked after dnf.
    assert set(REFERENCE_TOOLS) - {"git-lfs"} <= checked_commands
    assert "git lfs version" in (SCRIPTS_DIR / "install-git-lfs.sh").read_text(encoding="utf-8")


def test_the_image_checks_for_pgrep_which_the_lifecycle_handler_needs():
    """bk-lifecycle-handler sees a running job as a child of the agent's process (pgrep)."""
    handler = (CONF_DIR / "bin" / "bk-lifecycle-handler").read_text(encoding="utf-8")
    assert "pgrep --parent" in handler
    packages = (SCRIPTS_DIR / "install-packages.sh").read_text(encoding="utf-8")
    (checked,) = re.findall(r"for command in ([^;]+); do", packages.replace("\\\n", " "))
    assert "pgrep" in checked.split()
    assert re.search(r"^\s+procps-ng$", packages, re.M)


def test_qemu_binfmt_runs_the_pinned_image_after_docker_starts():
    unit = (CONF_DIR / "systemd" / "bk-docker-binfmt.service").read_text(encoding="utf-8")
    assert "EnvironmentFile=/etc/bk-docker-binfmt.env" in unit
    assert re.search(
        r"^ExecStart=/usr/bin/docker run .*\$\{DOCKER_BINFMT_IMAGE\} --install all$", unit, re.M
    )
    assert re.search(r"^After=docker.service$", unit, re.M)
    writer = (SCRIPTS_DIR / "install-docker-plugins.sh").read_text(encoding="utf-8")
    assert "DOCKER_BINFMT_IMAGE=%s" in writer
    assert "/etc/bk-docker-binfmt.env" in writer
    assert "bk-docker-binfmt.service" in (SCRIPTS_DIR / "install-instance-config.sh").read_text(
        encoding="utf-8"
    )


def test_the_agent_loads_the_instance_features_environment_before_the_users():
    unit = (CONF_DIR / "systemd" / "buildkite-agent.service").read_text(encoding="utf-8")
    files = re.findall(r"^EnvironmentFile=-(\S+)$", unit, re.M)
    assert files == ["/etc/buildkite-agent/features.env", "/etc/buildkite-agent/env"]
