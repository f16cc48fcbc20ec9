"""Run a Lambda handler locally, without Docker, against any endpoint.

    python -m tools.invoke_scaler --event events/scheduled.json --env-vars events/env.json \
        [--function AgentScalerFunction] [--handler agent_scaler.handler.lambda_handler] \
        [--aws-endpoint http://127.0.0.1:5000] [--timeout 120] [--once]

``--env-vars`` takes the file ``sam local invoke --env-vars`` takes: ``{"<LogicalId>": {...}}``
and/or ``{"Parameters": {...}}`` (applied to every function, overridden per function).
``--aws-endpoint`` sets ``AWS_ENDPOINT_URL`` (e.g. moto in server mode) and, for that local
endpoint only, a default region and placeholder credentials when none are set. ``--once`` gives
the context so little remaining time that the scheduled handler evaluates exactly once.
The handler's return value is printed as JSON; an exception exits with status 1.

The same thing from Python (the local demo and the tests use it)::

    from tools.invoke_scaler import invoke
    result = invoke(lambda_handler, event, env, deadline_s=120)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FUNCTION = "AgentScalerFunction"
DEFAULT_HANDLER = "agent_scaler.handler.lambda_handler"
DEFAULT_TIMEOUT_S = 120.0
ONCE_DEADLINE_S = 1.0
LOCAL_ENDPOINT_DEFAULTS = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}


@dataclass
class LocalContext:
    """The parts of the Lambda context object handlers and Powertools read."""

    function_name: str
    deadline_s: float
    memory_limit_in_mb: int = 128
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "local"
    log_stream_name: str = "local"
    clock: Callable[[], float] = time.monotonic
    _started: float = field(init=False)

    def __post_init__(self) -> None:
        self._started = self.clock()

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        remaining_s = self.deadline_s - (self.clock() - self._started)
        return max(0, int(remaining_s * 1000))


def invoke(
    handler: Callable[[Any, Any], Any],
    event: Any,
    env: Mapping[str, str],
    deadline_s: float = DEFAULT_TIMEOUT_S,
    *,
    function_name: str = DEFAULT_FUNCTION,
) -> Any:
    """Call ``handler(event, context)`` with ``env`` set in ``os.environ`` for the call only."""
    with environment(env):
        return handler(event, LocalContext(function_name=function_name, deadline_s=deadline_s))


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in ``os.environ``, restoring every changed variable afterwards."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update({name: str(value) for name, value in env.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_env_vars(path: Path, function: str) -> dict[str, str]:
    """The variables ``sam local invoke --env-vars`` would give ``function``."""
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object")
    env: dict[str, str] = {}
    for section in ("Parameters", function):
        values = document.get(section) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: {section!r} must map variable names to values")
        env.update({name: str(value) for name, value in values.items()})
    return env


def resolve_handler(dotted: str) -> Callable[[Any, Any], Any]:
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name:
        raise ValueError(f"handler must be module.function, got {dotted!r}")
    return getattr(importlib.import_module(module_name), attribute)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.invoke_scaler",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--event", type=Path, required=True, help="event JSON file")
    parser.add_argument("--env-vars", type=Path, help="sam local style environment JSON file")
    parser.add_argument("--function", default=DEFAULT_FUNCTION, help="logical id in --env-vars")
    parser.add_argument("--handler", default=DEFAULT_HANDLER, help="module.function to call")
    parser.add_argument("--aws-endpoint", help="AWS endpoint URL (sets AWS_ENDPOINT_URL)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds the context allows"
    )
    parser.add_argument("--once", action="store_true", help="evaluate once (short deadline)")
    args = parser.parse_args(argv)

    env = load_env_vars(args.env_vars, args.function) if args.env_vars else {}
    if args.aws_endpoint:
        env["AWS_ENDPOINT_URL"] = args.aws_endpoint
        for name, value in LOCAL_ENDPOINT_DEFAULTS.items():
            aliases = (name, "AWS_DEFAULT_REGION") if name == "AWS_REGION" else (name,)
            if not any(env.get(alias) or os.environ.get(alias) for alias in aliases):
                env[name] = value
    event = json.loads(args.event.read_text())
    handler = resolve_handler(args.handler)
    deadline_s = ONCE_DEADLINE_S if args.once else args.timeout
    try:
        result = invoke(handler, event, env, deadline_s, function_name=args.function)
    except Exception as exc:
        print(f"invocation failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
