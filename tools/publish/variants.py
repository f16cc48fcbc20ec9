"""Write the publish variants of the application's templates into a build folder.

`sam publish` cannot publish a nested application given by a local `Location`, so every child
(each `AWS::Serverless::Application` of the root with a local template) is published on its own
first, and the root is published in a variant whose nested `Location`s are
`{ApplicationId: arn:<partition>:serverlessrepo:<region>:<account>:applications/<Name>,
SemanticVersion: <version>}`. Every variant gets the release's SemanticVersion and the
publisher's Author / HomePageUrl / SourceCodeUrl (SAR metadata cannot use intrinsics, so these
are written into the files). Relative paths (CodeUri, ContentUri, LicenseUrl, ReadmeUrl, ...) are
rewritten for the new location with SAM CLI's own `move_template`.

The root variant is written from the source template in a dry run and from the `sam build`
output in a real run (same rewrite, so the functions and layer are the built artifacts); building
the variant itself is not an option: with ApplicationId Locations `sam build` asks SAR for the
children's templates.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from samcli.commands._utils.template import move_template

from tools.cfn_template import load_template

METADATA_KEY = "AWS::ServerlessRepo::Application"
NESTED_APPLICATION = "AWS::Serverless::Application"
OVERRIDABLE_METADATA = ("Author", "HomePageUrl", "SourceCodeUrl")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")


class PublishError(ValueError):
    """The project or the options cannot produce publishable templates."""


@dataclass(frozen=True)
class Release:
    """Where and as what a set of templates is published."""

    region: str
    account_id: str
    version: str
    metadata_overrides: dict[str, str]

    def __post_init__(self) -> None:
        if not SEMVER.match(self.version):
            raise PublishError(f"version {self.version!r} is not a semantic version like 1.2.3")
        unknown = sorted(set(self.metadata_overrides) - set(OVERRIDABLE_METADATA))
        if unknown:
            raise PublishError(f"cannot override metadata {', '.join(unknown)}")

    def application_id(self, name: str) -> str:
        """The ARN SAR gives application `name` published from this account and region."""
        partition = boto3.Session().get_partition_for_region(self.region)
        return f"arn:{partition}:serverlessrepo:{self.region}:{self.account_id}:applications/{name}"


@dataclass(frozen=True)
class Application:
    """One template to publish: where its variant is and which SAR application it becomes."""

    logical_id: str  # the root's nested application resource for a child; "" for the root
    source: Path
    variant: Path
    name: str
    application_id: str
    metadata: dict[str, Any]  # the variant's AWS::ServerlessRepo::Application block


def write_child_variants(
    root_template: Path, build_dir: Path, release: Release
) -> list[Application]:
    """Write a variant of every nested application the root gives by a local path, in order."""
    root_template = root_template.resolve()
    children: list[Application] = []
    for logical_id, location in _local_nested_locations(load_template(root_template)).items():
        source = (root_template.parent / location).resolve()
        variant = build_dir / source.relative_to(root_template.parent)
        child = load_template(source)
        metadata = _release_metadata(child, source, release)
        _write(source, variant, child)
        name = metadata["Name"]
        children.append(
            Application(
                logical_id, source, variant, name, release.application_id(name), dict(metadata)
            )
        )
    return children


def write_root_variant(
    template: Path, variant: Path, children: list[Application], release: Release
) -> Application:
    """Write the root variant whose nested Locations are the children's ApplicationIds.

    `template` is the project's root template or the `sam build` output of it: the nested
    applications are matched to `children` by logical id.
    """
    template = template.resolve()
    root = load_template(template)
    by_logical_id = {child.logical_id: child for child in children}
    local = _local_nested_locations(root)
    if set(local) != set(by_logical_id):
        raise PublishError(
            f"{template}: nested applications {sorted(local)} do not match the published "
            f"children {sorted(by_logical_id)}"
        )
    for logical_id, child in by_logical_id.items():
        root["Resources"][logical_id]["Properties"]["Location"] = {
            "ApplicationId": child.application_id,
            "SemanticVersion": release.version,
        }
    metadata = _release_metadata(root, template, release)
    _write(template, variant, root)
    name = metadata["Name"]
    return Application("", template, variant, name, release.application_id(name), dict(metadata))


def _local_nested_locations(template: dict[str, Any]) -> dict[str, str]:
    """logical id -> local template path of every nested application given by a local path."""
    return {
        logical_id: location
        for logical_id, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == NESTED_APPLICATION
        and isinstance(location := (resource.get("Properties") or {}).get("Location"), str)
        and not location.startswith(("s3://", "https://", "http://"))
    }


def _release_metadata(template: dict[str, Any], source: Path, release: Release) -> dict[str, Any]:
    metadata = (template.get("Metadata") or {}).get(METADATA_KEY)
    if not isinstance(metadata, dict) or not isinstance(metadata.get("Name"), str):
        raise PublishError(f"{source}: Metadata.{METADATA_KEY}.Name is missing")
    metadata.update(release.metadata_overrides)
    metadata["SemanticVersion"] = release.version
    return metadata


def _write(source: Path, variant: Path, template: dict[str, Any]) -> None:
    variant.parent.mkdir(parents=True, exist_ok=True)
    move_template(str(source), str(variant.resolve()), copy.deepcopy(template))
