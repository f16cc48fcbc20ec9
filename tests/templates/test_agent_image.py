"""Which image the agents boot, and the quick start that needs none.

For every combination of ImageId, ImageIdParameter, an AgentImages row present or absent, and
each architecture: the launch template's image, the AgentImage parameter, the quick start's user
data block and the instance role's access to the install assets, and the AgentImageSource
output. Plus the pieces the quick start relies on: a mapping row for every region, the user
data kept under EC2's 16 KB, the root's layer. (The install steps shared with the AMI build are
held equal in tests/packer/test_packer_template.py.)
"""

from __future__ import annotations

import base64
import copy
import itertools
import subprocess
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from tools import cfn_template
from tools.cfn_template import Rendered, load_template, render
from tools.testing.fleet_stack import FLEET_PARAMETERS, INSTALL_ASSETS_LAYER

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "nested" / "fleet.yaml"
PACKER = ROOT / "packer"
SNIPPET = PACKER / "quick-start" / "user-data.sh"
LAYER = INSTALL_ASSETS_LAYER
WIRED = FLEET_PARAMETERS
PUBLIC_AL2023 = "{{resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-%s}}"
MAPPING_KEYS = {"x86_64": "x8664", "arm64": "arm64"}
USER_DATA_LIMIT = 16 * 1024


@pytest.fixture(scope="module")
def fleet() -> dict[str, Any]:
    return load_template(FLEET)


def with_row(template: dict[str, Any], region: str, **images: str) -> dict[str, Any]:
    """The template with AgentImages[region] set (missing architectures stay `none`)."""
    changed = copy.deepcopy(template)
    row = changed["Mappings"]["AgentImages"][region]
    row.update(images)
    return changed


def launch_data(stack: Rendered) -> dict[str, Any]:
    return stack.resources["AgentLaunchTemplate"]["Properties"]["LaunchTemplateData"]


def image(stack: Rendered) -> str:
    return stack.evaluate(launch_data(stack)["ImageId"])


def user_data(stack: Rendered) -> str:
    return stack.evaluate(launch_data(stack)["UserData"]["Fn::Base64"])


def statements(stack: Rendered) -> dict[str, dict[str, Any]]:
    (policy,) = stack.resources["InstanceRole"]["Properties"]["Policies"]
    return {s["Sid"]: stack.evaluate(s) for s in policy["PolicyDocument"]["Statement"]}


def quick_start_block() -> str:
    return SNIPPET.read_text(encoding="utf-8").replace("${InstallAssetsLayerArn}", LAYER)


# --- the image, for every combination ------------------------------------------------------------
CASES = list(
    itertools.product(
        ["", "ami-0123456789abcdef0"],  # ImageId
        ["", "/my/agent-ami"],  # ImageIdParameter
        [False, True],  # a built image in AgentImages for the region and architecture
        ["x86_64", "arm64"],
    )
)


@pytest.mark.parametrize(("image_id", "image_parameter", "mapped", "arch"), CASES)
def test_image_choice(fleet, image_id, image_parameter, mapped, arch):
    built = {"x86_64": "ami-0aaaaaaaaaaaaaaa1", "arm64": "ami-0bbbbbbbbbbbbbbb2"}
    template = (
        with_row(fleet, "us-east-1", **{MAPPING_KEYS[arch]: built[arch]}) if mapped else fleet
    )
    stack = render(
        template,
        {
            **WIRED,
            "ImageId": image_id,
            "ImageIdParameter": image_parameter,
            "InstanceArchitecture": arch,
        },
    )
    quick_start = not image_id and not image_parameter and not mapped
    if image_id:
        expected, source = image_id, f"ImageId {image_id} (baked agent image)"
    elif image_parameter:
        expected = "{{resolve:ssm:/my/agent-ami}}"
        source = "ImageIdParameter /my/agent-ami (baked agent image)"
    elif mapped:
        expected, source = (
            {"Fn::GetAtt": ["AgentImage", "Value"]},
            "AgentImages mapping (baked agent image)",
        )
    else:
        expected = PUBLIC_AL2023 % arch
        source = f"quick start: public Amazon Linux 2023 ({arch}), agent installed at first boot"
    if isinstance(expected, dict):
        assert launch_data(stack)["ImageId"] == expected
        assert stack.evaluate(stack.resources["AgentImage"]["Properties"]["Value"]) == built[arch]
    else:
        assert image(stack) == expected
        assert "AgentImage" not in stack.resources
    assert stack.evaluate(stack.outputs["AgentImageSource"]["Value"]).startswith(source)
    assert (quick_start_block() in user_data(stack)) is quick_start
    assert ("InstallAssets" in statements(stack)) is quick_start


def test_a_built_image_for_the_other_architecture_does_not_count(fleet):
    template = with_row(fleet, "us-east-1", arm64="ami-0bbbbbbbbbbbbbbb2")
    stack = render(template, {**WIRED, "InstanceArchitecture": "x86_64"})
    assert image(stack) == PUBLIC_AL2023 % "x86_64"
    arm = render(template, {**WIRED, "InstanceArchitecture": "arm64"})
    assert launch_data(arm)["ImageId"] == {"Fn::GetAtt": ["AgentImage", "Value"]}


@pytest.mark.parametrize("region", ["eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1"])
def test_the_stack_region_picks_the_row(fleet, monkeypatch, region):
    monkeypatch.setitem(cfn_template.PSEUDO_PARAMETERS, "AWS::Region", region)
    template = with_row(fleet, "us-east-1", x8664="ami-0aaaaaaaaaaaaaaa1")
    assert image(render(template, WIRED)) == PUBLIC_AL2023 % "x86_64"
    built_here = with_row(fleet, region, x8664="ami-0aaaaaaaaaaaaaaa1")
    assert "AgentImage" in render(built_here, WIRED).resources


def test_every_region_has_a_mapping_row(fleet):
    """The quick-start conditions read the stack region's row; a missing row fails the deploy."""
    session = botocore.session.get_session()
    regions = {
        region
        for partition in ("aws", "aws-cn", "aws-us-gov")
        for region in session.get_available_regions("ec2", partition)
    }
    assert len(regions) > 30
    assert regions <= set(fleet["Mappings"]["AgentImages"])


# --- the default deploy: quick start, and the install assets are all the role may read ----------
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_default_deploy_boots_public_al2023_and_reads_only_its_install_assets(fleet, arch):
    stack = render(fleet, {**WIRED, "InstanceArchitecture": arch})
    assert image(stack) == PUBLIC_AL2023 % arch
    by_sid = statements(stack)
    assert by_sid["InstallAssets"] == {
        "Sid": "InstallAssets",
        "Effect": "Allow",
        "Action": "lambda:GetLayerVersion",
        "Resource": LAYER,
    }
    # Nothing else in the role reaches Lambda or the layer.
    others = [s for sid, s in by_sid.items() if sid != "InstallAssets"]
    assert not [s for s in others if "lambda" in str(s["Action"]) or LAYER in str(s)]
    script = user_data(stack)
    assert script.index("export BUILDKITE_QUEUE=") < script.index(quick_start_block())
    assert script.index(quick_start_block()) < script.index("exec /usr/local/bin/bk-install")
    assert f"--arn '{LAYER}'" in script


def test_the_template_carries_the_user_data_block_verbatim(fleet):
    quick_start = fleet["Resources"]["AgentLaunchTemplate"]["Properties"]["LaunchTemplateData"][
        "UserData"
    ]["Fn::Base64"]["Fn::Sub"][1]["QuickStartInstall"]["Fn::If"]
    assert quick_start[0] == "UseQuickStartImage"
    assert quick_start[1] == {"Fn::Sub": SNIPPET.read_text(encoding="utf-8")}
    assert quick_start[2] == ""


def test_user_data_stays_under_the_ec2_limit_with_the_longest_values(fleet):
    parameters = fleet["Parameters"]
    longest = {
        name: "a" * 256
        for name, spec in parameters.items()
        if spec.get("Type") == "String"
        and "AllowedValues" not in spec
        and "AllowedPattern" not in spec
    }
    longest.update(
        BuildkiteAgentTags="k=" + "v" * 1000,
        BootstrapScriptUrl="s3://" + "b" * 500,
        AgentEnvFileUrl="s3://" + "e" * 500,
        AgentTokenParameterPath="/" + "t" * 1000,
        GitMirrorSeedBucket="b" * 63,
        BuildkiteAgentEnableGitMirrors="true",
    )
    stack = render(fleet, {**WIRED, **longest})
    encoded = base64.b64encode(user_data(stack).encode())
    assert len(encoded) < USER_DATA_LIMIT, len(encoded)


# --- the root: the layer travels with every deploy route ----------------------------------------
def test_root_ships_the_install_assets_as_a_layer_and_hands_its_version_to_the_fleet(root_template):
    layer = root_template["Resources"]["InstallAssetsLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"] == "packer/"
    fleet = root_template["Resources"]["Fleet"]["Properties"]["Parameters"]
    assert fleet["InstallAssetsLayerArn"] == {"Ref": "InstallAssetsLayer"}
    assert root_template["Outputs"]["AgentImageSource"]["Value"] == {
        "Fn::GetAtt": ["Fleet", "Outputs.AgentImageSource"]
    }


def test_the_layer_build_target_exists_for_sam(tmp_path):
    result = subprocess.run(
        [
            "make",
            "--silent",
            "-f",
            str(PACKER / "Makefile"),
            "build-InstallAssetsLayer",
            f"ARTIFACTS_DIR={tmp_path}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "quick-start" / "bk-quick-start-install").is_file()
    assert (tmp_path / "build-lib.sh").is_file()
    assert not (tmp_path / "fill_ami_mappings.py").exists()


@pytest.mark.parametrize(
    ("instance_types", "arch"),
    [("t3.large", "x86_64"), ("m7g.large,c7g.large", "arm64"), ("c6gd.xlarge", "arm64")],
)
def test_the_quick_start_infers_the_architecture_from_the_first_instance_type(
    fleet, instance_types, arch
):
    """InstanceArchitecture left empty (the default): a Graviton fleet boots the arm64 image."""
    stack = render(fleet, {**WIRED, "InstanceTypes": instance_types})
    assert image(stack) == PUBLIC_AL2023 % arch
    assert f"public Amazon Linux 2023 ({arch})" in stack.evaluate(
        stack.outputs["AgentImageSource"]["Value"]
    )
