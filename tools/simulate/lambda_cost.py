"""The scaler Lambda's sizing (memory, timeout) and its modelled GB-seconds.

The reference runs a 128 MB function (timeout 120 s) once a minute for about 50 s: it sleeps
between its evaluations inside the invocation. The project's sizing is read from the root
``template.yaml``: the function whose handler is ``agent_scaler.handler.lambda_handler`` (the
scheduled one), its ``MemorySize`` and ``Timeout`` (else ``Globals.Function``, else SAM's
defaults), and for the push function (``agent_scaler.handler.push_handler``) also its SQS event
source's ``MaximumBatchingWindowInSeconds``. While a function is not in the template,
``ASSUMED_MEMORY_MB`` and ``ASSUMED_TIMEOUT_S`` stand in and ``FunctionSizing.source`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tools.cfn_template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
SCHEDULED_HANDLER = "agent_scaler.handler.lambda_handler"
PUSH_HANDLER = "agent_scaler.handler.push_handler"
ASSUMED_MEMORY_MB = 256
ASSUMED_TIMEOUT_S = 120
SAM_DEFAULT_MEMORY_MB = 128
SAM_DEFAULT_TIMEOUT_S = 3
REFERENCE_MEMORY_MB = 128
REFERENCE_TIMEOUT_S = 120
MB_PER_GB = 1024.0


@dataclass(frozen=True, slots=True)
class FunctionSizing:
    """A function's memory (MB) and timeout (s), and where the values came from."""

    memory_mb: int
    timeout_s: int
    source: str
    batching_window_s: float | None = None  # an SQS event source's MaximumBatchingWindowInSeconds


def gb_seconds(memory_mb: float, duration_s: float) -> float:
    """Billed GB-seconds of one invocation."""
    return memory_mb / MB_PER_GB * duration_s


def project_sizing(handler: str = SCHEDULED_HANDLER) -> FunctionSizing:
    """The sizing of the project's function with ``handler`` (see the module docstring)."""
    return _sizing(str(TEMPLATE), handler)


@cache
def _sizing(template_path: str, handler: str) -> FunctionSizing:
    try:
        template = load_template(template_path)
    except Exception as error:  # an unreadable template must not stop a simulation
        return FunctionSizing(
            ASSUMED_MEMORY_MB, ASSUMED_TIMEOUT_S, f"assumed (template.yaml unreadable: {error})"
        )
    resources: dict[str, Any] = template.get("Resources") or {}
    globals_ = (template.get("Globals") or {}).get("Function") or {}
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        if properties.get("Handler") != handler:
            continue
        memory = _number(properties.get("MemorySize", globals_.get("MemorySize")))
        timeout = _number(properties.get("Timeout", globals_.get("Timeout")))
        return FunctionSizing(
            memory_mb=SAM_DEFAULT_MEMORY_MB if memory is None else memory,
            timeout_s=SAM_DEFAULT_TIMEOUT_S if timeout is None else timeout,
            source=f"template.yaml {logical_id}",
            batching_window_s=_batching_window(properties.get("Events")),
        )
    return FunctionSizing(
        ASSUMED_MEMORY_MB,
        ASSUMED_TIMEOUT_S,
        f"assumed (no function with handler {handler} in template.yaml yet)",
    )


def _batching_window(events: Any) -> float | None:
    if not isinstance(events, dict):
        return None
    for event in events.values():
        if isinstance(event, dict) and event.get("Type") == "SQS":
            window = (event.get("Properties") or {}).get("MaximumBatchingWindowInSeconds")
            number = _number(window)
            return None if number is None else float(number)
    return None


def _number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
