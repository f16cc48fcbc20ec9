"""The Serverless Application Repository (SAR) compatibility check.

The first part runs the check over the application's own templates as packaged (the root after an
offline SAM transform, the nested templates as they are) and asserts it covered every template
and classified every resource type, that nothing SAR blocks is present (IAM patterns, unsafe event
sources, unpublishable nested Locations, missing or invalid ServerlessRepo metadata), and that
docs/sar-compatibility.md is the current report. Types that block or may block a *public* release
are facts about SAR, not mistakes: they are reported by name (a pytest warning and the page).

The second part proves each rule on small templates written for the purpose.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import pytest

from tools.cfn_template import load_template
from tools.sar_check import check_templates, default_templates, load_catalog, render_markdown
from tools.sar_check.__main__ import main as sar_check_main
from tools.sar_check.catalog import (
    CATALOG_PATH,
    KNOWN_UNSUPPORTED,
    RESOURCE_STATUSES,
    UNKNOWN,
    CatalogError,
    parse_catalog,
)
from tools.sar_check.rules import METADATA_KEY

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [path.relative_to(ROOT).as_posix() for path in default_templates(ROOT)]
REPORT_PAGE = ROOT / "docs" / "sar-compatibility.md"


class SarReleaseBlockers(UserWarning):
    """Resource types that block (or may block) a public SAR release, reported by name."""


@pytest.fixture(scope="module")
def report():
    return check_templates(default_templates(ROOT), ROOT)


def _template_report(report, path: str):
    return next(template for template in report.templates if template.path == path)


def _describe(findings) -> str:
    return "\n".join(f"{f.resource}: {f.message}" for f in findings)


# The application's templates ------------------------------------------------------------------
def test_the_check_covers_the_root_and_every_nested_template(report):
    root = load_template(ROOT / "template.yaml")
    nested_by_root = {
        (ROOT / resource["Properties"]["Location"]).resolve().relative_to(ROOT).as_posix()
        for resource in root["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Application"
        and isinstance(resource["Properties"].get("Location"), str)
    }
    on_disk = {path.relative_to(ROOT).as_posix() for path in (ROOT / "nested").glob("*.yaml")}
    checked = [template.path for template in report.templates]
    assert checked[0] == "template.yaml"
    assert set(checked) == {"template.yaml"} | nested_by_root | on_disk
    assert len(checked) == len(set(checked))


@pytest.mark.parametrize("path", TEMPLATES)
def test_every_resource_type_is_classified_with_a_source(report, path):
    template = _template_report(report, path)
    written = {resource["Type"] for resource in load_template(ROOT / path)["Resources"].values()}
    assert set(template.submitted_types) == written
    classified = {*template.submitted_types, *template.generated_types}
    assert set(template.classifications) == classified
    unclassified = sorted(
        name
        for name, verdict in template.classifications.items()
        if verdict.status not in RESOURCE_STATUSES
    )
    assert not unclassified, (
        f"{path}: add these types to {CATALOG_PATH.relative_to(ROOT)} with a source: {unclassified}"
    )
    assert all(verdict.sources for verdict in template.classifications.values())


def test_the_root_is_checked_after_the_sam_transform(report):
    root = _template_report(report, "template.yaml")
    assert root.transformed
    written = load_template(ROOT / "template.yaml")["Resources"]
    nested = sorted(
        logical_id
        for logical_id, resource in written.items()
        if resource["Type"] == "AWS::Serverless::Application"
    )
    functions = sorted(
        logical_id
        for logical_id, resource in written.items()
        if resource["Type"] == "AWS::Serverless::Function"
    )
    assert root.generated_types.get("AWS::CloudFormation::Stack", []) == nested
    assert sorted(set(root.generated_types.get("AWS::Lambda::Function", []))) == functions
    assert all(
        not template.generated_types for template in report.templates if not template.transformed
    )


def test_types_that_block_a_public_release_are_reported_by_name(report):
    blockers = report.release_blockers()
    expected = {
        resource_type
        for template in report.templates
        for resource_type in template.submitted_types
        if template.classifications[resource_type].status in (KNOWN_UNSUPPORTED, UNKNOWN)
    }
    reported = {
        name for status in (KNOWN_UNSUPPORTED, UNKNOWN) for name in blockers.get(status, {})
    }
    assert reported == expected
    page = render_markdown(report)
    verdict = page.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    for resource_type in sorted(expected):
        assert f"`{resource_type}`" in verdict
    if expected:
        lines = [
            f"{status}: {resource_type} ({', '.join(paths)})"
            for status, types in sorted(blockers.items())
            for resource_type, paths in sorted(types.items())
        ]
        warnings.warn(SarReleaseBlockers("\n".join(lines)), stacklevel=1)


@pytest.mark.parametrize("path", TEMPLATES)
def test_no_iam_pattern_that_sar_blocks(report, path):
    findings = _template_report(report, path).errors("iam")
    assert not findings, _describe(findings)


@pytest.mark.parametrize("path", TEMPLATES)
def test_event_sources_are_sar_safe(report, path):
    findings = _template_report(report, path).errors("event-source")
    assert not findings, _describe(findings)


@pytest.mark.parametrize("path", TEMPLATES)
def test_nested_application_locations_are_publishable(report, path):
    findings = _template_report(report, path).errors("nested-application")
    assert not findings, _describe(findings)


@pytest.mark.parametrize("path", TEMPLATES)
def test_serverless_repo_metadata_is_complete(report, path):
    findings = _template_report(report, path).errors("metadata")
    assert not findings, f"{path}:\n{_describe(findings)}"


def test_every_application_shares_license_author_and_version():
    blocks = {
        path: (load_template(ROOT / path).get("Metadata") or {}).get(METADATA_KEY) or {}
        for path in TEMPLATES
    }
    assert {block.get("SpdxLicenseId") for block in blocks.values()} == {"MIT"}
    for path, block in blocks.items():
        license_file = (ROOT / path).parent / str(block.get("LicenseUrl"))
        assert license_file.resolve() == (ROOT / "LICENSE").resolve(), path
    assert len({block.get("SemanticVersion") for block in blocks.values()}) == 1
    assert len({block.get("Author") for block in blocks.values()}) == 1
    names = [block.get("Name") for block in blocks.values()]
    assert len(set(names)) == len(names)


def test_the_compatibility_page_is_current(report):
    assert REPORT_PAGE.is_file()
    assert REPORT_PAGE.read_text(encoding="utf-8") == render_markdown(report), (
        "docs/sar-compatibility.md is stale: run "
        "`.venv/bin/python -m tools.sar_check --output docs/sar-compatibility.md`"
    )


# The catalog ---------------------------------------------------------------------------------
def test_every_catalog_entry_has_a_status_and_a_cited_source():
    catalog = load_catalog()
    assert catalog.resource_types
    assert catalog.event_sources
    for entry in [*catalog.resource_types.values(), *catalog.event_sources.values()]:
        assert entry["sources"]
        assert set(entry["sources"]) <= catalog.source_ids()
    assert all(source.url.startswith("https://") for source in catalog.sources.values())


def test_the_catalog_records_the_facts_the_issue_gives():
    catalog = load_catalog()
    for absent in (
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::EC2::LaunchTemplate",
        "AWS::EC2::VPC",
        "AWS::EC2::VPCEndpoint",
        "AWS::EC2::InternetGateway",
        "AWS::CloudFormation::Stack",
    ):
        assert catalog.resource_type(absent).status == UNKNOWN, absent
    assert catalog.event_source("ScheduleV2").status == "unsafe"
    assert catalog.event_source("Schedule").status == "safe"
    assert "AWSLambda_FullAccess" in catalog.iam["blocked_managed_policies"]


def test_a_catalog_entry_without_a_source_is_rejected():
    data = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    data["resource_types"]["AWS::Example::Thing"] = {"status": "known-supported", "sources": []}
    with pytest.raises(CatalogError, match="AWS::Example::Thing: no source"):
        parse_catalog(data)
    data["resource_types"]["AWS::Example::Thing"] = {"status": "maybe", "sources": ["nope"]}
    with pytest.raises(CatalogError, match=r"status must be one of.*unknown source nope"):
        parse_catalog(data)


# The rules, on purpose-written templates ------------------------------------------------------
SAM_HEADER = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
"""
CFN_HEADER = 'AWSTemplateFormatVersion: "2010-09-09"\n'
GOOD_METADATA = """\
Metadata:
  AWS::ServerlessRepo::Application:
    Name: example-app
    Description: An example application.
    Author: example-author
    SpdxLicenseId: MIT
    LicenseUrl: LICENSE
    ReadmeUrl: README.md
    HomePageUrl: https://example.com/app
    SourceCodeUrl: https://example.com/app/source
    SemanticVersion: "1.0.0"
    Labels: [example]
"""


def _check(tmp_path: Path, body: str, header: str = CFN_HEADER, metadata: str = GOOD_METADATA):
    (tmp_path / "LICENSE").write_text("MIT\n")
    (tmp_path / "README.md").write_text("# example\n")
    path = tmp_path / "template.yaml"
    path.write_text(header + metadata + textwrap.dedent(body))
    report = check_templates([path], tmp_path)
    return report, report.templates[0]


def _function(events: str = "", policies: str = "") -> str:
    return f"""\
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.13
      Handler: handler.lambda_handler
      CodeUri: src/
{_indented(policies)}{_indented(events)}"""


def _indented(block: str) -> str:
    return textwrap.indent(textwrap.dedent(block), " " * 6)


def _role_with(statement: str) -> str:
    return """\
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
      Policies:
        - PolicyName: inline
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
""" + textwrap.indent(textwrap.dedent(statement), " " * 14)


def test_a_well_formed_template_has_no_findings(tmp_path):
    _, template = _check(
        tmp_path,
        _function(
            events="Events:\n  Tick:\n    Type: Schedule\n    Properties:\n"
            "      Schedule: rate(1 minute)\n"
        ),
        header=SAM_HEADER,
    )
    assert template.findings == []
    # the function's role, the transform, and the rule's permission to invoke the function
    assert template.capabilities == [
        "CAPABILITY_AUTO_EXPAND",
        "CAPABILITY_IAM",
        "CAPABILITY_RESOURCE_POLICY",
    ]


def test_a_sam_managed_policy_sar_blocks_is_found_after_the_transform(tmp_path):
    _, template = _check(
        tmp_path, _function(policies="Policies:\n  - AWSLambda_FullAccess\n"), header=SAM_HEADER
    )
    assert [(f.resource, f.message) for f in template.errors("iam")] == [
        ("WorkerRole", "attaches AWSLambda_FullAccess")
    ]


@pytest.mark.parametrize(
    ("statement", "blocked"),
    [
        ('- {Effect: Allow, Action: "iam:PutRolePolicy", Resource: "*"}', ["iam:putrolepolicy"]),
        (
            '- {Effect: Allow, Action: ["iam:AttachRolePolicy"], Resource: ["*"]}',
            ["iam:attachrolepolicy"],
        ),
        (
            '- {Effect: Allow, Action: "iam:*", Resource: "*"}',
            ["iam:attachrolepolicy", "iam:putrolepolicy", "iam:*"],
        ),
        (
            '- {Effect: Allow, Action: "*", Resource: "*"}',
            ["iam:attachrolepolicy", "iam:putrolepolicy", "iam:*"],
        ),
        ('- {Effect: Allow, Action: "iam:Put*", Resource: "*"}', ["iam:putrolepolicy"]),
        (
            '- {Effect: Allow, NotAction: "s3:*", Resource: "*"}',
            ["iam:attachrolepolicy", "iam:putrolepolicy"],
        ),
        (
            "- Effect: Allow\n  Action: iam:PutRolePolicy\n"
            '  Resource: !If [Always, "*", !Sub "arn:aws:iam::${AWS::AccountId}:role/x"]',
            ["iam:putrolepolicy"],
        ),
        (
            "- Effect: Allow\n  Action: iam:PutRolePolicy\n"
            '  Resource: !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/x"',
            [],
        ),
        ('- {Effect: Deny, Action: "iam:*", Resource: "*"}', []),
        ('- {Effect: Allow, Action: "iam:PassRole", Resource: "*"}', []),
    ],
)
def test_inline_iam_statements_sar_blocks(tmp_path, statement, blocked):
    body = "Conditions:\n  Always: !Equals [a, a]\n" + _role_with(statement)
    _, template = _check(tmp_path, body)
    assert [f.message for f in template.errors("iam")] == [f'allows {a} on "*"' for a in blocked]


def test_schedule_v2_is_an_unsafe_event_source(tmp_path):
    _, template = _check(
        tmp_path,
        _function(
            events="Events:\n  Tick:\n    Type: ScheduleV2\n    Properties:\n"
            "      ScheduleExpression: rate(1 minute)\n"
        ),
        header=SAM_HEADER,
    )
    (finding,) = template.errors("event-source")
    assert "event type ScheduleV2 fails to publish; use Schedule" in finding.message
    assert finding.sources == ("sam-cli-4543",)
    assert template.classifications["AWS::Scheduler::Schedule"].status == UNKNOWN


def test_a_schedule_with_retry_policy_is_unsafe_and_newer_properties_are_flagged(tmp_path):
    _, template = _check(
        tmp_path,
        _function(
            events="Events:\n  Tick:\n    Type: Schedule\n    Properties:\n"
            "      Schedule: rate(1 minute)\n      Enabled: true\n"
            "      RetryPolicy: {MaximumRetryAttempts: 0}\n"
        ),
        header=SAM_HEADER,
    )
    assert [f.message.split(": ", 1)[1] for f in template.errors("event-source")] == [
        "property RetryPolicy of Schedule fails to publish"
    ]
    warnings_ = [f.message for f in template.findings if f.severity == "warning"]
    assert any("property Enabled of Schedule is newer" in message for message in warnings_)


def test_an_event_source_of_unknown_sar_support_is_a_warning(tmp_path):
    _, template = _check(
        tmp_path,
        _function(
            events="Events:\n  Jobs:\n    Type: EventBridgeRule\n    Properties:\n"
            "      Pattern: {source: [aws.partner]}\n"
        ),
        header=SAM_HEADER,
    )
    assert template.errors() == []
    (warning,) = [f for f in template.findings if f.rule == "event-source"]
    assert "EventBridgeRule is unknown; use CloudWatchEvent" in warning.message


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("", "Metadata.AWS::ServerlessRepo::Application is missing"),
        (
            GOOD_METADATA.replace("Name: example-app", 'Name: !Sub "${AWS::StackName}"'),
            "AWS::ServerlessRepo::Application.Name.Fn::Sub uses an intrinsic",
        ),
        (
            GOOD_METADATA.replace("    Author: example-author\n", ""),
            "Author is missing (SAR requires it)",
        ),
        (
            GOOD_METADATA.replace('    SemanticVersion: "1.0.0"\n', ""),
            "SemanticVersion is missing (a public release needs it)",
        ),
        (
            GOOD_METADATA.replace("Author: example-author", "Author: Example Author"),
            "Author must match",
        ),
        (GOOD_METADATA.replace('"1.0.0"', '"1.0"'), "SemanticVersion '1.0' is not a semantic"),
        (
            GOOD_METADATA.replace("LicenseUrl: LICENSE", "LicenseUrl: NO-SUCH-FILE"),
            "LicenseUrl NO-SUCH-FILE is neither an s3:// URI nor a file",
        ),
        (
            GOOD_METADATA.replace("[example]", "[" + ", ".join(f"l{i}" for i in range(11)) + "]"),
            "Labels must be at most 10",
        ),
    ],
)
def test_serverless_repo_metadata_rules(tmp_path, metadata, message):
    _, template = _check(
        tmp_path,
        "Resources:\n  Handle: {Type: AWS::CloudFormation::WaitConditionHandle}\n",
        metadata=metadata,
    )
    assert any(message in f.message for f in template.errors("metadata")), template.findings


def test_a_nested_application_given_by_template_url_cannot_be_published(tmp_path):
    body = """\
    Resources:
      Child:
        Type: AWS::Serverless::Application
        Properties:
          Location: https://bucket.s3.amazonaws.com/child.yaml
      Published:
        Type: AWS::Serverless::Application
        Properties:
          Location:
            ApplicationId: arn:aws:serverlessrepo:us-east-1:123456789012:applications/child
            SemanticVersion: 1.0.0
    """
    _, template = _check(tmp_path, body, header=SAM_HEADER)
    assert [f.resource for f in template.errors("nested-application")] == ["Child"]


def test_custom_types_and_types_missing_from_the_catalog(tmp_path):
    body = """\
    Resources:
      Token: {Type: Custom::Token, Properties: {ServiceToken: arn}}
      Odd: {Type: AWS::Example::Thing}
    """
    report, template = _check(tmp_path, body)
    custom = template.classifications["Custom::Token"]
    assert (custom.status, custom.entry) == (UNKNOWN, "Custom::*")
    assert "AWS::CloudFormation::CustomResource" in custom.alternative
    assert report.unclassified_types() == ["AWS::Example::Thing"]
    assert set(report.release_blockers()[UNKNOWN]) == {"Custom::Token"}


def test_capabilities_follow_the_resources(tmp_path):
    body = """\
    Resources:
      Named:
        Type: AWS::IAM::Role
        Properties:
          RoleName: fixed-name
          AssumeRolePolicyDocument: {Version: "2012-10-17", Statement: []}
      Bucket: {Type: AWS::S3::Bucket}
      BucketPolicy:
        Type: AWS::S3::BucketPolicy
        Properties: {Bucket: !Ref Bucket, PolicyDocument: {Statement: []}}
    """
    _, template = _check(tmp_path, body)
    assert template.capabilities == ["CAPABILITY_NAMED_IAM", "CAPABILITY_RESOURCE_POLICY"]


def test_the_command_line_writes_the_page_and_fails_on_errors(tmp_path, capsys):
    (tmp_path / "template.yaml").write_text(
        CFN_HEADER + "Resources:\n  Odd: {Type: AWS::Example::Thing}\n"
    )
    page = tmp_path / "page.md"
    assert (
        sar_check_main(
            ["--root", str(tmp_path), str(tmp_path / "template.yaml"), "--output", str(page)]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "AWS::Example::Thing is not in the catalog" in out
    assert "Metadata.AWS::ServerlessRepo::Application is missing" in out
    assert page.read_text().startswith("# Serverless Application Repository compatibility")
