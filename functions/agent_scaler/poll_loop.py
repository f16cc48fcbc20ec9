"""Re-evaluating within one invocation: evaluate, wait, evaluate... for about 50 seconds.

The schedule invokes the scaler once a minute; inside, evaluations repeat every
max(PollInterval, the API's poll-duration header) seconds while the next one would still start
within ``window_s`` of the first and the invocation would still have ``evaluation_budget_s``
left for it. With PollInterval 10 that is 5 evaluations a minute (at 0, 10, ... 40 s), like the
reference scaler. The clock and the sleep are parameters, so tests never really wait.
An evaluation that raises ends the loop (the invocation fails).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_WINDOW_S = 50.0


@dataclass(frozen=True, slots=True)
class LoopResult:
    evaluations: int
    elapsed_s: float


def run_poll_loop(
    evaluate: Callable[[], float | None],
    *,
    poll_interval_s: float,
    remaining_s: Callable[[], float],
    evaluation_budget_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    window_s: float = DEFAULT_WINDOW_S,
) -> LoopResult:
    """Run ``evaluate`` (which returns the API's poll interval, or None) repeatedly.

    Stops when the next evaluation would start ``window_s`` or more after the first one, or
    when, after the wait, less than ``evaluation_budget_s`` of the invocation would remain.
    """
    started = clock()
    evaluations = 0
    while True:
        api_interval_s = evaluate()
        evaluations += 1
        wait_s = max(poll_interval_s, api_interval_s or 0.0)
        next_start = clock() + wait_s
        if next_start - started >= window_s:
            break
        if remaining_s() - wait_s < evaluation_budget_s:
            break
        sleep(wait_s)
    return LoopResult(evaluations=evaluations, elapsed_s=clock() - started)
