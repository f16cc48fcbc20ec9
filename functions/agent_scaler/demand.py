"""Recent demand: the most instances the fleet wanted in each slice of the last minutes.

The scaler keeps this history in ``ScalerState.demand_peaks`` as (bucket start, peak) pairs,
oldest first, over a horizon cut into ``BUCKETS`` equal buckets of whole seconds, so it fits
in one group tag (see state_tags) for any horizon up to the stack's limits. Pure functions;
times are epoch seconds.
"""

from __future__ import annotations

import math

BUCKETS = 20

DemandPeaks = tuple[tuple[float, int], ...]


def bucket_seconds(horizon: float) -> int:
    """Length of one bucket for a history that spans ``horizon`` seconds (> 0): whole seconds,
    so bucket starts are whole epoch seconds."""
    return max(1, math.ceil(horizon / BUCKETS))


def record(peaks: DemandPeaks, now: float, wanted: int, horizon: float) -> DemandPeaks:
    """The history with ``wanted`` instances seen at ``now``, buckets older than the horizon
    dropped. A horizon of 0 keeps no history."""
    if horizon <= 0:
        return ()
    length = bucket_seconds(horizon)
    start = math.floor(now / length) * length
    kept = [(at, peak) for at, peak in peaks if at + length > now - horizon and at <= start]
    if kept and kept[-1][0] == start:
        kept[-1] = (start, max(kept[-1][1], wanted))
    else:
        kept.append((start, wanted))
    return tuple(kept)


def peak(peaks: DemandPeaks, now: float, window: float, horizon: float) -> int:
    """The most instances wanted in any bucket that overlaps the last ``window`` seconds
    (0 when none does). ``horizon`` is the one the history was recorded with."""
    if window <= 0 or horizon <= 0:
        return 0
    length = bucket_seconds(horizon)
    return max((p for at, p in peaks if at + length > now - window and at <= now), default=0)


def covers(peaks: DemandPeaks, now: float, window: float) -> bool:
    """Whether the history reaches back over the whole of the last ``window`` seconds."""
    return bool(peaks) and peaks[0][0] <= now - window
