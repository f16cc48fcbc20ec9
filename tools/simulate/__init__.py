"""Discrete-event simulator of an elastic Buildkite agent fleet, and its benchmark.

A virtual clock drives jobs from a trace through an Auto Scaling group of booting,
working and idling instances while a scaler model evaluates on its real schedule: either
the reference scaler (``tools.simulate.reference_policy``, reproduced from its own table
tests) or the project's real ``agent_scaler.policy.decide``. Run it as a command::

    python -m tools.simulate --trace TRACE.csv --policy project --out RESULT.json

or in process with ``tools.simulate.runner.simulate``. Runs are priced in dollars (compute,
EBS, Lambda) with the published prices kept in ``tools.simulate.prices``.
``python -m tools.simulate.bench`` writes ``docs/benchmarks.md``;
``python -m tools.simulate.traces`` writes the standard traces.
"""
