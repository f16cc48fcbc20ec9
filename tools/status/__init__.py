"""``python -m tools.status --stack NAME [--region R] [--json]``: the fleet on one screen.

What an operator reads before anything else: the queue's metrics now (Buildkite agent API, with
the stack's token), the Auto Scaling group (desired, min, max, instances by lifecycle state, the
warm pool when there is one), the scaler's last decisions and their reasons (its log group), the
stack's alarms in ALARM, and the settings that matter (MaxSize, AgentsPerInstance,
ScaleInIdlePeriod). ``tools.status.collect`` gathers, ``tools.status.cli`` prints.
"""
