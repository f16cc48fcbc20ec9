"""The benchmark report: target verdicts, tables, the trade-off plot and docs/benchmarks.md.

Every number and every verdict in the report is computed from the runs; the prose around
them describes the model and the mechanisms, and its conditional statements are chosen by
the numbers, so a rerun after a policy change writes a report that is still true.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.simulate.config import describe_settings, policy_defaults
from tools.simulate.lambda_cost import PUSH_HANDLER, SCHEDULED_HANDLER, project_sizing
from tools.simulate.traces import SHAPES

REFERENCE = "reference (poll)"
PROJECT_POLL = "project (poll)"
PROJECT_PUSH = "project (push)"
MAIN_LABELS = (REFERENCE, PROJECT_POLL, PROJECT_PUSH)
RELATIVE_LIMIT = 0.6
ABSOLUTE_FLOOR_S = 10.0
ABSOLUTE_SLACK_S = 2.0


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One label's runs on one trace, averaged over seeds."""

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


@dataclass(frozen=True, slots=True)
class BenchData:
    """Everything the report needs."""

    aggregates: dict[tuple[str, str, str], Aggregate]
    main_seeds: tuple[int, ...]
    sweep_seeds: tuple[int, ...]
    sweep_labels: tuple[str, ...]
    sweep_overrides: dict[str, dict[str, object]]
    whatif_labels: tuple[str, ...]
    fast_boot: dict[str, object]
    base_overrides: dict[str, object]

    def main(self, shape: str, label: str) -> Aggregate:
        return self.aggregates[("main", shape, label)]

    def sweep(self, shape: str, label: str) -> Aggregate:
        return self.aggregates[("sweep", shape, label)]

    def whatif(self, shape: str, label: str) -> Aggregate:
        return self.aggregates[("whatif", shape, label)]


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One target on one trace."""

    shape: str
    target: str
    reference: float | None
    project: float
    limit: float
    held: bool
    unit: str


def wait_limit(reference_s: float) -> float:
    """The wait target: 0.6x the reference's when it is at least 10 s, else it + 2 s."""
    if reference_s >= ABSOLUTE_FLOOR_S:
        return RELATIVE_LIMIT * reference_s
    return reference_s + ABSOLUTE_SLACK_S


def checks_for(
    shape: str, reference: Aggregate, project: Aggregate, push: Aggregate | None
) -> list[TargetCheck]:
    """The issue's targets for one trace (push only in the main comparison)."""
    checks = [
        TargetCheck(
            shape,
            "mean wait",
            reference.wait_mean,
            project.wait_mean,
            wait_limit(reference.wait_mean),
            project.wait_mean <= wait_limit(reference.wait_mean),
            "s",
        ),
        TargetCheck(
            shape,
            "p95 wait",
            reference.wait_p95,
            project.wait_p95,
            wait_limit(reference.wait_p95),
            project.wait_p95 <= wait_limit(reference.wait_p95),
            "s",
        ),
        TargetCheck(
            shape,
            "instance-hours",
            reference.instance_hours,
            project.instance_hours,
            reference.instance_hours,
            project.instance_hours <= reference.instance_hours,
            "h",
        ),
        TargetCheck(
            shape,
            "interrupted jobs",
            None,
            float(project.interrupted_jobs),
            0.0,
            project.interrupted_jobs == 0,
            "",
        ),
    ]
    if push is not None:
        cut = push.wait_p95 < project.wait_p95 or project.wait_p95 == push.wait_p95 == 0.0
        checks.append(
            TargetCheck(
                shape, "push p95 < poll p95", None, push.wait_p95, project.wait_p95, cut, "s"
            )
        )
    return checks


def main_checks(data: BenchData) -> list[TargetCheck]:
    checks = []
    for shape in SHAPES:
        checks.extend(
            checks_for(
                shape,
                data.main(shape, REFERENCE),
                data.main(shape, PROJECT_POLL),
                data.main(shape, PROJECT_PUSH),
            )
        )
        push = data.main(shape, PROJECT_PUSH)
        if push.interrupted_jobs:
            checks.append(
                TargetCheck(
                    shape, "interrupted jobs (push)", None, push.interrupted_jobs, 0, False, ""
                )
            )
    return checks


def sweep_checks(data: BenchData, label: str) -> list[TargetCheck]:
    """The wait/cost/interruption targets of one sweep variant on every trace.

    Compared with the reference over the sweep's seeds (the reference's aggregate over the
    main seeds would mix seed sets).
    """
    checks = []
    for shape in SHAPES:
        reference = data.aggregates[("sweep-reference", shape, REFERENCE)]
        checks.extend(checks_for(shape, reference, data.sweep(shape, label), None))
    return checks


# -- formatting ----------------------------------------------------------------------------


def _s(value: float) -> str:
    return f"{value:.1f}"


def _ratio(value: float, base: float) -> str:
    if base == 0:
        return "-" if value == 0 else "∞"
    return f"{value / base:.2f}x"


def _verdict(held: bool) -> str:
    return "✅ holds" if held else "❌ missed"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _check_row(check: TargetCheck) -> list[str]:
    unit = f" {check.unit}" if check.unit else ""
    digits = 2 if check.unit == "h" else 1
    reference = "-" if check.reference is None else f"{check.reference:.{digits}f}{unit}"
    if check.target in ("mean wait", "p95 wait") and check.reference is not None:
        rule = (
            f"≤ {check.limit:.1f}{unit} (0.6x)"
            if check.reference >= ABSOLUTE_FLOOR_S
            else f"≤ {check.limit:.1f}{unit} (+2 s)"
        )
    elif check.target == "instance-hours":
        rule = f"≤ {check.limit:.2f}{unit} (1.0x)"
    elif check.target.startswith("push"):
        rule = f"< {check.limit:.1f}{unit} (poll p95)"
    else:
        rule = "= 0"
    project = f"{check.project:.{digits}f}{unit}" if check.unit else f"{check.project:g}"
    if check.reference:
        project += f" ({_ratio(check.project, check.reference)})"
    return [check.shape, check.target, reference, project, rule, _verdict(check.held)]


def _result_row(label: str, aggregate: Aggregate) -> list[str]:
    return [
        label,
        f"{aggregate.jobs:.0f}",
        f"{aggregate.waited_share * 100:.0f} %",
        _s(aggregate.wait_mean),
        _s(aggregate.wait_p50),
        _s(aggregate.wait_p95),
        _s(aggregate.wait_p99),
        _s(aggregate.wait_max),
        _s(aggregate.instance_hours),
        _s(aggregate.oracle_hours),
        f"{aggregate.efficiency * 100:.0f} %",
        str(aggregate.interrupted_jobs),
        f"{aggregate.scale_out_actions:.0f}",
        f"{aggregate.scale_in_actions:.0f}",
        f"{aggregate.evaluations:.0f}",
        f"{aggregate.lambda_gb_seconds:.0f}",
    ]


RESULT_HEADER = (
    "run",
    "jobs",
    "waited",
    "mean wait s",
    "p50",
    "p95",
    "p99",
    "max",
    "instance-h",
    "oracle-h",
    "cost efficiency",
    "interrupted",
    "scale-outs",
    "scale-ins",
    "evaluations",
    "Lambda GB-s",
)


# -- the trade-off plot --------------------------------------------------------------------


def plot_tradeoff(data: BenchData, path: Path) -> None:
    """Wait (mean and p95) against instance-hours per sweep variant, one column per trace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(SHAPES)
    figure, axes = plt.subplots(2, len(shapes), figsize=(4.2 * len(shapes), 7.5))
    markers = "osD^v<>ph*"
    for column, shape in enumerate(shapes):
        reference = data.aggregates[("sweep-reference", shape, REFERENCE)]
        for row, (metric, name) in enumerate((("wait_mean", "mean wait"), ("wait_p95", "p95"))):
            axis = axes[row][column]
            ref_wait = getattr(reference, metric)
            limit = wait_limit(ref_wait)
            axis.axvline(reference.instance_hours, color="tab:red", linewidth=0.8, alpha=0.6)
            axis.axhline(limit, color="tab:green", linewidth=0.8, linestyle="--")
            axis.plot(
                reference.instance_hours, ref_wait, marker="*", markersize=14, color="tab:red",
                linestyle="none", label="reference",
            )  # fmt: skip
            for index, label in enumerate(data.sweep_labels):
                point = data.sweep(shape, label)
                axis.plot(
                    point.instance_hours, getattr(point, metric),
                    marker=markers[index % len(markers)], linestyle="none", label=label,
                )  # fmt: skip
            left, right = axis.get_xlim()
            axis.fill_between(
                [left, reference.instance_hours], 0, limit, color="tab:green", alpha=0.12
            )
            axis.set_xlim(left, right)
            axis.set_ylim(bottom=0)
            axis.set_title(f"{shape}: {name}", fontsize="medium")
            axis.set_xlabel("instance-hours per run")
            axis.set_ylabel(f"{name} (s)")
            axis.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=5, fontsize="small")
    figure.suptitle(
        "Project policy (poll) over its parameters vs the reference (red star); "
        "the green corner is where the wait and instance-hours targets both hold"
    )
    figure.tight_layout(rect=(0, 0.08, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


# -- the report ----------------------------------------------------------------------------


def write_report(data: BenchData, report: Path, figures: Path) -> None:
    """Write docs/benchmarks.md and the trade-off plot."""
    plot_tradeoff(data, figures / "tradeoff.png")
    relative = figures.name
    lines: list[str] = []
    add = lines.append
    checks = main_checks(data)
    held = sum(check.held for check in checks)

    add("# Benchmarks: the project's scaler against the reference scaler")
    add("")
    add(
        "_Generated by `make bench` (`python -m tools.simulate.bench`) from seeded traces; "
        "do not edit by hand. Every number below comes from the discrete-event simulator in "
        "`tools/simulate/`, which drives the project's real `agent_scaler.policy.decide()` "
        "and a model of the reference scaler (buildkite-agent-scaler v1.12) that reproduces "
        "that scaler's own table tests (`python -m tools.simulate --check-reference-cases "
        "../shared/reference/reference-scaler-cases.json`)._"
    )
    add("")
    add("## Targets")
    add("")
    add(
        "Project defaults in poll mode against the reference, MaxSize "
        f"{data.base_overrides['MaxSize']} "
        f"and stack defaults otherwise, averaged over seeds {_seeds(data.main_seeds)}: "
        f"**{held} of {len(checks)} targets hold.**"
    )
    add("")
    lines.extend(
        _table(
            ("trace", "target", "reference", "project", "limit", "verdict"),
            [_check_row(check) for check in checks],
        )
    )
    add("")
    _analysis(data, checks, lines)
    _model(data, lines)
    _traces(data, lines)
    add("## Results per trace")
    add("")
    add(
        "Averages over the seeds; `waited` is the share of jobs that waited at all; "
        "`cost efficiency` is oracle instance-hours (job-hours ÷ AgentsPerInstance) ÷ "
        "instance-hours; `max` is the largest wait of any seed. Plots show seed "
        f"{min(data.main_seeds)}."
    )
    add("")
    for shape in SHAPES:
        add(f"### {shape}")
        add("")
        add(SHAPES[shape].description.capitalize() + ".")
        add("")
        lines.extend(
            _table(
                RESULT_HEADER,
                [_result_row(label, data.main(shape, label)) for label in MAIN_LABELS],
            )
        )
        add("")
        for label in MAIN_LABELS:
            policy, trigger = label.replace(")", "").split(" (")
            add(f"![{shape}, {label}]({relative}/{shape}-{policy}-{trigger}.png)")
            add("")
    _tradeoff(data, lines, relative)
    _whatif(data, lines)
    _reproduce(lines)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def _seeds(seeds: Sequence[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def _analysis(data: BenchData, checks: list[TargetCheck], lines: list[str]) -> None:
    add = lines.append
    add("## Why, and what would close the gaps")
    add("")
    missed = [check for check in checks if not check.held]
    if not missed:
        add("Every target holds on every standard trace.")
        add("")
    boot_median = policy_defaults("project").boot_delay.median_s
    ref_cooldown = policy_defaults("reference").scale_out_cooldown_s
    add(
        "How the two differ. Both compute the instances the queue needs as "
        "ceil((scheduled + running) / AgentsPerInstance) and compare it with the group's desired "
        "capacity, so both count booting instances. The reference then waits "
        f"ScaleOutCooldownPeriod ({ref_cooldown:.0f} s) after every scale-out; the project "
        "needs no cooldown (its default is 0) and reacts at the next evaluation (≤ 10 s on the "
        "schedule, about 2 s after a push). Neither ever lowers capacity by default: instances "
        "leave after ScaleInIdlePeriod idle, the same for both."
    )
    add("")
    for shape in SHAPES:
        reference = data.main(shape, REFERENCE)
        project = data.main(shape, PROJECT_POLL)
        shape_missed = [check.target for check in missed if check.shape == shape]
        verdict = "all targets hold" if not shape_missed else "missed: " + ", ".join(shape_missed)
        add(
            f"- **{shape}** ({verdict}). Mean wait {_s(reference.wait_mean)} s → "
            f"{_s(project.wait_mean)} s ({_ratio(project.wait_mean, reference.wait_mean)}), "
            f"p95 {_s(reference.wait_p95)} s → {_s(project.wait_p95)} s "
            f"({_ratio(project.wait_p95, reference.wait_p95)}), instance-hours "
            f"{_ratio(project.instance_hours, reference.instance_hours)}, scale-outs "
            f"{reference.scale_out_actions:.0f} → {project.scale_out_actions:.0f}. Jobs that "
            f"waited at all: {reference.waited_share * 100:.0f} % → "
            f"{project.waited_share * 100:.0f} %."
        )
    add("")
    add(
        "Reading the numbers. A job that finds no idle agent waits at least for an instance "
        f"to boot (median {boot_median:.0f} s in this model, from the published figures), "
        "whichever scaler launched it. Where the reference is held back by its cooldown "
        "(sustained load, the office-hours peak, a second build soon after the first), the "
        "project's immediate reaction cuts waits the most. Where the reference reacts just as "
        "fast because its cooldown has long expired (bursts minutes apart, one build on an "
        "idle fleet), both scalers launch within seconds of each other and both waits are boot "
        "times, which no choice of desired capacity at that moment can shorten. The same immediacy "
        "costs instance-hours: every instance launched for a backlog that agents finishing "
        "their jobs would have absorbed within the reference's cooldown runs a boot and a full "
        "ScaleInIdlePeriod before it leaves (the scale-out counts above)."
    )
    add("")
    _lambda_cost(lines)
    best_label, best_held, best_total = _best_variant(data)
    add(
        f"The trade-off sweep (below) shows the policy's own parameters cannot reach every "
        f"target at once on these traces: the best variant, **{best_label}**, holds "
        f"{best_held} of {best_total} wait/cost/interruption targets (the defaults: "
        f"{_held_count(data, 'defaults')} of {best_total}). Lowering ScaleInIdlePeriod or "
        "draining (DisableScaleIn false) buys instance-hours with waits on bursty traces; an "
        "InstanceBuffer or a longer idle period buys waits with instance-hours; a scale-out "
        "cooldown gives back the project's advantage."
    )
    add("")
    add("What would close the gaps (`functions/agent_scaler` is unchanged by this benchmark):")
    add("")
    fast, tuned = data.whatif_labels[0], data.whatif_labels[-1]
    add(
        "1. **Shorten the boot, not the decision.** Boot-bound waits need a shorter "
        "launch-to-agent time: an Auto Scaling warm pool of stopped, pre-initialised instances "
        "(the reference stack has none) whose agent starts on resume. The what-if below keeps "
        f"the policy unchanged and gives the project a {data.fast_boot['BootDelayMedian']} s "
        f"median boot: the wait targets then hold on {_whatif_held(data, fast, 'wait')} of "
        f"{2 * len(SHAPES)} trace/target pairs and the instance-hours target on "
        f"{_whatif_held(data, fast, 'instance-hours')} of {len(SHAPES)} traces."
    )
    add(
        "2. **Then spend the cheaper cold starts on a shorter idle tail.** The project's extra "
        "instance-hours are the idle tails (boot + ScaleInIdlePeriod) of the extra instances its "
        "immediate scale-out launches. Every knob of the current policy that trims idle "
        "capacity brings back cold starts, which cost a full boot today (sweep above). With "
        f"a faster boot they are cheap: **{tuned}** holds "
        f"{_whatif_held(data, tuned, 'wait')} of {2 * len(SHAPES)} wait targets and "
        f"{_whatif_held(data, tuned, 'instance-hours')} of {len(SHAPES)} instance-hours "
        "targets. That is a stack default (the agent's idle timeout), not a change to "
        "`decide()`."
    )
    add(
        "3. **Keep the scale-out rule.** It is what wins the waits where the reference is "
        "cooldown-bound; a scale-out cooldown or a ScaleOutFactor below 1 only trades that win "
        "away (sweep above)."
    )
    add("")


def _whatif_held(data: BenchData, label: str, kind: str) -> int:
    held = 0
    for shape in SHAPES:
        checks = checks_for(shape, data.main(shape, REFERENCE), data.whatif(shape, label), None)
        for check in checks:
            is_wait = check.target in ("mean wait", "p95 wait")
            if (kind == "wait" and is_wait) or check.target == kind:
                held += check.held
    return held


def _lambda_cost(lines: list[str]) -> None:
    from tools.simulate.invocations import project_loop_plan, reference_loop_plan
    from tools.simulate.lambda_cost import gb_seconds

    reference = policy_defaults("reference")
    project = policy_defaults("project")
    reference_plan = reference_loop_plan(reference)
    project_plan = project_loop_plan(project)
    per_month = 30 * 24 * 3600 / reference.schedule_period_s
    reference_gbs = gb_seconds(reference.lambda_memory_mb, reference_plan.duration_s)
    project_gbs = gb_seconds(project.lambda_memory_mb, project_plan.duration_s)
    push_gbs = gb_seconds(project.push_lambda_memory_mb, project.evaluation_duration_s)
    lines.append(
        f"Lambda cost (modelled). The reference bills {reference_gbs:.2f} GB-s per scheduled "
        f"invocation ({reference.lambda_memory_mb:.0f} MB x {reference_plan.duration_s:.1f} s), "
        f"about {reference_gbs * per_month:,.0f} GB-s a month; the project "
        f"{project_gbs:.2f} GB-s ({project.lambda_memory_mb:.0f} MB x "
        f"{project_plan.duration_s:.1f} s, {len(project_plan.offsets_s)} evaluations; memory "
        f"{project_sizing(SCHEDULED_HANDLER).source}), about {project_gbs * per_month:,.0f} "
        f"GB-s a month, plus {push_gbs:.3f} GB-s per push invocation. Both loops sleep inside "
        "the invocation between evaluations, so memory size sets the bill."
    )
    lines.append("")


def _held_count(data: BenchData, label: str) -> int:
    return sum(check.held for check in sweep_checks(data, label))


def _best_variant(data: BenchData) -> tuple[str, int, int]:
    best = ("defaults", -1, 0)
    for label in data.sweep_labels:
        checks = sweep_checks(data, label)
        held = sum(check.held for check in checks)
        if held > best[1]:
            best = (label, held, len(checks))
    return best


def _model(data: BenchData, lines: list[str]) -> None:
    add = lines.append
    project = policy_defaults("project")
    reference = policy_defaults("reference")
    scheduled = project_sizing(SCHEDULED_HANDLER)
    push = project_sizing(PUSH_HANDLER)
    add("## What is simulated")
    add("")
    shift, _, sigma = project.boot_delay.parameters()
    add(
        f"- **Instances.** Launch → boot delay → AgentsPerInstance agents register. Boot "
        f"delay: shifted log-normal fitted to median {project.boot_delay.median_s:.0f} s, 5th "
        f"percentile {project.boot_delay.p05_s:.0f} s, 95th {project.boot_delay.p95_s:.0f} s "
        f"(shift {shift:.0f} s, sigma {sigma:.3f}), from the published 45 s boot + 45 s agent "
        f'start and "50-75 s queue → agent". InService {project.in_service_delay_s:.0f} s '
        "after launch (the reference's availability boost sees InService instances without "
        f"agents). Billed from launch until gone, {project.instance_shutdown_s:.0f} s after "
        "termination."
    )
    add(
        "- **Jobs.** One FIFO queue; a free agent takes the head of the queue at once; among "
        "several idle agents the taker is random (whichever agent polls first). No waiting "
        "(blocked) jobs. Wait = time in the queue, summed over attempts."
    )
    add(
        "- **Leaving.** All agents of an instance share one process (spawn): when all have "
        "been idle ScaleInIdlePeriod the process exits and the instance terminates itself with "
        "decrement (without, when that would go below MinSize). The project has a terminating "
        "lifecycle hook: a drain or any group-initiated termination lets running jobs finish "
        "(up to InstanceTerminationGracePeriod) before the instance goes. The reference has "
        "none: a group-initiated termination interrupts running jobs, which go back to the "
        "queue (counted as interrupted). Group scale-in picks unprotected instances at random."
    )
    add(
        f"- **Reference scaler.** EventBridge every {reference.schedule_period_s:.0f} s; "
        "evaluations at +0, +10, ... +40 s; ScaleOutCooldownPeriod "
        f"{reference.scale_out_cooldown_s:.0f} s, availability boost threshold "
        f"{reference.availability_threshold:g}, scale-in disabled; "
        f"{reference.lambda_memory_mb:.0f} MB billed for the "
        f"{reference.invocation_loop_s:.0f} s loop."
    )
    add(
        "- **Project scaler.** The same schedule; the evaluation times inside an invocation come "
        "from the project's real `poll_loop.run_poll_loop` on a virtual clock (each evaluation "
        f"{project.evaluation_duration_s:g} s, the API's poll-duration header 10 s, the "
        f"function's timeout {project.lambda_timeout_s:.0f} s); billed for the loop's elapsed "
        f'time at {project.lambda_memory_mb:.0f} MB ({scheduled.source}). Push: a "Job '
        f'Scheduled" event per job; events within {project.push_batch_window_s:g} s (the SQS '
        "batching window) of a batch's first make one invocation "
        f"{project.push_event_delay_s:g} s after it, which "
        "evaluates once, scale-out only, billed "
        f"{project.evaluation_duration_s:g} s at {project.push_lambda_memory_mb:.0f} MB "
        f"({push.source}). Scale-out only upwards; drains through the lifecycle hook."
    )
    add(
        "- **Not modelled.** Cold starts, API latency and errors, metrics staleness, agent "
        "dispatch latency, spot interruptions, instance failures, AZ balancing."
    )
    add("")
    add("Settings (`CONFIG.json` keys; a run takes its policy's stack defaults, the benchmark "
        f"sets {', '.join(f'{k} {v}' for k, v in data.base_overrides.items())}):")  # fmt: skip
    add("")
    rows = []
    project_values = _flat(project)
    reference_values = _flat(reference)
    for key, _, meaning in describe_settings():
        value, ref_value = project_values[key], reference_values[key]
        rows.append([f"`{key}`", value, ref_value if ref_value != value else "same", meaning])
    lines.extend(_table(("key", "project default", "reference default", "meaning"), rows))
    add("")


def _flat(config: object) -> dict[str, str]:
    from tools.simulate.config import config_as_dict

    return {key: _plain(value) for key, value in config_as_dict(config).items()}  # type: ignore[arg-type]


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _traces(data: BenchData, lines: list[str]) -> None:
    add = lines.append
    add("## Traces")
    add("")
    add(
        "`python -m tools.simulate.traces` (seeded; parameters in its docstring). Job durations "
        "are log-normal. Per seed:"
    )
    add("")
    rows = []
    for shape in SHAPES:
        aggregate = data.main(shape, REFERENCE)
        rows.append(
            [shape, SHAPES[shape].description, f"{aggregate.jobs:.0f}", _s(aggregate.oracle_hours)]
        )
    lines.extend(_table(("trace", "shape", "jobs", "job-hours"), rows))
    add("")


def _variant_header(*, interruptions: bool) -> tuple[str, ...]:
    columns = ("variant", "trace", "mean s", "vs ref", "p95 s", "vs ref", "instance-h", "vs ref")
    return (*columns, *(("interrupted",) if interruptions else ()), "targets")


def _variant_row(
    label: str, shape: str, reference: Aggregate, point: Aggregate, *, interruptions: bool
) -> list[str]:
    """One variant on one trace against the reference: waits, instance-hours, targets held."""
    held = sum(check.held for check in checks_for(shape, reference, point, None))
    return [
        label,
        shape,
        _s(point.wait_mean),
        _ratio(point.wait_mean, reference.wait_mean),
        _s(point.wait_p95),
        _ratio(point.wait_p95, reference.wait_p95),
        _s(point.instance_hours),
        _ratio(point.instance_hours, reference.instance_hours),
        *([str(point.interrupted_jobs)] if interruptions else []),
        f"{held}/4",
    ]


def _tradeoff(data: BenchData, lines: list[str], relative: str) -> None:
    add = lines.append
    add("## Trade-off: the project's parameters (poll)")
    add("")
    add(
        f"Each variant changes only the listed parameters; seeds {_seeds(data.sweep_seeds)}; "
        "ratios against the reference over the same seeds; `targets` counts the mean, p95, "
        "instance-hours and interruption targets that hold on that trace."
    )
    add("")
    add(f"![trade-off]({relative}/tradeoff.png)")
    add("")
    rows = []
    for label in data.sweep_labels:
        for shape in SHAPES:
            reference = data.aggregates[("sweep-reference", shape, REFERENCE)]
            point = data.sweep(shape, label)
            rows.append(_variant_row(label, shape, reference, point, interruptions=True))
    lines.extend(_table(_variant_header(interruptions=True), rows))
    add("")


def _whatif(data: BenchData, lines: list[str]) -> None:
    add = lines.append
    boot = data.fast_boot
    add("## What-if: a faster boot (warm pool), project policy unchanged")
    add("")
    add(
        f"Boot delay median {boot['BootDelayMedian']} s (5th-95th percentile "
        f"{boot['BootDelayP05']}-{boot['BootDelayP95']} s) for the project only; the reference "
        "keeps the measured boot. An assumption, not a measurement of this project: it bounds "
        "what a warm pool that never runs dry could give."
    )
    add("")
    rows = []
    for label, shape in ((label, shape) for label in data.whatif_labels for shape in SHAPES):
        reference = data.main(shape, REFERENCE)
        point = data.whatif(shape, label)
        rows.append(_variant_row(label, shape, reference, point, interruptions=False))
    lines.extend(_table(_variant_header(interruptions=False), rows))
    add("")


def _reproduce(lines: list[str]) -> None:
    add = lines.append
    add("## Reproduce")
    add("")
    add("```sh")
    add("make bench                                   # this report (about a minute on 2 cores)")
    add("python -m tools.simulate.traces --shape office-hours --seed 1 --out office.csv")
    add("echo '{\"MaxSize\": 100}' > config.json")
    add(
        "python -m tools.simulate --trace office.csv --policy project --trigger push "
        "--config config.json --seed 1 --out result.json --plot timeline.png"
    )
    add(
        "python -m tools.simulate --check-reference-cases "
        "../shared/reference/reference-scaler-cases.json"
    )
    add("```")
