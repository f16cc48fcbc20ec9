"""Shared fixtures for template tests: the project's templates, loaded once."""

from pathlib import Path

import pytest

from tools.cfn_template import load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def root_template() -> dict:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="session")
def network_template() -> dict:
    return load_template(ROOT / "nested" / "network.yaml")


@pytest.fixture(scope="session")
def nested_templates() -> dict[str, dict]:
    """The root's nested stacks by logical id, in the order their outputs feed each other."""
    return {
        "Network": load_template(ROOT / "nested" / "network.yaml"),
        "Storage": load_template(ROOT / "nested" / "storage.yaml"),
        "Fleet": load_template(ROOT / "nested" / "fleet.yaml"),
    }
