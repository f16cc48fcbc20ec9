"""The instance-feature parameters travel from the root to the instance.

Each is declared by the root (same type, default and allowed values as the fleet stack, in the
console's "Agent instance" group), passed to the fleet stack, and exported by the user data as
the boot setting the instance scripts read (packer/boot-settings.txt).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tools.cfn_template import Rendered, load_template, render
from tools.testing.fleet_stack import FLEET_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
WIRED = FLEET_PARAMETERS

# Parameter -> (boot setting, a value other than the default, the reference's default).
FEATURES = {
    "BuildkiteAgentRelease": ("BUILDKITE_AGENT_RELEASE", "beta", "stable"),
    "EnableInstanceStorage": ("BUILDKITE_ENABLE_INSTANCE_STORAGE", "true", "false"),
    "MountTmpfsAtTmp": ("BUILDKITE_MOUNT_TMPFS_AT_TMP", "false", "true"),
    "EnableDockerUserNamespaceRemap": ("BUILDKITE_DOCKER_USERNS_REMAP", "false", "true"),
    "DockerNetworkingProtocol": ("BUILDKITE_DOCKER_NETWORKING_PROTOCOL", "dualstack", "ipv4"),
    "DockerIPv4AddressPool1": (
        "BUILDKITE_DOCKER_IPV4_ADDRESS_POOL_1",
        "10.10.0.0/16",
        "172.17.0.0/12",
    ),
    "DockerIPv4AddressPool2": (
        "BUILDKITE_DOCKER_IPV4_ADDRESS_POOL_2",
        "10.11.0.0/16",
        "192.168.0.0/16",
    ),
    "DockerIPv6AddressPool": (
        "BUILDKITE_DOCKER_IPV6_ADDRESS_POOL",
        "fd00:1::/104",
        "2001:db8:2::/104",
    ),
    "DockerFixedCidrV4": ("BUILDKITE_DOCKER_FIXED_CIDR_V4", "10.10.1.0/24", ""),
    "DockerFixedCidrV6": ("BUILDKITE_DOCKER_FIXED_CIDR_V6", "fd00:2::/64", "2001:db8:1::/64"),
    "DockerPruneUntil": ("BUILDKITE_DOCKER_PRUNE_UNTIL", "1h30m", "4h"),
    "DockerBuilderPruneEnabled": ("BUILDKITE_DOCKER_BUILDER_PRUNE_ENABLED", "true", "false"),
    "EnablePreExitDiskCleanup": ("BUILDKITE_ENABLE_PRE_EXIT_DISK_CLEANUP", "true", "false"),
    "BuildkiteTerminateInstanceOnDiskFull": (
        "BUILDKITE_TERMINATE_INSTANCE_ON_DISK_FULL",
        "true",
        "false",
    ),
    "BuildkitePurgeBuildsOnDiskFull": ("BUILDKITE_PURGE_BUILDS_ON_DISK_FULL", "true", "false"),
    "BuildkiteAgentEnableGitMirrors": ("BUILDKITE_AGENT_ENABLE_GIT_MIRRORS", "true", "false"),
    "EnableECRCredentialHelper": ("BUILDKITE_ECR_CREDENTIAL_HELPER_ENABLED", "true", "false"),
    # Our own names, for the thresholds the stack used to hard-code.
    "DiskMinFreeGB": ("BUILDKITE_DISK_MIN_FREE_GB", "20", "5"),
    "DiskMinFreeInodes": ("BUILDKITE_DISK_MIN_FREE_INODES", "500000", "250000"),
}
EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)='([^']*)'$", re.M)


@pytest.fixture(scope="module")
def fleet() -> dict[str, Any]:
    return load_template(ROOT / "nested" / "fleet.yaml")


def exports(stack: Rendered) -> dict[str, str]:
    launch = stack.resources["AgentLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    return dict(EXPORT.findall(stack.evaluate(launch["UserData"]["Fn::Base64"])))


def statements(stack: Rendered) -> dict[str, dict[str, Any]]:
    (policy,) = stack.resources["InstanceRole"]["Properties"]["Policies"]
    return {s["Sid"]: stack.evaluate(s) for s in policy["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_the_root_declares_groups_and_passes_the_parameter(root_template, fleet, name):
    root_spec = root_template["Parameters"][name]
    fleet_spec = fleet["Parameters"][name]
    for key in ("Type", "Default", "AllowedValues", "AllowedPattern", "MinValue"):
        assert root_spec.get(key) == fleet_spec.get(key), key
    assert str(root_spec["Default"]) == FEATURES[name][2]
    assert len(root_spec["Description"]) > 20
    groups = root_template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (group,) = [g for g in groups if name in g["Parameters"]]
    assert group["Label"]["default"] == "Agent instance"
    passed = root_template["Resources"]["Fleet"]["Properties"]["Parameters"]
    assert passed[name] == {"Ref": name}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_the_user_data_hands_the_value_to_the_instance(fleet, name):
    setting, value, default = FEATURES[name]
    assert exports(render(fleet, WIRED))[setting] == default
    assert exports(render(fleet, {**WIRED, name: value}))[setting] == value


def test_every_feature_setting_is_an_agreed_boot_setting():
    listed = {
        line.split()[0]
        for line in (ROOT / "packer" / "boot-settings.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {setting for setting, _, _ in FEATURES.values()} | {
        "BUILDKITE_GIT_MIRROR_SEED_BUCKET"
    } <= listed


@pytest.mark.parametrize(
    ("pattern_of", "good", "bad"),
    [
        ("DockerIPv4AddressPool1", "10.0.0.0/8", "10.0.0.0/33"),
        ("DockerIPv4AddressPool1", "172.17.0.0/12", "300.1.1.1/8"),
        ("DockerFixedCidrV4", "", "10.0.0.0"),
        ("DockerIPv6AddressPool", "fd00::/48", "fd00::/129"),
        ("DockerPruneUntil", "1h30m", "4 hours"),
        ("DockerPruneUntil", "7d", ""),
        ("GitMirrorSeedBucket", "", "My_Bucket"),
    ],
)
def test_parameter_patterns(fleet, pattern_of, good, bad):
    pattern = fleet["Parameters"][pattern_of]["AllowedPattern"]
    assert re.fullmatch(pattern, good)
    assert not re.fullmatch(pattern, bad)


def test_git_mirror_seeds_are_readable_only_when_used_and_only_under_their_prefix(fleet):
    assert (
        exports(render(fleet, {**WIRED, "GitMirrorSeedBucket": "seeds"}))[
            "BUILDKITE_GIT_MIRROR_SEED_BUCKET"
        ]
        == ""
    )
    assert "GitMirrorSeedsRead" not in statements(
        render(fleet, {**WIRED, "GitMirrorSeedBucket": "seeds"})
    )
    stack = render(
        fleet, {**WIRED, "GitMirrorSeedBucket": "seeds", "BuildkiteAgentEnableGitMirrors": "true"}
    )
    assert exports(stack)["BUILDKITE_GIT_MIRROR_SEED_BUCKET"] == "seeds"
    by_sid = statements(stack)
    assert by_sid["GitMirrorSeedsRead"]["Action"] == "s3:GetObject"
    assert by_sid["GitMirrorSeedsRead"]["Resource"] == "arn:aws:s3:::seeds/git-mirror-seeds/*"
    assert by_sid["GitMirrorSeedsList"]["Action"] == "s3:ListBucket"
    assert by_sid["GitMirrorSeedsList"]["Resource"] == "arn:aws:s3:::seeds"
    assert by_sid["GitMirrorSeedsList"]["Condition"] == {
        "StringLike": {"s3:prefix": "git-mirror-seeds/*"}
    }
