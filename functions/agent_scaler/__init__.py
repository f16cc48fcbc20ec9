"""The agent scaler: keeps the Auto Scaling group's capacity in step with one Buildkite queue.

- ``policy``: the pure decision (``decide``), its value types and the configuration checks;
- ``config``: the function's settings, parsed from environment variables;
- ``state_tags``: the scaler state that survives cold starts, kept as tags on the group;
- ``queue_metrics``: the queue's metrics from the Buildkite agent API, token from SSM;
- ``group``: reading the group (observation) and acting on it (scale out, drain, tags);
- ``evaluation``: one observe -> decide -> act -> report cycle;
- ``reporting``: the evaluation's log line and EMF metrics;
- ``poll_loop``: re-evaluating within one invocation;
- ``handler``: the Lambda entry points (scheduled and push).
"""
