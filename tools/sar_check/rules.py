"""The rules SAR applies to a template, each turned into findings with the source it rests on.

- metadata: `AWS::ServerlessRepo::Application` has the fields SAR (and a public release) needs,
  in SAR's formats, with no intrinsic functions;
- IAM: no AWSLambda_FullAccess, no iam:AttachRolePolicy / iam:PutRolePolicy / iam:* on "*";
- event sources: every SAM event source is one SAR's specification accepts, without properties
  SAR is known to reject;
- nested applications: a Location SAR can publish (an ApplicationId, or a local template that
  tools.publish turns into one), never an S3/HTTPS template URL.

Errors block publishing; warnings are reported for a person to confirm.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from tools.sar_check.catalog import SAFE, UNCLASSIFIED, UNSAFE, Catalog

ERROR = "error"
WARNING = "warning"

METADATA_KEY = "AWS::ServerlessRepo::Application"
SAR_REQUIRED = ("Name", "Description", "Author")
PUBLIC_REQUIRED = ("SemanticVersion", "LicenseUrl")
PROJECT_REQUIRED = ("SpdxLicenseId", "ReadmeUrl", "HomePageUrl", "SourceCodeUrl", "Labels")
KNOWN_METADATA_FIELDS = frozenset(
    {*SAR_REQUIRED, *PUBLIC_REQUIRED, *PROJECT_REQUIRED, "LicenseBody", "ReadmeBody"}
)
_NAME = re.compile(r"^[a-zA-Z0-9-]{1,140}$")
_AUTHOR = re.compile(r"^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$")
_LABEL = re.compile(r"^[a-zA-Z0-9+\-_:/@]{1,127}$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
_URL = re.compile(r"^https?://[^\s/$.?#].[^\s]*$")

EVENT_SOURCE_OWNERS = ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")
NESTED_APPLICATION = "AWS::Serverless::Application"
_IAM_POLICY_HOLDERS = ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")
_IAM_DOCUMENTS = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


@dataclass(frozen=True)
class Finding:
    """One thing a rule found in one template."""

    rule: str  # metadata | iam | event-source | nested-application
    severity: str  # error | warning
    resource: str  # logical id, or "" for the template as a whole
    message: str
    sources: tuple[str, ...]


# Metadata ---------------------------------------------------------------------------------
def metadata_findings(template: dict[str, Any], template_dir: Path) -> list[Finding]:
    """Check the AWS::ServerlessRepo::Application block of a submitted template."""
    sources = ("sam-metadata-properties",)
    metadata = (template.get("Metadata") or {}).get(METADATA_KEY)
    if not isinstance(metadata, dict):
        return [_finding("metadata", ERROR, "", f"Metadata.{METADATA_KEY} is missing", sources)]
    findings: list[Finding] = []
    for path in _intrinsic_paths(metadata, METADATA_KEY):
        findings.append(_finding("metadata", ERROR, "", f"{path} uses an intrinsic", sources))
    for name, why, cited in (
        *((name, "SAR requires it", sources) for name in SAR_REQUIRED),
        *((name, "a public release needs it", ("sar-public-sharing",)) for name in PUBLIC_REQUIRED),
        *((name, "this project publishes it", sources) for name in PROJECT_REQUIRED),
    ):
        if metadata.get(name) in (None, "", []):
            findings.append(_finding("metadata", ERROR, "", f"{name} is missing ({why})", cited))
    findings.extend(
        _finding("metadata", WARNING, "", f"{name} is not a SAR metadata property", sources)
        for name in sorted(set(metadata) - KNOWN_METADATA_FIELDS)
    )
    findings.extend(_metadata_format_findings(metadata, template_dir))
    return findings


def _metadata_format_findings(metadata: dict[str, Any], template_dir: Path) -> Iterator[Finding]:
    sources = ("sam-metadata-properties",)

    def bad(message: str) -> Finding:
        return _finding("metadata", ERROR, "", message, sources)

    def text(name: str) -> str | None:
        value = metadata.get(name)
        return value if isinstance(value, str) and value else None

    if (name := text("Name")) and not _NAME.match(name):
        yield bad("Name must match [a-zA-Z0-9-]+ and have 1-140 characters")
    if (description := text("Description")) and len(description) > 256:
        yield bad("Description must have at most 256 characters")
    if (author := text("Author")) and not (len(author) <= 127 and _AUTHOR.match(author)):
        yield bad("Author must match ^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$ (1-127 characters)")
    version = metadata.get("SemanticVersion")
    if version not in (None, "") and not (isinstance(version, str) and _SEMVER.match(version)):
        yield bad(f"SemanticVersion {version!r} is not a semantic version (quote it in YAML)")
    labels = metadata.get("Labels")
    if labels is not None and not (
        isinstance(labels, list)
        and len(labels) <= 10
        and all(isinstance(label, str) and _LABEL.match(label) for label in labels)
    ):
        yield bad("Labels must be at most 10 strings matching ^[a-zA-Z0-9+\\-_:\\/@]+$")
    for name in ("HomePageUrl", "SourceCodeUrl"):
        if (url := text(name)) and not _URL.match(url):
            yield bad(f"{name} must be an http(s) URL")
    for url_name, body_name in (("LicenseUrl", "LicenseBody"), ("ReadmeUrl", "ReadmeBody")):
        if metadata.get(url_name) and metadata.get(body_name):
            yield bad(f"give {url_name} or {body_name}, not both")
        location = text(url_name)
        local = location and not location.startswith("s3://")
        if local and not (template_dir / str(location)).is_file():
            yield bad(f"{url_name} {location} is neither an s3:// URI nor a file next to it")


def _intrinsic_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("Ref", "Condition") or str(key).startswith("Fn::"):
                yield f"{path}.{key}" if path else key
            else:
                yield from _intrinsic_paths(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _intrinsic_paths(item, f"{path}[{index}]")


# IAM --------------------------------------------------------------------------------------
def iam_findings(deployed: dict[str, Any], catalog: Catalog) -> list[Finding]:
    """Find the IAM patterns SAR blocks in a deployed template (after the SAM transform)."""
    sources = tuple(catalog.iam["sources"])
    blocked_policies = catalog.iam["blocked_managed_policies"]
    blocked_actions = [action.lower() for action in catalog.iam["blocked_actions_on_all_resources"]]
    findings: list[Finding] = []
    for logical_id, resource in (deployed.get("Resources") or {}).items():
        resource_type = resource.get("Type")
        properties = resource.get("Properties") or {}
        documents: list[Any] = []
        if resource_type in _IAM_POLICY_HOLDERS:
            documents = [
                policy.get("PolicyDocument") for policy in properties.get("Policies") or []
            ]
            for arn in _strings(properties.get("ManagedPolicyArns")):
                for policy in blocked_policies:
                    if arn.endswith(f"/{policy}") or arn == policy:
                        findings.append(
                            _finding("iam", ERROR, logical_id, f"attaches {policy}", sources)
                        )
        elif resource_type in _IAM_DOCUMENTS:
            documents = [properties.get("PolicyDocument")]
        for document in documents:
            for statement in _statements(document):
                for action in _blocked_on_all_resources(statement, blocked_actions):
                    findings.append(
                        _finding("iam", ERROR, logical_id, f'allows {action} on "*"', sources)
                    )
    return findings


def _statements(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement") or []
    statements = statements if isinstance(statements, list) else [statements]
    return [statement for statement in statements if isinstance(statement, dict)]


def _blocked_on_all_resources(statement: dict[str, Any], blocked: list[str]) -> list[str]:
    """The blocked actions a statement allows on "*" (any branch of an Fn::If counts)."""
    if str(statement.get("Effect", "Allow")) != "Allow":
        return []
    if "*" not in _strings(statement.get("Resource")):
        return []
    if "NotAction" in statement:
        excluded = [pattern.lower() for pattern in _strings(statement["NotAction"])]
        return [
            action
            for action in blocked
            if "*" not in action and not any(fnmatchcase(action, p) for p in excluded)
        ]
    patterns = [pattern.lower() for pattern in _strings(statement.get("Action"))]
    return [
        action
        for action in blocked
        if any(fnmatchcase(action, pattern) or pattern == action for pattern in patterns)
    ]


def _strings(value: Any) -> list[str]:
    """Every string a value may take, looking into lists and both branches of Fn::If."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for element in value for item in _strings(element)]
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::If" and isinstance(argument, list) and len(argument) == 3:
            return _strings(argument[1]) + _strings(argument[2])
        if function == "Fn::Sub":
            return _strings(argument[0] if isinstance(argument, list) else argument)
    return []


# Event sources ----------------------------------------------------------------------------
def event_source_findings(submitted: dict[str, Any], catalog: Catalog) -> list[Finding]:
    """Check the event sources of every SAM function and state machine in a submitted template."""
    findings: list[Finding] = []
    for logical_id, resource in (submitted.get("Resources") or {}).items():
        if resource.get("Type") not in EVENT_SOURCE_OWNERS:
            continue
        events = (resource.get("Properties") or {}).get("Events") or {}
        for event_id, event in events.items():
            event_type = str(event.get("Type"))
            where = f"{logical_id}.Events.{event_id}"
            verdict = catalog.event_source(event_type)
            hint = f"; use {verdict.alternative}" if verdict.alternative else ""
            if verdict.status == UNSAFE:
                message = f"{where}: event type {event_type} fails to publish{hint}"
                findings.append(
                    _finding("event-source", ERROR, logical_id, message, verdict.sources)
                )
                continue
            if verdict.status == UNCLASSIFIED:
                message = (
                    f"{where}: event type {event_type} is not in the catalog; add it with a source"
                )
                findings.append(_finding("event-source", ERROR, logical_id, message, ()))
                continue
            if verdict.status != SAFE:
                message = f"{where}: SAR acceptance of event type {event_type} is unknown{hint}"
                findings.append(
                    _finding("event-source", WARNING, logical_id, message, verdict.sources)
                )
            properties = event.get("Properties") or {}
            for prop in sorted(properties):
                if prop in verdict.unsafe_properties:
                    message = f"{where}: property {prop} of {event_type} fails to publish"
                    findings.append(
                        _finding(
                            "event-source",
                            ERROR,
                            logical_id,
                            message,
                            verdict.unsafe_properties[prop],
                        )
                    )
                elif verdict.known_properties is not None and prop not in verdict.known_properties:
                    message = (
                        f"{where}: property {prop} of {event_type} is newer than the SAM "
                        "specification SAR is known to accept"
                    )
                    findings.append(
                        _finding("event-source", WARNING, logical_id, message, verdict.sources)
                    )
    return findings


# Nested applications ----------------------------------------------------------------------
def nested_application_findings(submitted: dict[str, Any], template_dir: Path) -> list[Finding]:
    """Check that every nested application Location is one SAR can publish."""
    findings: list[Finding] = []
    for logical_id, resource in (submitted.get("Resources") or {}).items():
        if resource.get("Type") != NESTED_APPLICATION:
            continue
        location = (resource.get("Properties") or {}).get("Location")
        if isinstance(location, dict):
            missing = [key for key in ("ApplicationId", "SemanticVersion") if not location.get(key)]
            if missing:
                message = f"Location lacks {', '.join(missing)}"
                findings.append(
                    _finding("nested-application", ERROR, logical_id, message, ("sam-cli-2477",))
                )
            continue
        text = str(location)
        if text.startswith(("s3://", "https://", "http://")):
            message = (
                "Location is a template URL; SAR publishes nested applications only as "
                "{ApplicationId, SemanticVersion}"
            )
            findings.append(
                _finding("nested-application", ERROR, logical_id, message, ("sam-cli-2477",))
            )
        elif not (template_dir / text).is_file():
            message = f"Location {text} is not a template file"
            findings.append(_finding("nested-application", ERROR, logical_id, message, ()))
    return findings


def _finding(
    rule: str, severity: str, resource: str, message: str, sources: tuple[str, ...]
) -> Finding:
    return Finding(rule, severity, resource, message, tuple(sources))
