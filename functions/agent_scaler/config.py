"""The agent scaler's settings, parsed from the function's environment variables.

Required:

- ``BUILDKITE_QUEUE``: the queue the fleet serves (agent tag ``queue=<value>``).
- ``BUILDKITE_AGENT_TOKEN_PARAMETER``: name (``/buildkite/agent-token``) or ARN of the SSM
  parameter, normally a SecureString, that holds the agent registration token.
- ``AUTO_SCALING_GROUP_NAME``: the fleet's Auto Scaling group.

Optional (defaults are the stack's parameter defaults):

- ``BUILDKITE_AGENT_ENDPOINT``: agent API base URL (``https://agent.buildkite.com/v3``).
- ``AGENTS_PER_INSTANCE`` (1): agents each instance runs (the agent's spawn setting).
- ``MIN_SIZE`` (0) / ``MAX_SIZE`` (10): the configured group bounds; the group's live bounds
  are what the policy clamps to (scheduled actions change MinSize), these are checked.
- ``INSTANCE_BUFFER`` (0): spare instances kept while the queue has work.
- ``SCALE_OUT_FACTOR`` (1.0): multiplier on each scale-out step; 0 means no factor.
- ``SCALE_OUT_FOR_WAITING_JOBS`` (false): also count waiting jobs as demand.
- ``SCALE_IN_IDLE_PERIOD`` (600): seconds an idle agent waits before its instance leaves.
- ``DISABLE_SCALE_IN`` (true): when true the scaler never drains instances.
- ``SCALE_OUT_COOLDOWN_PERIOD`` (0): seconds between scale-outs; none is needed because booting
  instances count as capacity on the way.
- ``SCALE_IN_COOLDOWN_PERIOD`` (3600): seconds between drains.
- ``POLL_INTERVAL`` (10): seconds between evaluations within one invocation (never shorter
  than the agent API's ``Buildkite-Agent-Metrics-Poll-Duration``).
- ``INSTANCE_REGISTRATION_TIMEOUT`` (900): seconds after launch by which an in-service
  instance's agent should have registered; later, it is reported as not registered (metric
  ``InstancesNotRegistered``) and no longer counted as booting. The default is well above a
  normal boot (1-3 minutes) and at least the stack's default InstanceCreationTimeout.
- ``SCALE_IN_DEMAND_WINDOW`` (600, 0 to 3600): seconds of demand history the fleet is sized
  for; in-service instances above the most demand wanted over the window are drained through
  the terminating lifecycle hook (a running job finishes first). 0 turns this off.
- ``WARM_POOL_ENABLED`` (false): the group has a warm pool; the scaler reads it
  (DescribeWarmPool) and reports its instances.
- ``WARM_POOL_MAX_PREPARED_CAPACITY`` (-1, >= -1): -1 lets the scaler size the warm pool from
  recent demand (PutWarmPool MaxGroupPreparedCapacity); a value >= 0 is fixed by the stack and
  left alone. Only read when ``WARM_POOL_ENABLED`` is true.
- ``POLL_WITHIN_INVOCATION`` (true): the scheduled invocation re-evaluates every PollInterval
  for about 50 s; false (the stack's choice when the push trigger is on) evaluates once per
  invocation, since the push function reacts to new jobs within seconds.

Read by Powertools, not here: ``POWERTOOLS_SERVICE_NAME`` (log ``service`` field, default
``agent-scaler``), ``POWERTOOLS_METRICS_NAMESPACE`` (default ``Buildkite``),
``POWERTOOLS_LOG_LEVEL``. boto3 honours ``AWS_ENDPOINT_URL`` (e.g. moto in server mode).

Booleans are ``true``/``false`` (any case). Every error names the variable and its value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from agent_scaler.policy import MAX_DEMAND_WINDOW, ConfigError, ScalerConfig

DEFAULT_AGENT_ENDPOINT = "https://agent.buildkite.com/v3"


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the scaler reads and acts, and how it scales."""

    queue: str
    agent_endpoint: str
    token_parameter: str
    auto_scaling_group_name: str
    scaler: ScalerConfig
    # False: the scheduled invocation evaluates once instead of looping (push trigger on).
    poll_within_invocation: bool = True
    # The group has a warm pool to read (WARM_POOL_ENABLED).
    warm_pool_enabled: bool = False


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    """Parse and validate the settings; raises ``ConfigError`` naming the bad variable."""
    reader = _Reader(environ)
    warm_pool_enabled = reader.boolean("WARM_POOL_ENABLED", False)
    max_prepared = reader.integer("WARM_POOL_MAX_PREPARED_CAPACITY", -1)
    if max_prepared < -1:
        raise ConfigError(
            "WARM_POOL_MAX_PREPARED_CAPACITY must be -1 (the scaler sizes the warm pool) or an "
            f"integer >= 0 (got {max_prepared!r})"
        )
    demand_window = reader.number("SCALE_IN_DEMAND_WINDOW", 600)
    if not 0 <= demand_window <= MAX_DEMAND_WINDOW:
        raise ConfigError(
            f"SCALE_IN_DEMAND_WINDOW must be a number of seconds from 0 (off) to "
            f"{MAX_DEMAND_WINDOW} (got {demand_window:g})"
        )
    settings = Settings(
        queue=reader.text("BUILDKITE_QUEUE"),
        agent_endpoint=reader.text("BUILDKITE_AGENT_ENDPOINT", DEFAULT_AGENT_ENDPOINT),
        token_parameter=reader.text("BUILDKITE_AGENT_TOKEN_PARAMETER"),
        auto_scaling_group_name=reader.text("AUTO_SCALING_GROUP_NAME"),
        scaler=ScalerConfig(
            agents_per_instance=reader.integer("AGENTS_PER_INSTANCE", 1),
            min_size=reader.integer("MIN_SIZE", 0),
            max_size=reader.integer("MAX_SIZE", 10),
            instance_buffer=reader.integer("INSTANCE_BUFFER", 0),
            scale_out_factor=reader.number("SCALE_OUT_FACTOR", 1.0),
            scale_out_for_waiting_jobs=reader.boolean("SCALE_OUT_FOR_WAITING_JOBS", False),
            scale_in_idle_period=reader.number("SCALE_IN_IDLE_PERIOD", 600),
            disable_scale_in=reader.boolean("DISABLE_SCALE_IN", True),
            scale_out_cooldown_period=reader.number("SCALE_OUT_COOLDOWN_PERIOD", 0),
            scale_in_cooldown_period=reader.number("SCALE_IN_COOLDOWN_PERIOD", 3600),
            poll_interval=reader.number("POLL_INTERVAL", 10),
            instance_registration_timeout=reader.number("INSTANCE_REGISTRATION_TIMEOUT", 900),
            scale_in_demand_window=demand_window,
            # The stack always gives the group the terminating lifecycle hook.
            drains_wait_for_jobs=True,
            size_warm_pool=warm_pool_enabled and max_prepared == -1,
        ),
        poll_within_invocation=reader.boolean("POLL_WITHIN_INVOCATION", True),
        warm_pool_enabled=warm_pool_enabled,
    )
    if not settings.agent_endpoint.startswith(("https://", "http://")):
        raise ConfigError(
            f"BUILDKITE_AGENT_ENDPOINT must be an http(s) URL (got {settings.agent_endpoint!r})"
        )
    return settings


class _Reader:
    """Reads typed values from the environment; a missing optional value takes its default."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def text(self, name: str, default: str | None = None) -> str:
        value = self._raw(name)
        if value is None:
            if default is None:
                raise ConfigError(f"environment variable {name} is required")
            return default
        return value

    def integer(self, name: str, default: int) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{name} must be an integer (got {value!r})") from None

    def number(self, name: str, default: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number (got {value!r})")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() == "true":
            return True
        if value.lower() == "false":
            return False
        raise ConfigError(f"{name} must be true or false (got {value!r})")
