"""An emulator of the Buildkite agent API for tests and the local demo, on 127.0.0.1.

It serves ``GET /v3/metrics/queue?name=<queue>`` and ``GET /v3/metrics`` like the real API
(token checked, ``Buildkite-Agent-Metrics-Poll-Duration`` header, ``{"message": ...}`` errors)
from an in-memory world of queues, jobs and agents on a virtual clock, and a control API
under ``/_control`` to set counts, enqueue jobs, register agents, advance time and inject
faults. A slice of the REST API (``/v2``: pipelines, builds and their jobs, agents; see
``tools.buildkite_emulator.rest``) runs builds on the same emulated agents. In process::

    with BuildkiteEmulator(token="...") as emulator:
        emulator.control.set_counts("default", scheduled_jobs=3)
        AgentApiClient(emulator.url, emulator.token).queue_metrics("default")

As a command: ``python -m tools.buildkite_emulator --port 0`` prints its agent API URL.
"""

from tools.buildkite_emulator.control import (
    AdvanceResult,
    AgentRequest,
    EmulatorControl,
    EmulatorControlError,
    InstanceRecord,
    Interruption,
    JobRecord,
)
from tools.buildkite_emulator.server import BuildkiteEmulator

__all__ = [
    "AdvanceResult",
    "AgentRequest",
    "BuildkiteEmulator",
    "EmulatorControl",
    "EmulatorControlError",
    "InstanceRecord",
    "Interruption",
    "JobRecord",
]
