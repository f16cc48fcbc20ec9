"""The catalog of what the Serverless Application Repository accepts, and how a name is classified.

The catalog is `supported_resource_types.json` next to this module: resource types (known-supported,
known-unsupported, unknown), event source types (safe, unsafe, unknown), the IAM patterns SAR
blocks and the resource types that need each deploy capability, every entry with its public
source. A resource type or event source missing from the catalog is *unclassified*: the check
fails until someone adds it with a source, so a new type is always a conscious decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).with_name("supported_resource_types.json")

KNOWN_SUPPORTED = "known-supported"
KNOWN_UNSUPPORTED = "known-unsupported"
UNKNOWN = "unknown"
UNCLASSIFIED = "unclassified"
RESOURCE_STATUSES = (KNOWN_SUPPORTED, KNOWN_UNSUPPORTED, UNKNOWN)

SAFE = "safe"
UNSAFE = "unsafe"
EVENT_STATUSES = (SAFE, UNSAFE, UNKNOWN)


class CatalogError(ValueError):
    """The catalog file is malformed (an entry without a status or a source)."""


@dataclass(frozen=True)
class Source:
    """A public document an entry rests on."""

    id: str
    title: str
    url: str
    note: str = ""


@dataclass(frozen=True)
class Classification:
    """What the catalog says about one resource type or event source type."""

    name: str
    status: str
    sources: tuple[str, ...]
    entry: str | None = None  # catalog key that matched (e.g. "Custom::*"); None: unclassified
    note: str = ""
    alternative: str = ""
    known_properties: tuple[str, ...] | None = None
    unsafe_properties: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    """The parsed catalog file."""

    sources: dict[str, Source]
    resource_types: dict[str, dict[str, Any]]
    event_sources: dict[str, dict[str, Any]]
    iam: dict[str, Any]
    capabilities: dict[str, Any]

    def resource_type(self, resource_type: str) -> Classification:
        """Classify a resource type: exact entry first, then the wildcard entries (`Custom::*`)."""
        key = resource_type if resource_type in self.resource_types else None
        if key is None:
            key = next(
                (
                    pattern
                    for pattern in sorted(self.resource_types)
                    if "*" in pattern and fnmatchcase(resource_type, pattern)
                ),
                None,
            )
        if key is None:
            return Classification(resource_type, UNCLASSIFIED, (), None)
        return _classification(resource_type, key, self.resource_types[key])

    def event_source(self, event_type: str) -> Classification:
        """Classify a SAM event source type (the `Type` of an entry under `Events`)."""
        entry = self.event_sources.get(event_type)
        if entry is None:
            return Classification(event_type, UNCLASSIFIED, (), None)
        return _classification(event_type, event_type, entry)

    def source_ids(self) -> set[str]:
        return set(self.sources)


def _classification(name: str, key: str, entry: dict[str, Any]) -> Classification:
    known = entry.get("known_properties")
    return Classification(
        name=name,
        status=entry["status"],
        sources=tuple(entry["sources"]),
        entry=key,
        note=entry.get("note", ""),
        alternative=entry.get("alternative", ""),
        known_properties=tuple(known) if known is not None else None,
        unsafe_properties={
            prop: tuple(ids) for prop, ids in (entry.get("unsafe_properties") or {}).items()
        },
    )


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Build a Catalog from the file's JSON, checking every entry has a status and known sources."""
    sources = {
        source_id: Source(source_id, body["title"], body["url"], body.get("note", ""))
        for source_id, body in data["sources"].items()
    }
    problems: list[str] = [
        f"source {source_id}: url must be https://"
        for source_id, source in sources.items()
        if not source.url.startswith("https://")
    ]

    def check(section: str, name: str, entry: dict[str, Any], statuses: tuple[str, ...]) -> None:
        if entry.get("status") not in statuses:
            problems.append(f"{section} {name}: status must be one of {', '.join(statuses)}")
        cited = list(entry.get("sources") or [])
        for ids in (entry.get("unsafe_properties") or {}).values():
            cited.extend(ids)
        if not entry.get("sources"):
            problems.append(f"{section} {name}: no source")
        problems.extend(
            f"{section} {name}: unknown source {source_id}"
            for source_id in cited
            if source_id not in sources
        )

    for name, entry in data["resource_types"].items():
        check("resource type", name, entry, RESOURCE_STATUSES)
    for name, entry in data["event_sources"].items():
        check("event source", name, entry, EVENT_STATUSES)
    for section in ("iam", "capabilities"):
        check(section, section, {"status": "-", **data[section]}, ("-",))
    if problems:
        raise CatalogError("; ".join(problems))
    return Catalog(
        sources=sources,
        resource_types=data["resource_types"],
        event_sources=data["event_sources"],
        iam=data["iam"],
        capabilities=data["capabilities"],
    )


@cache
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Read and validate the catalog file (cached per path)."""
    return parse_catalog(json.loads(path.read_text(encoding="utf-8")))
