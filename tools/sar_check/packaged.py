"""A template as SAR receives it and as CloudFormation deploys it, computed offline.

`sam package` replaces local paths (CodeUri, ContentUri, nested Location, ...) with S3 locations;
SAR validates that *submitted* template (still in SAM syntax); CloudFormation runs the SAM
transform on it at deploy time. Here the packaging is imitated with placeholder S3 locations and
the transform is run locally with samtranslator, with a region-only boto3 session (no
credentials, no AWS call) and a managed-policy map that adds nothing to samtranslator's bundled
map of AWS managed policy names.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from samcli.lib.utils.resources import RESOURCES_WITH_LOCAL_PATHS
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from tools.cfn_template import load_template

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
SAM_PREFIX = "AWS::Serverless::"
_TEMPLATE_URL_PROPERTIES = {"Location", "TemplateURL"}
_PLACEHOLDER_BUCKET = "sar-check-placeholder-bucket"


@dataclass(frozen=True)
class PackagedTemplate:
    """One template file in both forms, with the origin of every generated resource."""

    path: Path
    submitted: dict[str, Any]  # the template as written (what SAR validates, modulo S3 URIs)
    deployed: dict[str, Any]  # after the SAM transform (what CloudFormation creates)
    transformed: bool
    generated_from: dict[str, str]  # deployed logical id -> submitted SAM resource it came from


def uses_sam_transform(template: dict[str, Any]) -> bool:
    transform = template.get("Transform") or []
    names = transform if isinstance(transform, list) else [transform]
    return SAM_TRANSFORM in names


def package_offline(path: Path, region: str = "us-east-1") -> PackagedTemplate:
    """Load `path` and compute its deployed form without any AWS call."""
    submitted = load_template(path)
    if not uses_sam_transform(submitted):
        deployed = copy.deepcopy(submitted)
        return PackagedTemplate(path, submitted, deployed, False, {})
    deployed = sam_transform(with_placeholder_artifacts(submitted), region)
    return PackagedTemplate(path, submitted, deployed, True, _generated_from(submitted, deployed))


def with_placeholder_artifacts(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of `template` whose local artifact paths point at placeholder S3 objects.

    Nested application Locations (local paths or `{ApplicationId, SemanticVersion}`) become a
    template URL, which is what `sam package` or SAR's template resolution hands to
    CloudFormation.
    """
    packaged = copy.deepcopy(template)
    for logical_id, resource in (packaged.get("Resources") or {}).items():
        properties = resource.get("Properties") or {}
        for name in RESOURCES_WITH_LOCAL_PATHS.get(resource.get("Type", ""), []):
            value = properties.get(name)
            if name in _TEMPLATE_URL_PROPERTIES and value is not None:
                if isinstance(value, dict) or not str(value).startswith("https://"):
                    properties[name] = (
                        f"https://{_PLACEHOLDER_BUCKET}.s3.amazonaws.com/{logical_id}.template"
                    )
            elif isinstance(value, str) and not value.startswith("s3://"):
                properties[name] = f"s3://{_PLACEHOLDER_BUCKET}/{logical_id}/{name}.zip"
    return packaged


def sam_transform(template: dict[str, Any], region: str) -> dict[str, Any]:
    """Run the SAM transform locally (samtranslator), as CloudFormation would at deploy time."""
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    return translator.translate(
        copy.deepcopy(template),
        parameter_values={},
        get_managed_policy_map=dict,  # names outside samtranslator's bundled map stay as written
    )


def _generated_from(submitted: dict[str, Any], deployed: dict[str, Any]) -> dict[str, str]:
    """Map each generated resource to the SAM resource whose logical id prefixes its own."""
    submitted_resources = submitted.get("Resources") or {}
    sam_ids = sorted(
        (
            logical_id
            for logical_id, resource in submitted_resources.items()
            if str(resource.get("Type", "")).startswith(SAM_PREFIX)
        ),
        key=len,
        reverse=True,
    )
    origins: dict[str, str] = {}
    for logical_id in deployed.get("Resources") or {}:
        original = submitted_resources.get(logical_id)
        if original is not None and not str(original.get("Type", "")).startswith(SAM_PREFIX):
            continue
        origins[logical_id] = next(
            (sam_id for sam_id in sam_ids if logical_id.startswith(sam_id)), "SAM transform"
        )
    return origins
