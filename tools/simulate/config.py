"""Simulation settings: the stack's parameter names (plus simulator knobs) in, one value out.

``CONFIG.json`` is a flat object. Stack parameters keep the stack's names and meanings;
a key that is absent takes the simulated policy's own stack default (the reference stack
and this project differ in ``ScaleOutCooldownPeriod``, 300 s vs 0 s, and in the scaler
Lambda's sizing, which for the project is read from ``template.yaml``). Simulator knobs
(boot delay, shutdown, push delay) have the defaults documented in ``SETTINGS``. Unknown
keys, wrong types and out-of-range values are ``ConfigError``s.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tools.simulate import lambda_cost

POLICIES = ("project", "reference")
TRIGGERS = ("poll", "push")

# The push function's SQS batching window when the template does not say.
DEFAULT_PUSH_BATCH_WINDOW_S = 1.0
# z of the 95th percentile of the standard normal distribution.
Z95 = 1.6448536269514722


class ConfigError(ValueError):
    """A configuration value that the simulator cannot use; the message names the key."""


@dataclass(frozen=True, slots=True)
class BootDelay:
    """Launch-to-agents-registered delay: a shifted log-normal fitted to three quantiles.

    ``shift + LogNormal(mu, sigma)`` matches the median, 5th and 95th percentiles exactly
    (the defaults 75 s / 45 s / 150 s give shift 25 s, median of the log-normal part 50 s,
    sigma 0.557). Equal quantiles give a fixed delay.
    """

    median_s: float = 75.0
    p05_s: float = 45.0
    p95_s: float = 150.0

    def parameters(self) -> tuple[float, float, float]:
        """``(shift_s, mu, sigma)``; sigma 0 means a fixed delay of ``median_s``."""
        low, median, high = self.p05_s, self.median_s, self.p95_s
        if low == median == high:
            return (median, 0.0, 0.0)
        if not low < median < high:
            raise ConfigError(
                "boot delay quantiles must satisfy BootDelayP05 < BootDelayMedian < "
                f"BootDelayP95 (or all be equal), got {low}, {median}, {high}"
            )
        if high - median <= median - low:
            raise ConfigError(
                "boot delay must be right-skewed (BootDelayP95 - BootDelayMedian > "
                f"BootDelayMedian - BootDelayP05), got {low}, {median}, {high}"
            )
        shift = (median * median - low * high) / (2 * median - low - high)
        mu = math.log(median - shift)
        sigma = math.log((high - shift) / (median - shift)) / Z95
        return (shift, mu, sigma)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything one simulation run needs besides the trace, the policy and the seed."""

    # Stack parameters (names as in the stack; see SETTINGS for the JSON keys).
    agents_per_instance: int = 1
    min_size: int = 0
    max_size: int = 10
    instance_buffer: int = 0
    scale_out_factor: float = 1.0
    scale_in_factor: float = 0.0
    scale_out_for_waiting_jobs: bool = False
    scale_out_cooldown_s: float = 0.0
    scale_in_cooldown_s: float = 3600.0
    scale_in_idle_period_s: float = 600.0
    disable_scale_in: bool = True
    instance_scale_in_protection: bool = True
    instance_termination_grace_period_s: float = 3600.0
    availability_threshold: float = 0.5
    poll_interval_s: float = 10.0
    # Simulator knobs.
    boot_delay: BootDelay = BootDelay()
    in_service_delay_s: float = 15.0
    instance_shutdown_s: float = 20.0
    schedule_period_s: float = 60.0
    invocation_loop_s: float = 50.0
    push_event_delay_s: float = 2.0
    push_batch_window_s: float = DEFAULT_PUSH_BATCH_WINDOW_S
    lambda_memory_mb: float = 128.0
    lambda_timeout_s: float = 120.0
    push_lambda_memory_mb: float = 128.0
    evaluation_duration_s: float = 0.5
    sample_interval_s: float = 15.0


@dataclass(frozen=True, slots=True)
class Setting:
    """One ``CONFIG.json`` key: the field it sets, its type, bounds and meaning."""

    key: str
    field: str
    kind: type
    minimum: float | None
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("AgentsPerInstance", "agents_per_instance", int, 1, "agents per instance (spawn)"),
    Setting("MinSize", "min_size", int, 0, "fewest instances"),
    Setting("MaxSize", "max_size", int, 1, "most instances"),
    Setting("InstanceBuffer", "instance_buffer", int, 0, "spare instances while work is queued"),
    Setting("ScaleOutFactor", "scale_out_factor", float, 0, "multiplier on each scale-out step"),
    Setting("ScaleInFactor", "scale_in_factor", float, 0, "reference only: scale-in multiplier"),
    Setting(
        "ScaleOutForWaitingJobs", "scale_out_for_waiting_jobs", bool, None, "count waiting jobs"
    ),
    Setting("ScaleOutCooldownPeriod", "scale_out_cooldown_s", float, 0, "s between scale-outs"),
    Setting("ScaleInCooldownPeriod", "scale_in_cooldown_s", float, 0, "s between scale-ins"),
    Setting(
        "ScaleInIdlePeriod",
        "scale_in_idle_period_s",
        float,
        0,
        "s all agents of an instance stay idle before it leaves (0 = never, as the agent)",
    ),
    Setting("DisableScaleIn", "disable_scale_in", bool, None, "the scaler never lowers capacity"),
    Setting(
        "InstanceScaleInProtection",
        "instance_scale_in_protection",
        bool,
        None,
        "new instances are protected from ASG scale-in",
    ),
    Setting(
        "InstanceTerminationGracePeriod",
        "instance_termination_grace_period_s",
        float,
        0,
        "project only: terminating lifecycle hook timeout, s",
    ),
    Setting(
        "AvailabilityThreshold",
        "availability_threshold",
        float,
        0,
        "reference only: availability boost threshold (0 = off)",
    ),
    Setting("PollInterval", "poll_interval_s", float, 1, "s between evaluations in one invocation"),
    Setting("BootDelayMedian", "boot_delay.median_s", float, 0, "launch to agents registered"),
    Setting("BootDelayP05", "boot_delay.p05_s", float, 0, "5th percentile of the boot delay"),
    Setting("BootDelayP95", "boot_delay.p95_s", float, 0, "95th percentile of the boot delay"),
    Setting(
        "InServiceDelay", "in_service_delay_s", float, 0, "launch to ASG InService (capped by boot)"
    ),
    Setting(
        "InstanceShutdownDelay",
        "instance_shutdown_s",
        float,
        0,
        "terminate call to instance gone (still billed)",
    ),
    Setting("SchedulePeriod", "schedule_period_s", float, 1, "EventBridge schedule period, s"),
    Setting(
        "InvocationLoop",
        "invocation_loop_s",
        float,
        0,
        "reference only: s one scheduled invocation loops (the project's comes from its loop)",
    ),
    Setting("PushEventDelay", "push_event_delay_s", float, 0, "job scheduled to push evaluation"),
    Setting(
        "PushBatchWindow",
        "push_batch_window_s",
        float,
        0,
        "s of events batched into one push invocation (template's SQS batching window)",
    ),
    Setting("ScalerMemorySize", "lambda_memory_mb", float, 128, "scheduled scaler memory, MB"),
    Setting("ScalerTimeout", "lambda_timeout_s", float, 1, "scheduled scaler timeout, s"),
    Setting("PushScalerMemorySize", "push_lambda_memory_mb", float, 128, "push scaler memory, MB"),
    Setting(
        "EvaluationDuration",
        "evaluation_duration_s",
        float,
        0,
        "modelled wall time of one evaluation (project invocations), s",
    ),
    Setting("SampleInterval", "sample_interval_s", float, 1, "timeline sampling period, s"),
)
_BY_KEY = {setting.key: setting for setting in SETTINGS}


def policy_defaults(policy: str) -> SimConfig:
    """The stack defaults of ``policy`` ("project" or "reference")."""
    if policy == "reference":
        # The reference stack: 300 s scale-out cooldown, a 128 MB Lambda that loops ~50 s.
        return SimConfig(
            scale_out_cooldown_s=300.0,
            lambda_memory_mb=lambda_cost.REFERENCE_MEMORY_MB,
            lambda_timeout_s=lambda_cost.REFERENCE_TIMEOUT_S,
            push_lambda_memory_mb=lambda_cost.REFERENCE_MEMORY_MB,
        )
    if policy == "project":
        scheduled = lambda_cost.project_sizing(lambda_cost.SCHEDULED_HANDLER)
        push = lambda_cost.project_sizing(lambda_cost.PUSH_HANDLER)
        push_memory = push.memory_mb if push.source.startswith("template") else None
        window = push.batching_window_s
        return SimConfig(
            lambda_memory_mb=float(scheduled.memory_mb),
            lambda_timeout_s=float(scheduled.timeout_s),
            push_lambda_memory_mb=float(push_memory or scheduled.memory_mb),
            push_batch_window_s=DEFAULT_PUSH_BATCH_WINDOW_S if window is None else window,
        )
    raise ConfigError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")


def build_config(policy: str, overrides: dict[str, Any] | None = None) -> SimConfig:
    """``policy``'s defaults with ``overrides`` (``CONFIG.json`` keys) applied and checked."""
    config = policy_defaults(policy)
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ConfigError("the configuration must be a JSON object of stack parameter names")
    changes: dict[str, Any] = {}
    boot: dict[str, float] = {}
    for key, raw in overrides.items():
        setting = _BY_KEY.get(key)
        if setting is None:
            known = ", ".join(sorted(_BY_KEY))
            raise ConfigError(f"unknown configuration key {key!r}; known keys: {known}")
        value = _coerce(setting, raw)
        if setting.field.startswith("boot_delay."):
            boot[setting.field.removeprefix("boot_delay.")] = value
        else:
            changes[setting.field] = value
    if boot:
        changes["boot_delay"] = replace(config.boot_delay, **boot)
    config = replace(config, **changes)
    _check(config)
    return config


def load_config(policy: str, path: Path | None) -> SimConfig:
    """Read ``CONFIG.json`` (or take the defaults when ``path`` is None)."""
    if path is None:
        return build_config(policy)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read configuration {path}: {error.strerror}") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"configuration {path} is not valid JSON: {error}") from None
    return build_config(policy, document)


def describe_settings() -> list[tuple[str, str, str]]:
    """``(key, project default, meaning)`` rows for documentation."""
    defaults = policy_defaults("project")
    rows = []
    for setting in SETTINGS:
        owner: Any = defaults
        name = setting.field
        if name.startswith("boot_delay."):
            owner, name = defaults.boot_delay, name.removeprefix("boot_delay.")
        rows.append((setting.key, str(getattr(owner, name)), setting.meaning))
    return rows


def config_as_dict(config: SimConfig) -> dict[str, Any]:
    """The configuration as ``CONFIG.json`` keys (round-trips through ``build_config``)."""
    result: dict[str, Any] = {}
    for setting in SETTINGS:
        owner: Any = config
        name = setting.field
        if name.startswith("boot_delay."):
            owner, name = config.boot_delay, name.removeprefix("boot_delay.")
        result[setting.key] = getattr(owner, name)
    return result


def _coerce(setting: Setting, raw: Any) -> Any:
    key = setting.key
    if setting.kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ConfigError(f"{key} must be true or false, got {raw!r}")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ConfigError(f"{key} must be a number, got {raw!r}")
    try:
        number = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key} must be finite, got {raw!r}")
    if setting.kind is int:
        if number != int(number):
            raise ConfigError(f"{key} must be a whole number, got {raw!r}")
        number = int(number)
    if setting.minimum is not None and number < setting.minimum:
        raise ConfigError(f"{key} must be at least {setting.minimum:g}, got {raw!r}")
    return number


def _check(config: SimConfig) -> None:
    if config.min_size > config.max_size:
        raise ConfigError(
            f"MinSize ({config.min_size}) must not exceed MaxSize ({config.max_size})"
        )
    config.boot_delay.parameters()
