"""Run every SAR rule over a set of templates and render the result as Markdown.

For each template the report holds the resource types SAR validates (the submitted template),
the types the SAM transform generates (what CloudFormation deploys), each classified against the
catalog, the deploy capabilities, and the rule findings. The project verdict lists, by name, the
types that block a public SAR release (known-unsupported) and those that may (unknown).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tools.sar_check.catalog import (
    KNOWN_UNSUPPORTED,
    UNCLASSIFIED,
    UNKNOWN,
    Catalog,
    Classification,
    load_catalog,
)
from tools.sar_check.packaged import PackagedTemplate, package_offline
from tools.sar_check.rules import (
    ERROR,
    Finding,
    event_source_findings,
    iam_findings,
    metadata_findings,
    nested_application_findings,
)

BLOCKING_STATUSES = (KNOWN_UNSUPPORTED, UNKNOWN, UNCLASSIFIED)


@dataclass
class TemplateReport:
    """Everything the check found in one template file."""

    path: str  # relative to the project root, with forward slashes
    transformed: bool
    submitted_types: dict[str, list[str]]  # type -> logical ids, as SAR receives the template
    generated_types: dict[str, list[str]]  # type -> the SAM resource each one came from
    classifications: dict[str, Classification]  # every type above
    capabilities: list[str]
    findings: list[Finding] = field(default_factory=list)

    def errors(self, rule: str | None = None) -> list[Finding]:
        return [
            finding
            for finding in self.findings
            if finding.severity == ERROR and (rule is None or finding.rule == rule)
        ]


@dataclass
class ProjectReport:
    """The check over all templates of an application (root and nested)."""

    templates: list[TemplateReport]
    catalog: Catalog

    def release_blockers(self) -> dict[str, dict[str, list[str]]]:
        """status -> type -> templates, for submitted types that block or may block a release."""
        blockers: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for template in self.templates:
            for resource_type in template.submitted_types:
                status = template.classifications[resource_type].status
                if status in BLOCKING_STATUSES:
                    blockers[status][resource_type].append(template.path)
        return {status: dict(types) for status, types in blockers.items()}

    def unclassified_types(self) -> list[str]:
        return sorted(
            {
                resource_type
                for template in self.templates
                for resource_type, verdict in template.classifications.items()
                if verdict.status == UNCLASSIFIED
            }
        )

    def errors(self) -> list[tuple[str, Finding]]:
        return [
            (template.path, finding) for template in self.templates for finding in template.errors()
        ]

    def capabilities(self) -> list[str]:
        """What deploying the whole application (root with its nested apps) must acknowledge."""
        return sorted({cap for template in self.templates for cap in template.capabilities})


def check_templates(
    paths: list[Path], project_root: Path, region: str = "us-east-1", catalog: Catalog | None = None
) -> ProjectReport:
    """Run the SAR check over `paths` (template files) and return the project report."""
    catalog = catalog or load_catalog()
    reports = [_check_one(package_offline(path, region), project_root, catalog) for path in paths]
    return ProjectReport(reports, catalog)


def default_templates(project_root: Path) -> list[Path]:
    """The application's templates: the root template.yaml and every nested/*.yaml."""
    return [project_root / "template.yaml", *sorted((project_root / "nested").glob("*.yaml"))]


def _check_one(packaged: PackagedTemplate, project_root: Path, catalog: Catalog) -> TemplateReport:
    submitted_types: dict[str, list[str]] = defaultdict(list)
    for logical_id, resource in (packaged.submitted.get("Resources") or {}).items():
        submitted_types[str(resource.get("Type"))].append(logical_id)
    generated_types: dict[str, list[str]] = defaultdict(list)
    for logical_id, origin in packaged.generated_from.items():
        resource_type = str(packaged.deployed["Resources"][logical_id].get("Type"))
        generated_types[resource_type].append(origin)
    classifications = {
        resource_type: catalog.resource_type(resource_type)
        for resource_type in {*submitted_types, *generated_types}
    }
    template_dir = packaged.path.parent
    findings = [
        *metadata_findings(packaged.submitted, template_dir),
        *iam_findings(packaged.deployed, catalog),
        *event_source_findings(packaged.submitted, catalog),
        *nested_application_findings(packaged.submitted, template_dir),
    ]
    return TemplateReport(
        path=packaged.path.resolve().relative_to(project_root.resolve()).as_posix(),
        transformed=packaged.transformed,
        submitted_types={key: sorted(value) for key, value in sorted(submitted_types.items())},
        generated_types={key: sorted(value) for key, value in sorted(generated_types.items())},
        classifications=classifications,
        capabilities=_capabilities(packaged, catalog),
        findings=findings,
    )


def _capabilities(packaged: PackagedTemplate, catalog: Catalog) -> list[str]:
    spec = catalog.capabilities
    needed: set[str] = set()
    for resource in (packaged.submitted.get("Resources") or {}).values():
        if resource.get("Type") in spec["CAPABILITY_AUTO_EXPAND"]:
            needed.add("CAPABILITY_AUTO_EXPAND")
    if packaged.transformed:
        needed.add("CAPABILITY_AUTO_EXPAND")  # CreateStack with a transform (the SAM transform)
    for resource in (packaged.deployed.get("Resources") or {}).values():
        resource_type = resource.get("Type")
        if resource_type in spec["CAPABILITY_IAM"]:
            named = spec["named_iam_properties"].get(resource_type)
            has_name = named and (resource.get("Properties") or {}).get(named)
            needed.add("CAPABILITY_NAMED_IAM" if has_name else "CAPABILITY_IAM")
        if resource_type in spec["CAPABILITY_RESOURCE_POLICY"]:
            needed.add("CAPABILITY_RESOURCE_POLICY")
    return sorted(needed)


# Markdown ---------------------------------------------------------------------------------
def render_markdown(report: ProjectReport) -> str:
    """The report as a Markdown page (deterministic: same templates, same text)."""
    catalog = report.catalog
    lines = [
        "# Serverless Application Repository compatibility",
        "",
        "Generated by `python -m tools.sar_check --output docs/sar-compatibility.md` (do not edit;",
        "`make test` fails when this page is stale). Each template is checked as packaged: the",
        "resource types SAR validates (the submitted SAM template) and those the SAM transform",
        "generates (run offline with samtranslator), classified against",
        "`tools/sar_check/supported_resource_types.json`, where every entry cites its source.",
        "",
        "## Verdict",
        "",
    ]
    blockers = report.release_blockers()
    errors = report.errors()
    if not blockers and not errors:
        lines.append("Nothing known blocks a public SAR release.")
    for status, heading in (
        (KNOWN_UNSUPPORTED, "Block a public SAR release (known-unsupported)"),
        (UNKNOWN, "May block a public SAR release (unknown: confirm on the current list)"),
        (UNCLASSIFIED, "Not in the catalog (add them with a source)"),
    ):
        types = blockers.get(status)
        if not types:
            continue
        lines += [f"{heading}:", ""]
        for resource_type, templates in sorted(types.items()):
            verdict = next(
                template.classifications[resource_type]
                for template in report.templates
                if resource_type in template.classifications
            )
            alternative = f"; alternative: {verdict.alternative}" if verdict.alternative else ""
            lines.append(f"- `{resource_type}` in {', '.join(templates)}{alternative}")
        lines.append("")
    if errors:
        lines += [f"Errors ({len(errors)}), each of which stops publishing:", ""]
        lines += [f"- {path}: {_describe(finding)}" for path, finding in errors]
        lines.append("")
    lines += [
        "## Capabilities",
        "",
        "What a deployment must acknowledge. CAPABILITY_RESOURCE_POLICY is SAR's own;",
        "CloudFormation (`sam deploy`, Launch stack) asks only for the IAM and AUTO_EXPAND ones.",
        "",
        "| template | capabilities to acknowledge |",
        "| --- | --- |",
    ]
    lines += [
        f"| {template.path} | {' '.join(template.capabilities) or '-'} |"
        for template in report.templates
    ]
    lines += [f"| whole application | {' '.join(report.capabilities()) or '-'} |", ""]
    for template in report.templates:
        lines += _render_template(template)
    lines += ["## Sources", ""]
    cited = sorted(
        {
            source
            for template in report.templates
            for verdict in template.classifications.values()
            for source in verdict.sources
        }
        | {
            source
            for template in report.templates
            for f in template.findings
            for source in f.sources
        }
    )
    for source_id in cited:
        source = catalog.sources[source_id]
        lines.append(f"- `{source_id}`: [{source.title}]({source.url})")
    lines.append("")
    return "\n".join(lines)


def _render_template(template: TemplateReport) -> list[str]:
    lines = [f"## {template.path}", "", "Resource types SAR validates:", ""]
    lines += _type_table(template, template.submitted_types, "resources")
    if template.transformed:
        lines += [
            "Generated by the SAM transform at deploy time (SAR does not validate these; listed",
            "so that what CloudFormation creates is classified too):",
            "",
        ]
        lines += _type_table(
            template,
            {
                resource_type: [
                    f"{origin} x{origins.count(origin)}" if origins.count(origin) > 1 else origin
                    for origin in sorted(set(origins))
                ]
                for resource_type, origins in template.generated_types.items()
            },
            "generated from",
        )
    if template.findings:
        lines += ["Findings:", ""]
        lines += [f"- {_describe(finding)}" for finding in template.findings]
    else:
        lines.append("Findings: none.")
    lines.append("")
    return lines


def _type_table(template: TemplateReport, types: dict[str, list[str]], column: str) -> list[str]:
    if not types:
        return ["(none)", ""]
    rows = [f"| type | status | {column} | sources |", "| --- | --- | --- | --- |"]
    for resource_type, resources in types.items():
        verdict = template.classifications[resource_type]
        sources = ", ".join(f"`{source}`" for source in verdict.sources) or "-"
        rows.append(
            f"| `{resource_type}` | {verdict.status} | {', '.join(resources)} | {sources} |"
        )
    return [*rows, ""]


def _describe(finding: Finding) -> str:
    where = f"{finding.resource}: " if finding.resource else ""
    sources = f" ({', '.join(finding.sources)})" if finding.sources else ""
    return f"{finding.severity} [{finding.rule}] {where}{finding.message}{sources}"
