"""Run the publish steps one after another, stopping at the first failure."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from tools.publish.plan import Step


def run_steps(steps: Sequence[Step]) -> Step | None:
    """Run each step (a command without a shell, or an in-process action); return the one that
    failed, or None when all succeeded."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    for number, step in enumerate(steps, start=1):
        print(f"[{number}/{len(steps)}] {step.description}", flush=True)
        if step.action is not None:
            try:
                step.action()
            except (OSError, ValueError) as error:
                print(f"error: {error}", file=sys.stderr, flush=True)
                return step
            continue
        print(f"$ {step.shell()}", flush=True)
        if subprocess.run(step.argv, env=env, check=False).returncode != 0:
            return step
    return None
