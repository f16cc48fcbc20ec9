"""Re-evaluating within one invocation: evaluate, wait, evaluate... for about 50 seconds.

The schedule invokes the scaler once a minute; inside, evaluations repeat every
max(PollInterval, the API's poll-duration header) seconds while the next one would still start
within ``window_s`` of the first and the invocation would still have ``evaluation_budget_s``
left for it. With PollInterval 10 that is 5 evaluations a minute (at 0, 10, ... 40 s), like the
reference scaler. The clock and the sleep are parameters, so tests never really wait.

A failed evaluation does not end the minute's scaling: the error is reported (``on_failure``)
and the loop goes on at the usual pace, so a transient fault (an API 503, a throttled AWS call,
a drain refused) costs one tick, not the rest of the minute. An error of a ``permanent_errors``
type (bad settings, group not found, token missing or refused) ends the loop at once: repeating
it every 10 s would only hammer the API with the same failing call. Either way, when any
evaluation failed, the loop raises the last error at the end (noting how many failed), so the
invocation fails and Lambda's error metric and alarms see it.

With ``repeat=False`` (``POLL_WITHIN_INVOCATION`` false: the push trigger reacts to new jobs
within seconds, so the schedule only has to catch up once a minute) the loop evaluates exactly
once and never sleeps; a failure is raised the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _ignore(_error: Exception) -> None:
    return None


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
    permanent_errors: tuple[type[Exception], ...] = (),
    on_failure: Callable[[Exception], None] = _ignore,
    repeat: bool = True,
) -> LoopResult:
    """Run ``evaluate`` (which returns the API's poll interval, or None) repeatedly.

    Stops when the next evaluation would start ``window_s`` or more after the first one, or
    when, after the wait, less than ``evaluation_budget_s`` of the invocation would remain, or
    after a permanent error, or after the first evaluation when ``repeat`` is false. Raises
    the last error when any evaluation failed.
    """
    started = clock()
    evaluations = 0
    failures: list[Exception] = []
    while True:
        api_interval_s = None
        evaluations += 1
        try:
            api_interval_s = evaluate()
        except Exception as error:
            failures.append(error)
            on_failure(error)
            if isinstance(error, permanent_errors):
                break
        if not repeat:
            break
        wait_s = max(poll_interval_s, api_interval_s or 0.0)
        next_start = clock() + wait_s
        if next_start - started >= window_s:
            break
        if remaining_s() - wait_s < evaluation_budget_s:
            break
        sleep(wait_s)
    if failures:
        last = failures[-1]
        last.add_note(f"{len(failures)} of {evaluations} evaluation(s) in this invocation failed")
        raise last
    return LoopResult(evaluations=evaluations, elapsed_s=clock() - started)
