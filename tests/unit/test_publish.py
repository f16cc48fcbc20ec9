"""tools.publish: the publish variants, the dry run, and the order of a real run.

A small project written by the fixture (a root with a function and two nested applications)
exercises the tool; the project's own templates are dry-run too, and every produced template
must pass cfn-lint and `sam validate --lint` (both offline). A real run is driven through a fake
`sam` executable that records its arguments, so no AWS account is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from tools.cfn_template import load_template
from tools.publish.aws import caller_account, share_publicly
from tools.publish.cli import PLACEHOLDER_ACCOUNT_ID, main

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REGION = "eu-west-1"
VERSION = "2.3.4"
ACCOUNT = "111122223333"
NESTED = "AWS::Serverless::Application"

METADATA = """\
Metadata:
  AWS::ServerlessRepo::Application:
    Name: {name}
    Description: Example {name}.
    Author: example-author
    SpdxLicenseId: MIT
    LicenseUrl: {up}LICENSE
    ReadmeUrl: {up}README.md
    HomePageUrl: {url}
    SourceCodeUrl: {url}
    SemanticVersion: "0.0.1"
"""
ROOT_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
{metadata}
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      Handler: handler.lambda_handler
      CodeUri: src/
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
  Alpha:
    Type: AWS::Serverless::Application
    Properties:
      Location: nested/alpha.yaml
  Beta:
    Type: AWS::Serverless::Application
    Properties:
      Location: nested/beta.yaml
      Parameters:
        Greeting: !GetAtt Alpha.Outputs.Greeting
"""
CHILD_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: Example child.
{metadata}
Parameters:
  Greeting:
    Type: String
    Default: hello
Resources:
  Handle:
    Type: AWS::CloudFormation::WaitConditionHandle
Outputs:
  Greeting:
    Value: !Ref Greeting
"""


def make_project(path: Path, url: str = "https://example.com/app") -> Path:
    (path / "nested").mkdir(parents=True)
    (path / "src").mkdir()
    (path / "src" / "handler.py").write_text("def lambda_handler(event, context):\n    return 1\n")
    (path / "LICENSE").write_text("MIT License\n")
    (path / "README.md").write_text("# example\n")
    root_metadata = METADATA.format(name="example-app", up="", url=url)
    (path / "template.yaml").write_text(ROOT_TEMPLATE.format(metadata=root_metadata))
    for child in ("alpha", "beta"):
        metadata = METADATA.format(name=f"example-app-{child}", up="../", url=url)
        (path / "nested" / f"{child}.yaml").write_text(CHILD_TEMPLATE.format(metadata=metadata))
    return path


def fake_sam(path: Path) -> Path:
    """A `sam` that logs its argv and writes the outputs the next steps read."""
    script = path / "sam"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, os, shutil, sys
            args = sys.argv[1:]
            with open(os.environ["FAKE_SAM_LOG"], "a") as log:
                log.write(json.dumps(args) + "\\n")
            option = lambda name: args[args.index(name) + 1]
            if os.environ.get("FAKE_SAM_FAIL") and os.environ["FAKE_SAM_FAIL"] in " ".join(args):
                sys.exit(3)
            if args[0] == "build":
                os.makedirs(option("--build-dir"), exist_ok=True)
                shutil.copy(option("--template-file"), option("--build-dir") + "/template.yaml")
            if args[0] == "package":
                shutil.copy(option("--template-file"), option("--output-template-file"))
            """
        )
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def dry_run(project: Path, build_dir: Path, *extra: str) -> int:
    return main(
        [
            "--region", REGION, "--version", VERSION, "--dry-run",
            "--root", str(project), "--build-dir", str(build_dir),
            "--sam", str(project / "no-such-sam"), *extra,
        ]
    )  # fmt: skip


def nested_locations(template: Path) -> dict[str, object]:
    resources = load_template(template)["Resources"]
    return {
        logical_id: resource["Properties"]["Location"]
        for logical_id, resource in resources.items()
        if resource["Type"] == NESTED
    }


def release_metadata(template: Path) -> dict:
    return load_template(template)["Metadata"]["AWS::ServerlessRepo::Application"]


# Dry run ----------------------------------------------------------------------------------
def test_dry_run_writes_a_root_variant_whose_locations_are_application_ids(project, tmp_path):
    build = tmp_path / "build"
    assert dry_run(project, build) == 0
    arn = f"arn:aws:serverlessrepo:{REGION}:{PLACEHOLDER_ACCOUNT_ID}:applications"
    assert nested_locations(build / "template.yaml") == {
        "Alpha": {"ApplicationId": f"{arn}/example-app-alpha", "SemanticVersion": VERSION},
        "Beta": {"ApplicationId": f"{arn}/example-app-beta", "SemanticVersion": VERSION},
    }
    for variant in ("template.yaml", "nested/alpha.yaml", "nested/beta.yaml"):
        assert release_metadata(build / variant)["SemanticVersion"] == VERSION
    # relative paths still reach the project's files from the build folder
    root_variant = load_template(build / "template.yaml")
    code = build / root_variant["Resources"]["Worker"]["Properties"]["CodeUri"]
    assert (code / "handler.py").is_file()
    for variant in ("template.yaml", "nested/alpha.yaml"):
        metadata = release_metadata(build / variant)
        assert ((build / variant).parent / metadata["LicenseUrl"]).resolve() == (
            project / "LICENSE"
        ).resolve()


def test_dry_run_prints_children_before_the_root_and_runs_nothing(project, tmp_path, capsys):
    assert dry_run(project, tmp_path / "build", "--public") == 0
    out = capsys.readouterr().out
    commands = [line.strip() for line in out.splitlines() if "no-such-sam" in line]
    verbs = [(command.split()[1], command) for command in commands]
    assert [verb for verb, _ in verbs] == ["build", *["package", "publish"] * 3]
    published = [command for verb, command in verbs if verb == "publish"]
    assert "nested/alpha.yaml" in published[0]
    assert "nested/beta.yaml" in published[1]
    assert published[2].endswith(f"packaged/template.yaml --semantic-version {VERSION} "
                                 f"--region {REGION}")  # fmt: skip
    assert f"{PLACEHOLDER_ACCOUNT_ID} is a placeholder" in out
    assert out.count("PutApplicationPolicy") == 3


def test_dry_run_makes_no_aws_call(project, tmp_path):
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # any AWS call would fail to connect
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tools.publish", "--region", REGION, "--version", VERSION,
         "--dry-run", "--root", str(project), "--build-dir", str(tmp_path / "build"),
         "--sam", str(tmp_path / "no-such-sam")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "build" / "template.yaml").is_file()


def _lint(root_variant: Path, nested_variants: list[Path]) -> None:
    """cfn-lint over every variant and `sam validate --lint` (offline) on the SAM one, side by
    side. For the plain CloudFormation nested variants `sam validate --lint` runs the same
    cfn-lint, so it is not repeated for them."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    commands = [
        [str(BIN / "cfn-lint"), str(root_variant), *map(str, nested_variants)],
        [str(BIN / "sam"), "validate", "--lint", "--template-file", str(root_variant),
         "--region", REGION],
    ]  # fmt: skip
    running = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for command in commands
    ]
    for command, process in zip(commands, running, strict=True):
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"{' '.join(command)}\n{output}"


def test_every_variant_of_the_example_passes_cfn_lint_and_sam_validate(project, tmp_path):
    build = tmp_path / "build"
    assert dry_run(project, build) == 0
    _lint(
        build / "template.yaml", [build / "nested" / "alpha.yaml", build / "nested" / "beta.yaml"]
    )


def test_the_projects_publish_variants_reference_application_ids_and_lint_clean(tmp_path):
    build = tmp_path / "build"
    assert dry_run(ROOT, build) == 0
    root = load_template(ROOT / "template.yaml")
    children = {
        logical_id: release_metadata(ROOT / resource["Properties"]["Location"])["Name"]
        for logical_id, resource in root["Resources"].items()
        if resource["Type"] == NESTED and isinstance(resource["Properties"]["Location"], str)
    }
    assert children
    arn = f"arn:aws:serverlessrepo:{REGION}:{PLACEHOLDER_ACCOUNT_ID}:applications"
    assert nested_locations(build / "template.yaml") == {
        logical_id: {"ApplicationId": f"{arn}/{name}", "SemanticVersion": VERSION}
        for logical_id, name in children.items()
    }
    _lint(build / "template.yaml", sorted((build / "nested").glob("*.yaml")))


# Real run (fake sam) ------------------------------------------------------------------------
def real_run(project: Path, tmp_path: Path, monkeypatch, *extra: str, fail: str = "") -> int:
    log = tmp_path / "sam.log"
    monkeypatch.setenv("FAKE_SAM_LOG", str(log))
    monkeypatch.setenv("FAKE_SAM_FAIL", fail)
    return main(
        [
            "--region", REGION, "--version", VERSION, "--root", str(project),
            "--build-dir", str(tmp_path / "build"), "--bucket", "artifact-bucket",
            "--account-id", ACCOUNT, "--sam", str(fake_sam(tmp_path)), *extra,
        ]
    )  # fmt: skip


def sam_calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "sam.log").read_text().splitlines()]


def test_a_real_run_builds_then_publishes_children_before_the_root(project, tmp_path, monkeypatch):
    assert real_run(project, tmp_path, monkeypatch) == 0
    calls = sam_calls(tmp_path)
    assert [call[0] for call in calls] == ["build", *["package", "publish"] * 3]
    assert calls[0][calls[0].index("--template-file") + 1] == str(project / "template.yaml")
    packaged = [call[call.index("--template-file") + 1] for call in calls if call[0] == "package"]
    assert [Path(p).relative_to(tmp_path / "build").as_posix() for p in packaged] == [
        "nested/alpha.yaml",
        "nested/beta.yaml",
        "template.yaml",
    ]
    for call in calls[1:]:
        assert call[call.index("--region") + 1] == REGION
        if call[0] == "package":
            assert call[call.index("--s3-bucket") + 1] == "artifact-bucket"
        else:
            assert call[call.index("--semantic-version") + 1] == VERSION
    # the root that was packaged was rewritten from the build output, with ApplicationIds
    arn = f"arn:aws:serverlessrepo:{REGION}:{ACCOUNT}:applications"
    assert nested_locations(tmp_path / "build" / "packaged" / "template.yaml") == {
        "Alpha": {"ApplicationId": f"{arn}/example-app-alpha", "SemanticVersion": VERSION},
        "Beta": {"ApplicationId": f"{arn}/example-app-beta", "SemanticVersion": VERSION},
    }


def test_a_failed_child_publish_stops_before_the_root(project, tmp_path, monkeypatch, capsys):
    beta = tmp_path / "build" / "packaged" / "nested" / "beta.yaml"
    assert real_run(project, tmp_path, monkeypatch, fail=f"publish --template {beta}") == 1
    calls = sam_calls(tmp_path)
    assert calls[-1][0] == "publish"
    assert "packaged/nested/beta.yaml" in " ".join(calls[-1])
    assert not any("packaged/template.yaml" in " ".join(call) for call in calls)
    assert "step failed: publish example-app-beta" in capsys.readouterr().err


def test_a_failed_build_publishes_nothing(project, tmp_path, monkeypatch):
    assert real_run(project, tmp_path, monkeypatch, fail="build") == 1
    assert [call[0] for call in sam_calls(tmp_path)] == ["build"]


def test_a_real_run_needs_a_bucket(project, tmp_path, capsys):
    code = main(
        ["--region", REGION, "--version", VERSION, "--root", str(project),
         "--account-id", ACCOUNT, "--build-dir", str(tmp_path / "build")]
    )  # fmt: skip
    assert code == 2
    assert "--bucket is required" in capsys.readouterr().err


def test_placeholder_urls_stop_a_real_run_until_the_config_sets_them(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project", url="https://github.com/OWNER/example")
    assert real_run(project, tmp_path, monkeypatch) == 2
    assert not (tmp_path / "sam.log").exists()
    config = tmp_path / "publisher.toml"
    config.write_text(
        'author = "someone"\nhome_page_url = "https://example.org/x"\n'
        'source_code_url = "https://example.org/x/src"\n'
    )
    assert real_run(project, tmp_path, monkeypatch, "--config", str(config)) == 0
    metadata = release_metadata(tmp_path / "build" / "packaged" / "nested" / "beta.yaml")
    assert (metadata["Author"], metadata["HomePageUrl"]) == ("someone", "https://example.org/x")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--version", "1.2", "not a semantic version"),
        ("--region", "Europe", "not a region name"),
        ("--account-id", "12345", "12 digits"),
    ],
)
def test_bad_options_are_refused(project, tmp_path, capsys, option, value, message):
    args = {"--region": REGION, "--version": VERSION, "--account-id": ACCOUNT, option: value}
    argv = [item for pair in args.items() for item in pair]
    code = main([*argv, "--dry-run", "--root", str(project), "--build-dir", str(tmp_path / "b")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_folder_the_tool_did_not_make_is_never_emptied(project, tmp_path, capsys):
    build = tmp_path / "mine"
    build.mkdir()
    (build / "keep.txt").write_text("precious")
    assert dry_run(project, build) == 2
    assert (build / "keep.txt").read_text() == "precious"
    assert "was not made by tools.publish" in capsys.readouterr().err
    assert dry_run(project, tmp_path / "fresh") == 0
    assert dry_run(project, tmp_path / "fresh") == 0  # its own folder is refreshed


def test_missing_metadata_names_the_template(tmp_path, capsys):
    project = make_project(tmp_path / "project")
    child = project / "nested" / "beta.yaml"
    child.write_text(child.read_text().replace("AWS::ServerlessRepo::Application", "Other"))
    assert dry_run(project, tmp_path / "build") == 2
    assert "beta.yaml: Metadata.AWS::ServerlessRepo::Application.Name is missing" in (
        capsys.readouterr().err
    )


# The two AWS calls -------------------------------------------------------------------------
def test_share_publicly_lets_everyone_deploy_each_application():
    client = boto3.client("serverlessrepo", region_name=REGION)
    ids = [f"arn:aws:serverlessrepo:{REGION}:{ACCOUNT}:applications/{n}" for n in ("a", "root")]
    with Stubber(client) as stub:
        for application_id in ids:
            stub.add_response(
                "put_application_policy",
                {"Statements": [{"Principals": ["*"], "Actions": ["Deploy"]}]},
                {
                    "ApplicationId": application_id,
                    "Statements": [{"Principals": ["*"], "Actions": ["Deploy"]}],
                },
            )
        share_publicly(client, ids)
        stub.assert_no_pending_responses()


def test_caller_account_asks_sts():
    client = boto3.client("sts", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response(
            "get_caller_identity",
            {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/x", "UserId": "x"},
        )
        assert caller_account(client) == ACCOUNT


def test_a_config_with_unknown_keys_is_refused(project, tmp_path, capsys):
    config = tmp_path / "publisher.toml"
    config.write_text('author = "someone"\nlicense = "GPL"\n')
    assert dry_run(project, tmp_path / "build", "--config", str(config)) == 2
    assert "unknown keys license" in capsys.readouterr().err
