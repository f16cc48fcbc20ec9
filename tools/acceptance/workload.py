"""The jobs the acceptance run sends through the stack: a burst of short jobs and one long job.

Both are ``sleep`` commands, so a job's run time is known in advance and any extra is the
agent's own overhead. The long job must still be running when the stack update (step 4) is
applied: it is the job a careless update would kill.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

LONG_JOB_KEY = "long"
BURST_KEY = "burst"


@dataclass(frozen=True)
class Workload:
    burst_jobs: int = 6
    short_job_s: int = 60
    long_job_s: int = 1200

    def pipeline_configuration(self, queue: str) -> str:
        """The pipeline's steps (JSON, which is YAML too), every step on ``queue``."""
        agents = {"queue": queue}
        steps = [
            {
                "label": f"long job ({self.long_job_s} s)",
                "key": LONG_JOB_KEY,
                "command": f"sleep {self.long_job_s}",
                "agents": agents,
            },
            {
                "label": f"burst ({self.short_job_s} s)",
                "key": BURST_KEY,
                "command": f"sleep {self.short_job_s}",
                "parallelism": self.burst_jobs,
                "agents": agents,
            },
        ]
        return json.dumps({"steps": steps}, indent=2)

    @property
    def job_count(self) -> int:
        return self.burst_jobs + 1
