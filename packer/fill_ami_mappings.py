"""Fill the fleet template's AgentImages mapping from the Packer manifest.

The AMI build appends one entry per build to packer/manifest.json: its ``artifact_id`` lists the
AMI of every region the image was copied to (``us-east-1:ami-1,eu-west-1:ami-2``) and its
``custom_data.arch`` says x86_64 or arm64. This script takes the newest build of each
architecture and writes its AMIs into ``Mappings.AgentImages`` of nested/fleet.yaml, one row per
region with the keys ``x8664`` and ``arm64`` (CloudFormation mapping keys are alphanumeric only).
Rows already in the template for other regions stay; a region built for one architecture only
gets ``none`` for the other, as the template's placeholder row does. Only the mapping's lines
change; the rest of the template is left byte for byte.

Usage (from the repository root):
    .venv/bin/python packer/fill_ami_mappings.py [--manifest packer/manifest.json]
        [--template nested/fleet.yaml] [--check]

--check changes nothing and exits 1 when the template is not up to date with the manifest.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from tools.cfn_template import TemplateError, parse_template

MAPPING_NAME = "AgentImages"
# Packer architecture -> mapping key.
ARCH_KEYS = {"x86_64": "x8664", "arm64": "arm64"}
MISSING = "none"
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
AMI_PATTERN = re.compile(r"^ami-[0-9a-f]{8,17}$")

Rows = dict[str, dict[str, str]]


class MappingError(Exception):
    """The manifest or the template is not what this script can fill safely."""


def images_from_manifest(manifest: dict[str, Any]) -> Rows:
    """Region -> {mapping key: AMI id} from the newest build of each architecture."""
    newest: dict[str, dict[str, Any]] = {}
    for build in manifest.get("builds", []):
        arch = (build.get("custom_data") or {}).get("arch")
        if arch not in ARCH_KEYS:
            raise MappingError(f"build {build.get('packer_run_uuid')} has no known arch: {arch!r}")
        if arch not in newest or build.get("build_time", 0) >= newest[arch].get("build_time", 0):
            newest[arch] = build
    if not newest:
        raise MappingError("the manifest lists no builds")

    images: Rows = {}
    for arch, build in sorted(newest.items()):
        for pair in str(build.get("artifact_id", "")).split(","):
            region, _, ami = pair.partition(":")
            if not REGION_PATTERN.match(region) or not AMI_PATTERN.match(ami):
                raise MappingError(f"unexpected artifact {pair!r} in the {arch} build")
            images.setdefault(region, {})[ARCH_KEYS[arch]] = ami
    return images


def read_mapping(template_text: str) -> Rows:
    """The AgentImages rows currently in the template."""
    try:
        template = parse_template(template_text)
    except TemplateError as error:
        raise MappingError(str(error)) from None
    mapping = (template.get("Mappings") or {}).get(MAPPING_NAME)
    if not isinstance(mapping, dict):
        raise MappingError(f"the template has no Mappings.{MAPPING_NAME}")
    return {
        str(region): {str(key): str(value) for key, value in row.items()}
        for region, row in mapping.items()
    }


def merge_rows(current: Rows, images: Rows) -> Rows:
    """Current rows updated with the built images; every row has every architecture key."""
    merged: Rows = {region: dict(row) for region, row in current.items() if region != MISSING}
    for region, row in images.items():
        merged.setdefault(region, {}).update(row)
    if not merged:
        return {MISSING: dict.fromkeys(ARCH_KEYS.values(), MISSING)}
    return {
        region: {key: merged[region].get(key, MISSING) for key in ARCH_KEYS.values()}
        for region in sorted(merged)
    }


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def replace_mapping_block(template_text: str, rows: Rows) -> str:
    """The template with the AgentImages block (and nothing else) rewritten to hold rows."""
    lines = template_text.splitlines(keepends=True)
    in_mappings = False
    start = None
    for index, line in enumerate(lines):
        if line and not line[0].isspace() and not line.startswith("#"):
            in_mappings = line.rstrip() == "Mappings:"
        elif in_mappings and line.strip() == f"{MAPPING_NAME}:":
            start = index
            break
    if start is None:
        raise MappingError(f"no block-style '{MAPPING_NAME}:' under Mappings in the template")

    base = _indent(lines[start])
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # trailing blank lines belong to what follows

    step = " " * 2
    pad = " " * base
    block = [lines[start]]
    for region, row in rows.items():
        block.append(f"{pad}{step}{region}:\n")
        block.extend(f"{pad}{step}{step}{key}: {ami}\n" for key, ami in row.items())
    return "".join(lines[:start] + block + lines[end:])


def fill(template_text: str, manifest: dict[str, Any]) -> str:
    """The template text with AgentImages filled from the manifest."""
    rows = merge_rows(read_mapping(template_text), images_from_manifest(manifest))
    updated = replace_mapping_block(template_text, rows)
    if read_mapping(updated) != rows:
        raise MappingError("the rewritten mapping did not read back as written")
    return updated


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=root / "packer" / "manifest.json")
    parser.add_argument("--template", type=Path, default=root / "nested" / "fleet.yaml")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)

    try:
        manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
        current = args.template.read_text(encoding="utf-8")
        updated = fill(current, manifest)
    except (OSError, ValueError, MappingError, yaml.YAMLError) as error:
        print(f"fill_ami_mappings: {error}", file=sys.stderr)
        return 2

    if updated == current:
        print(f"{args.template}: {MAPPING_NAME} is up to date")
        return 0
    if args.check:
        print(f"{args.template}: {MAPPING_NAME} differs from {args.manifest}", file=sys.stderr)
        return 1
    args.template.write_text(updated, encoding="utf-8")
    for region, row in read_mapping(updated).items():
        print(f"{region}: " + ", ".join(f"{key}={ami}" for key, ami in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
