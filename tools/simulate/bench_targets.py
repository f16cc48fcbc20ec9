"""The benchmark's data and its targets: per-label aggregates, the issue's target rules and
their verdicts, and the cost-against-p95 Pareto front. ``bench_report`` writes them up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tools.simulate.traces import SHAPES

REFERENCE = "reference (poll)"
PROJECT_POLL = "project (poll)"
PROJECT_PUSH = "project (push)"
PROJECT_WARM = "project (warm pool)"
MAIN_LABELS = (REFERENCE, PROJECT_POLL, PROJECT_PUSH, PROJECT_WARM)
# The sweep variant the report compares the defaults' waits with.
IDLE_TAIL_OFF = "ScaleInDemandWindow 0 (rule 7 off)"
# The issue's targets: defaults' waits where the reference's cooldown binds, and elsewhere.
DEFAULT_WAIT_FACTOR = 0.6
DEFAULT_WAIT_FACTOR_BY_SHAPE = {"monorepo-bursts": 1.0}
WARM_POOL_WAIT_FACTOR = 0.5
COST_FACTOR = 1.0
PUSH_LAMBDA_SHARE = 0.10
# Below 10 s a ratio is noise: the limit is then the reference's wait + 2 s.
ABSOLUTE_FLOOR_S = 10.0
ABSOLUTE_SLACK_S = 2.0


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One label's runs on one trace, averaged over seeds (dollars per run)."""

    runs: int
    jobs: float
    waited_share: float
    wait_mean: float
    wait_p50: float
    wait_p95: float
    wait_p99: float
    wait_max: float
    instance_hours: float
    oracle_hours: float
    efficiency: float
    interrupted_jobs: int
    scale_out_actions: float
    scale_in_actions: float
    evaluations: float
    lambda_gb_seconds: float
    unfinished_jobs: int
    cost_compute: float = 0.0
    cost_ebs: float = 0.0
    cost_lambda: float = 0.0
    launches: float = 0.0
    resumes: float = 0.0
    warm_launches: float = 0.0
    returned_to_pool: float = 0.0
    drained_instances: float = 0.0
    scheduled_invocations: float = 0.0
    push_invocations: float = 0.0

    @property
    def cost_total(self) -> float:
        return self.cost_compute + self.cost_ebs + self.cost_lambda

    @property
    def ebs_share(self) -> float:
        return self.cost_ebs / self.cost_total if self.cost_total else 0.0


@dataclass(frozen=True, slots=True)
class BenchData:
    """Everything the report needs."""

    aggregates: dict[tuple[str, str, str], Aggregate]
    main_seeds: tuple[int, ...]
    sweep_seeds: tuple[int, ...]
    sweep_labels: tuple[str, ...]
    sweep_overrides: dict[str, dict[str, object]]
    base_overrides: dict[str, object]
    shapes: tuple[str, ...] = tuple(SHAPES)
    main_labels: tuple[str, ...] = MAIN_LABELS
    plot_names: dict[str, str] = field(default_factory=dict)

    def main(self, shape: str, label: str) -> Aggregate:
        return self.aggregates[("main", shape, label)]

    def sweep(self, shape: str, label: str) -> Aggregate:
        return self.aggregates[("sweep", shape, label)]

    def sweep_reference(self, shape: str) -> Aggregate:
        return self.aggregates[("sweep-reference", shape, REFERENCE)]


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One target of one configuration on one trace."""

    configuration: str
    shape: str
    target: str
    reference: float | None
    value: float
    limit: float
    held: bool
    unit: str
    rule: str
    note: str = ""


def wait_limit(reference_s: float, factor: float) -> float:
    """``factor`` x the reference's wait when it is at least 10 s, else it + 2 s."""
    if reference_s >= ABSOLUTE_FLOOR_S:
        return factor * reference_s
    return reference_s + ABSOLUTE_SLACK_S


def _wait_rule(reference_s: float, factor: float) -> str:
    if reference_s >= ABSOLUTE_FLOOR_S:
        return f"≤ {wait_limit(reference_s, factor):.1f} s ({factor:g}x)"
    return f"≤ {wait_limit(reference_s, factor):.1f} s (+2 s)"


def wait_checks(
    configuration: str, shape: str, reference: Aggregate, point: Aggregate, factor: float
) -> list[TargetCheck]:
    checks = []
    for target, attribute in (("mean wait", "wait_mean"), ("p95 wait", "wait_p95")):
        ref = getattr(reference, attribute)
        value = getattr(point, attribute)
        limit = wait_limit(ref, factor)
        checks.append(
            TargetCheck(
                configuration, shape, target, ref, value, limit, value <= limit, "s",
                _wait_rule(ref, factor),
            )
        )  # fmt: skip
    return checks


def cost_check(
    configuration: str, shape: str, reference: Aggregate, point: Aggregate
) -> TargetCheck:
    limit = COST_FACTOR * reference.cost_total
    hours = ratio(point.instance_hours, reference.instance_hours)
    return TargetCheck(
        configuration, shape, "cost $", reference.cost_total, point.cost_total, limit,
        point.cost_total <= limit, "$", f"≤ ${limit:.2f} ({COST_FACTOR:g}x)",
        f"instance-hours {hours}",
    )  # fmt: skip


def interruption_check(configuration: str, shape: str, point: Aggregate) -> TargetCheck:
    count = float(point.interrupted_jobs)
    return TargetCheck(
        configuration, shape, "interrupted jobs", None, count, 0.0, count == 0, "", "= 0"
    )


def default_factor(shape: str) -> float:
    return DEFAULT_WAIT_FACTOR_BY_SHAPE.get(shape, DEFAULT_WAIT_FACTOR)


def defaults_checks(
    shape: str, reference: Aggregate, point: Aggregate, configuration: str = "defaults"
) -> list[TargetCheck]:
    """Defaults: cost ≤ 1.0x, waits ≤ 0.6x (1.0x on monorepo-bursts), nothing interrupted."""
    return [
        cost_check(configuration, shape, reference, point),
        *wait_checks(configuration, shape, reference, point, default_factor(shape)),
        interruption_check(configuration, shape, point),
    ]


def warm_pool_checks(
    shape: str, reference: Aggregate, point: Aggregate, configuration: str = "warm pool"
) -> list[TargetCheck]:
    """Warm pool: waits ≤ 0.5x everywhere, cost ≤ 1.0x (EBS included), nothing interrupted."""
    return [
        cost_check(configuration, shape, reference, point),
        *wait_checks(configuration, shape, reference, point, WARM_POOL_WAIT_FACTOR),
        interruption_check(configuration, shape, point),
    ]


def push_checks(
    shape: str, reference: Aggregate, poll: Aggregate, push: Aggregate
) -> list[TargetCheck]:
    """Push: Lambda GB-s ≤ 10 % of the reference's, p95 ≤ poll mode's, nothing interrupted."""
    gbs_limit = PUSH_LAMBDA_SHARE * reference.lambda_gb_seconds
    return [
        TargetCheck(
            "push", shape, "Lambda GB-s", reference.lambda_gb_seconds, push.lambda_gb_seconds,
            gbs_limit, push.lambda_gb_seconds <= gbs_limit, "GB-s",
            f"≤ {gbs_limit:.0f} GB-s (10 %)",
        ),
        TargetCheck(
            "push", shape, "p95 wait vs poll", poll.wait_p95, push.wait_p95, poll.wait_p95,
            push.wait_p95 <= poll.wait_p95, "s", f"≤ {poll.wait_p95:.1f} s (poll p95)",
        ),
        interruption_check("push", shape, push),
    ]  # fmt: skip


def target_checks(data: BenchData) -> list[TargetCheck]:
    """The issue's target table: defaults, warm pool and push on every trace."""
    checks: list[TargetCheck] = []
    for shape in data.shapes:
        reference = data.main(shape, REFERENCE)
        poll = data.main(shape, PROJECT_POLL)
        checks.extend(defaults_checks(shape, reference, poll))
        checks.extend(warm_pool_checks(shape, reference, data.main(shape, PROJECT_WARM)))
        checks.extend(push_checks(shape, reference, poll, data.main(shape, PROJECT_PUSH)))
    return checks


def variant_checks(data: BenchData, label: str) -> list[TargetCheck]:
    """A sweep variant against the targets of its kind, over the sweep's seeds."""
    checks = []
    warm = bool(data.sweep_overrides.get(label, {}).get("EnableWarmPool"))
    for shape in data.shapes:
        reference = data.sweep_reference(shape)
        point = data.sweep(shape, label)
        if warm:
            checks.extend(warm_pool_checks(shape, reference, point, label))
        else:
            checks.extend(defaults_checks(shape, reference, point, label))
    return checks


def pareto_front(points: Sequence[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The points no other point beats on both cost and p95 (ties kept), by cost."""
    front = []
    best = float("inf")
    for cost, p95, label in sorted(points, key=lambda point: (point[0], point[1])):
        if p95 < best:
            front.append((cost, p95, label))
            best = p95
    return front


def ratio(value: float, base: float) -> str:
    """``value / base`` as ``1.23x`` (``-`` for 0/0, ``∞`` for x/0)."""
    if base == 0:
        return "-" if value == 0 else "∞"
    return f"{value / base:.2f}x"
