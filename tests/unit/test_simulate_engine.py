"""The simulator's event engine: virtual time, ordering, cancellation, stopping."""

from __future__ import annotations

import pytest

from tools.simulate.engine import ARRIVAL, FLEET, SCALER, EventEngine


def test_actions_run_in_time_order_whatever_the_order_they_were_scheduled_in() -> None:
    engine = EventEngine()
    seen: list[tuple[float, str]] = []
    for at, name in ((30.0, "c"), (10.0, "a"), (20.0, "b")):
        engine.schedule(at, lambda at=at, name=name: seen.append((at, name)))
    while engine.step():
        assert engine.now == seen[-1][0]
    assert seen == [(10.0, "a"), (20.0, "b"), (30.0, "c")]


def test_same_instant_runs_by_priority_then_insertion_order() -> None:
    engine = EventEngine()
    seen: list[str] = []
    engine.schedule(5.0, lambda: seen.append("scaler"), SCALER)
    engine.schedule(5.0, lambda: seen.append("arrival-1"), ARRIVAL)
    engine.schedule(5.0, lambda: seen.append("fleet"), FLEET)
    engine.schedule(5.0, lambda: seen.append("arrival-2"), ARRIVAL)
    while engine.step():
        pass
    assert seen == ["fleet", "arrival-1", "arrival-2", "scaler"]


def test_an_action_can_schedule_more_at_the_current_instant_and_later() -> None:
    engine = EventEngine()
    seen: list[tuple[str, float]] = []

    def first() -> None:
        seen.append(("first", engine.now))
        engine.after(0.0, lambda: seen.append(("same instant", engine.now)))
        engine.after(2.5, lambda: seen.append(("later", engine.now)))

    engine.schedule(1.0, first)
    while engine.step():
        pass
    assert seen == [("first", 1.0), ("same instant", 1.0), ("later", 3.5)]


def test_scheduling_in_the_past_is_refused() -> None:
    engine = EventEngine()
    engine.schedule(10.0, lambda: None)
    engine.step()
    with pytest.raises(ValueError, match="before the clock"):
        engine.schedule(9.0, lambda: None)


def test_a_cancelled_action_never_runs() -> None:
    engine = EventEngine()
    seen: list[str] = []
    handle = engine.schedule(1.0, lambda: seen.append("cancelled"))
    engine.schedule(2.0, lambda: seen.append("kept"))
    handle.cancel()
    assert engine.next_time() == 2.0
    while engine.step():
        pass
    assert seen == ["kept"]


def test_run_until_stops_on_the_condition_or_at_the_horizon() -> None:
    engine = EventEngine()
    seen: list[float] = []
    for at in (1.0, 2.0, 3.0, 4.0):
        engine.schedule(at, lambda at=at: seen.append(at))
    engine.run_until(lambda: len(seen) == 2, horizon=100.0)
    assert seen == [1.0, 2.0]
    assert engine.now == 2.0
    engine.run_until(lambda: False, horizon=3.5)
    assert seen == [1.0, 2.0, 3.0]
    assert engine.now == 3.5
    assert engine.next_time() == 4.0
