"""Fixtures for integration tests: servers on 127.0.0.1 that each test starts and stops."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tools.buildkite_emulator import BuildkiteEmulator


@pytest.fixture
def buildkite_emulator() -> Iterator[BuildkiteEmulator]:
    """A running Buildkite agent API emulator with a fresh random token.

    ``.url`` is the agent API base URL (``http://127.0.0.1:<port>/v3``, the AgentEndpoint),
    ``.token`` the agent token it accepts, ``.control`` an ``EmulatorControl`` to set counts,
    enqueue jobs, register agents, advance its virtual clock and inject faults.
    """
    with BuildkiteEmulator(token=secrets.token_hex(20)) as emulator:
        yield emulator
