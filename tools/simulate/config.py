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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tools.simulate import lambda_cost, prices

POLICIES = ("project", "reference")
TRIGGERS = ("poll", "push")

# The push function's SQS batching window when the template does not say.
DEFAULT_PUSH_BATCH_WINDOW_S = 1.0
WARM_POOL_STATES = ("Stopped", "Hibernated")
# The published hibernate-resume saving over a stopped start (see ``ResumeDelay``).
HIBERNATED_RESUME_SAVING_S = 0.5
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


def resume_delay_default() -> BootDelay:
    """Warm-pool exit (``Warmed:Stopped`` -> agents registered), from published measurements.

    - 5th percentile 21 s: starting a stopped instance until it answers SSH, measured at
      21.2 s (m7i.large, Amazon Linux 2023, one run, 2026-01-31; hibernate resume 20.7 s)
      by https://github.com/brevdev/ec2-coldboot-research (docs/start-stopped-results.md,
      docs/hibernate-results.md): the fastest a resumed instance can be, before its agent
      starts.
    - median 36 s: "Launching a new EC2 instance from warm pool ... Duration: 36s", the
      scaling activity of an instance leaving a warm pool in the AWS EC2 Auto Scaling
      workshop (https://ec2spotworkshops.com/efficient-and-resilient-ec2-auto-scaling/lab1/
      100-launch-from-warm-pool.html): start, lifecycle hook and InService.
    - 95th percentile 75 s: an assumption (no published tail): as slow as a median cold
      boot.

    A Hibernated pool resumes ``HIBERNATED_RESUME_SAVING_S`` (0.5 s, the measured
    difference) sooner. Chosen from the sources before any benchmark ran; never tuned.
    """
    return BootDelay(median_s=36.0, p05_s=21.0, p95_s=75.0)


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
    scale_in_demand_window_s: float = 600.0
    enable_warm_pool: bool = False
    warm_pool_min_size: int = 0
    warm_pool_max_prepared_capacity: int = -1
    warm_pool_state: str = "Stopped"
    warm_pool_reuse_on_scale_in: bool = True
    instance_types: str = prices.DEFAULT_INSTANCE_TYPE
    on_demand_percentage: float = 100.0
    root_volume_size_gb: float = prices.ROOT_VOLUME_GB
    # Simulator knobs.
    boot_delay: BootDelay = BootDelay()
    resume_delay: BootDelay = field(default_factory=resume_delay_default)
    instance_hourly_usd: float = 0.0  # 0 = the published price of the first InstanceTypes
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

    @property
    def instance_type(self) -> str:
        """The launch template's type (the first of InstanceTypes)."""
        return self.instance_types.split(",")[0].strip()

    def prices(self, lambda_architecture: str) -> prices.Prices:
        """What this setup pays (compute at on-demand, also for spot: an upper bound)."""
        hourly = self.instance_hourly_usd or prices.ON_DEMAND_HOURLY_USD[self.instance_type]
        return prices.Prices(
            instance_hourly_usd=hourly,
            root_volume_gb=self.root_volume_size_gb,
            lambda_gb_second_usd=prices.GB_SECOND_USD[lambda_architecture],
        )


@dataclass(frozen=True, slots=True)
class Setting:
    """One ``CONFIG.json`` key: the field it sets, its type, bounds and meaning."""

    key: str
    field: str
    kind: type
    minimum: float | None
    meaning: str
    choices: tuple[str, ...] = ()
    maximum: float | None = None


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
    Setting(
        "ScaleInDemandWindow",
        "scale_in_demand_window_s",
        float,
        0,
        "project only: s of demand history the fleet keeps capacity for (0 = off)",
        maximum=3600,  # the stack's limit: the history lives in one group tag
    ),
    Setting("EnableWarmPool", "enable_warm_pool", bool, None, "a warm pool of prepared instances"),
    Setting("WarmPoolMinSize", "warm_pool_min_size", int, 0, "fewest instances in the warm pool"),
    Setting(
        "WarmPoolMaxPreparedCapacity",
        "warm_pool_max_prepared_capacity",
        int,
        -1,
        "group + pool instances the pool fills up to (-1 = the scaler sizes it from demand)",
    ),
    Setting(
        "WarmPoolState",
        "warm_pool_state",
        str,
        None,
        "warm instances are Stopped or Hibernated",
        choices=WARM_POOL_STATES,
    ),
    Setting(
        "WarmPoolReuseOnScaleIn",
        "warm_pool_reuse_on_scale_in",
        bool,
        None,
        "a scaled-in instance returns to the pool (when it has room)",
    ),
    Setting("InstanceTypes", "instance_types", str, None, "comma-separated instance types"),
    Setting(
        "OnDemandPercentage",
        "on_demand_percentage",
        float,
        0,
        "percentage of on-demand instances (the rest spot, priced at on-demand here)",
        maximum=100,
    ),
    Setting("RootVolumeSize", "root_volume_size_gb", float, 1, "root volume GiB (billed as gp3)"),
    Setting("BootDelayMedian", "boot_delay.median_s", float, 0, "launch to agents registered"),
    Setting("BootDelayP05", "boot_delay.p05_s", float, 0, "5th percentile of the boot delay"),
    Setting("BootDelayP95", "boot_delay.p95_s", float, 0, "95th percentile of the boot delay"),
    Setting("ResumeDelayMedian", "resume_delay.median_s", float, 0, "warm pool exit to agents"),
    Setting("ResumeDelayP05", "resume_delay.p05_s", float, 0, "5th percentile of the resume delay"),
    Setting(
        "ResumeDelayP95", "resume_delay.p95_s", float, 0, "95th percentile of the resume delay"
    ),
    Setting(
        "InstanceHourlyPrice",
        "instance_hourly_usd",
        float,
        0,
        "on-demand $ per instance-hour (0 = the published price of the first InstanceTypes)",
    ),
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
    nested: dict[str, dict[str, float]] = {}
    for key, raw in overrides.items():
        setting = _BY_KEY.get(key)
        if setting is None:
            known = ", ".join(sorted(_BY_KEY))
            raise ConfigError(f"unknown configuration key {key!r}; known keys: {known}")
        value = _coerce(setting, raw)
        owner, _, name = setting.field.rpartition(".")
        if owner:
            nested.setdefault(owner, {})[name] = value
        else:
            changes[setting.field] = value
    for owner, values in nested.items():
        changes[owner] = replace(getattr(config, owner), **values)
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
        owner, name = _owner(defaults, setting.field)
        rows.append((setting.key, str(getattr(owner, name)), setting.meaning))
    return rows


def config_as_dict(config: SimConfig) -> dict[str, Any]:
    """The configuration as ``CONFIG.json`` keys (round-trips through ``build_config``)."""
    result: dict[str, Any] = {}
    for setting in SETTINGS:
        owner, name = _owner(config, setting.field)
        result[setting.key] = getattr(owner, name)
    return result


def _owner(config: SimConfig, field_name: str) -> tuple[Any, str]:
    owner, _, name = field_name.rpartition(".")
    return (getattr(config, owner) if owner else config), name


def _coerce(setting: Setting, raw: Any) -> Any:
    key = setting.key
    if setting.kind is str:
        if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            raw = ",".join(raw)  # InstanceTypes as a JSON list
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(f"{key} must be a non-empty string, got {raw!r}")
        if setting.choices and raw not in setting.choices:
            raise ConfigError(f"{key} must be one of {', '.join(setting.choices)}, got {raw!r}")
        return raw.strip()
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
    if setting.maximum is not None and number > setting.maximum:
        raise ConfigError(f"{key} must be at most {setting.maximum:g}, got {raw!r}")
    return number


def _check(config: SimConfig) -> None:
    if config.min_size > config.max_size:
        raise ConfigError(
            f"MinSize ({config.min_size}) must not exceed MaxSize ({config.max_size})"
        )
    config.boot_delay.parameters()
    try:
        config.resume_delay.parameters()
    except ConfigError as error:
        raise ConfigError(str(error).replace("BootDelay", "ResumeDelay")) from None
    types = [name.strip() for name in config.instance_types.split(",")]
    if not all(types):
        raise ConfigError(f"InstanceTypes has an empty entry: {config.instance_types!r}")
    if not config.instance_hourly_usd and types[0] not in prices.ON_DEMAND_HOURLY_USD:
        known = ", ".join(sorted(prices.ON_DEMAND_HOURLY_USD))
        raise ConfigError(
            f"no published price for instance type {types[0]!r} in tools/simulate/prices.py "
            f"(known: {known}); set InstanceHourlyPrice"
        )
    if config.enable_warm_pool:
        problems = []
        if config.on_demand_percentage < 100:
            problems.append(f"OnDemandPercentage is {config.on_demand_percentage:g} (spot)")
        if len(types) > 1:
            problems.append(f"InstanceTypes lists {len(types)} types ({config.instance_types})")
        if problems:
            raise ConfigError(
                "EnableWarmPool needs an on-demand group with one instance type "
                "(OnDemandPercentage 100 and a single InstanceTypes entry): AWS refuses a warm "
                "pool on a group with a mixed instances policy or Spot Instances; "
                + "; ".join(problems)
            )
        if (
            config.warm_pool_max_prepared_capacity >= 0
            and config.warm_pool_max_prepared_capacity > config.max_size
        ):
            raise ConfigError(
                f"WarmPoolMaxPreparedCapacity ({config.warm_pool_max_prepared_capacity}) must "
                f"not exceed MaxSize ({config.max_size})"
            )
