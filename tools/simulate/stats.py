"""Summary statistics of job waits (linear-interpolated percentiles, as numpy's default)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WaitSummary:
    """Job wait in seconds: mean, median, 95th and 99th percentile, maximum."""

    mean: float
    p50: float
    p95: float
    p99: float
    max: float

    def as_json(self) -> dict[str, float]:
        return {
            "mean": round(self.mean, 3),
            "p50": round(self.p50, 3),
            "p95": round(self.p95, 3),
            "p99": round(self.p99, 3),
            "max": round(self.max, 3),
        }


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of already sorted values (0 for none), linearly interpolated."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * fraction
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] * (1 - weight) + sorted_values[upper] * weight


def summarize_waits(waits: Iterable[float]) -> WaitSummary:
    """Summarize job waits (all zeros for no jobs)."""
    ordered = sorted(waits)
    if not ordered:
        return WaitSummary(0.0, 0.0, 0.0, 0.0, 0.0)
    return WaitSummary(
        mean=math.fsum(ordered) / len(ordered),
        p50=percentile(ordered, 0.50),
        p95=percentile(ordered, 0.95),
        p99=percentile(ordered, 0.99),
        max=ordered[-1],
    )
