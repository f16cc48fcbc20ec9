"""Command line: `python -m tools.sar_check [TEMPLATE ...] [--output FILE]`.

Prints the verdict (the resource types that block or may block a public SAR release, and every
error) and optionally writes the full Markdown report. Exits 1 when a rule error is found or a
type is missing from the catalog, 0 otherwise: unknown or unsupported types are reported, not
fatal, because they are facts about SAR rather than mistakes in the templates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.sar_check.report import (
    KNOWN_UNSUPPORTED,
    UNKNOWN,
    check_templates,
    default_templates,
    render_markdown,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sar_check", description=__doc__)
    parser.add_argument("templates", nargs="*", type=Path, help="default: the application's")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: .)")
    parser.add_argument("--output", type=Path, help="write the Markdown report here")
    parser.add_argument("--region", default="us-east-1", help="region for the offline transform")
    args = parser.parse_args(argv)

    report = check_templates(
        args.templates or default_templates(args.root), args.root, region=args.region
    )
    if args.output:
        args.output.write_text(render_markdown(report), encoding="utf-8")
    blockers = report.release_blockers()
    for status, label in ((KNOWN_UNSUPPORTED, "blocks"), (UNKNOWN, "may block")):
        for resource_type, templates in sorted(blockers.get(status, {}).items()):
            print(f"{label} a public SAR release: {resource_type} ({', '.join(templates)})")
    for resource_type in report.unclassified_types():
        print(f"error: {resource_type} is not in the catalog; add it with a source")
    for path, finding in report.errors():
        where = f"{finding.resource}: " if finding.resource else ""
        print(f"error: {path}: [{finding.rule}] {where}{finding.message}")
    print(f"capabilities: {' '.join(report.capabilities()) or '-'}")
    return 1 if report.errors() or report.unclassified_types() else 0


if __name__ == "__main__":
    sys.exit(main())
