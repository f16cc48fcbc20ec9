"""Offline check that the application's templates can be published to the Serverless
Application Repository (SAR), and a report of what would block a public release.

Run `python -m tools.sar_check` (add `--output docs/sar-compatibility.md` to refresh the page).
`make test` runs it through tests/templates/test_sar_compatibility.py.
"""

from tools.sar_check.catalog import Catalog, Classification, load_catalog
from tools.sar_check.report import (
    ProjectReport,
    TemplateReport,
    check_templates,
    default_templates,
    render_markdown,
)

__all__ = [
    "Catalog",
    "Classification",
    "ProjectReport",
    "TemplateReport",
    "check_templates",
    "default_templates",
    "load_catalog",
    "render_markdown",
]
