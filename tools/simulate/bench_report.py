"""The benchmark report: docs/benchmarks.md with the target verdicts (``bench_targets``),
dollar tables and the frontier plot.

Every number and every verdict in the report is computed from the runs; the prose around
them describes the model and the mechanisms, and its conditional statements (what stands in
the way of a missed target) are chosen and filled in by the numbers, so a rerun after a
policy change writes a report that is still true. Prices come from ``tools.simulate.prices``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tools.simulate import prices
from tools.simulate.bench_targets import (
    DEFAULT_WAIT_FACTOR,
    IDLE_TAIL_OFF,
    PROJECT_POLL,
    PROJECT_PUSH,
    PROJECT_WARM,
    REFERENCE,
    WARM_POOL_WAIT_FACTOR,
    Aggregate,
    BenchData,
    TargetCheck,
    pareto_front,
    ratio,
    target_checks,
    variant_checks,
    wait_limit,
)
from tools.simulate.config import describe_settings, policy_defaults
from tools.simulate.fleet import REPORT_IDLE_AFTER_S
from tools.simulate.lambda_cost import PUSH_HANDLER, SCHEDULED_HANDLER, project_sizing
from tools.simulate.traces import SHAPES

# -- formatting ----------------------------------------------------------------------------


def _s(value: float) -> str:
    return f"{value:.1f}"


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def _verdict(held: bool) -> str:
    return "✅ holds" if held else "❌ missed"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _amount(value: float, unit: str) -> str:
    if unit == "$":
        return _usd(value)
    if unit == "GB-s":
        return f"{value:,.0f} GB-s"
    if unit == "s":
        return f"{value:.1f} s"
    return f"{value:g}"


def check_row(check: TargetCheck) -> list[str]:
    reference = "-" if check.reference is None else _amount(check.reference, check.unit)
    value = _amount(check.value, check.unit)
    if check.reference:
        value += f" ({ratio(check.value, check.reference)})"
    if check.note:
        value += f"; {check.note}"
    return [
        check.configuration, check.shape, check.target, reference, value, check.rule,
        _verdict(check.held),
    ]  # fmt: skip


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
    "cost $",
    "compute $",
    "EBS $ (share)",
    "Lambda $",
    "Lambda GB-s",
    "cost efficiency",
    "interrupted",
    "cold launches",
    "pool resumes",
    "drains",
)


def result_row(label: str, aggregate: Aggregate) -> list[str]:
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
        _usd(aggregate.cost_total),
        _usd(aggregate.cost_compute),
        f"{_usd(aggregate.cost_ebs)} ({aggregate.ebs_share * 100:.0f} %)",
        f"${aggregate.cost_lambda:.3f}",
        f"{aggregate.lambda_gb_seconds:,.0f}",
        f"{aggregate.efficiency * 100:.0f} %",
        str(aggregate.interrupted_jobs),
        f"{aggregate.launches:.0f}",
        f"{aggregate.resumes:.0f}",
        f"{aggregate.drained_instances:.0f}",
    ]


# -- the frontier plot ---------------------------------------------------------------------


def frontier_points(data: BenchData, shape: str) -> list[tuple[float, float, str]]:
    """(cost $, p95 s, label) of every configuration tried on ``shape``."""
    points = [
        (data.main(shape, label).cost_total, data.main(shape, label).wait_p95, label)
        for label in data.main_labels
        if ("main", shape, label) in data.aggregates
    ]
    points.extend(
        (data.sweep(shape, label).cost_total, data.sweep(shape, label).wait_p95, f"sweep: {label}")
        for label in data.sweep_labels
    )
    return points


def plot_frontier(data: BenchData, path: Path) -> None:
    """Cost $ against p95 wait, one point per configuration, the frontier drawn, per trace."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(data.shapes)
    columns = min(len(shapes), 2)
    rows = (len(shapes) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(7.0 * columns, 5.2 * rows), squeeze=False)
    markers = "osD^v<>phPX8d"
    palette = plt.get_cmap("tab20")
    for index, shape in enumerate(shapes):
        axis = axes[index // columns][index % columns]
        reference = data.main(shape, REFERENCE)
        axis.axvline(reference.cost_total, color="tab:red", linewidth=0.8, alpha=0.6)
        for factor, style in ((DEFAULT_WAIT_FACTOR, "--"), (WARM_POOL_WAIT_FACTOR, ":")):
            axis.axhline(
                wait_limit(reference.wait_p95, factor), color="tab:green", linewidth=0.8,
                linestyle=style, label=f"p95 limit {factor:g}x reference",
            )  # fmt: skip
        points = frontier_points(data, shape)
        for number, (cost, p95, label) in enumerate(points):
            if label == REFERENCE:
                axis.plot(cost, p95, marker="*", markersize=15, color="tab:red",
                          linestyle="none", label=label)  # fmt: skip
                continue
            axis.plot(cost, p95, marker=markers[number % len(markers)], linestyle="none",
                      markersize=7, color=palette(number % 20), label=label)  # fmt: skip
        front = pareto_front(points)
        axis.plot([c for c, _, _ in front], [p for _, p, _ in front], color="black",
                  linewidth=0.8, alpha=0.6, drawstyle="steps-post", label="frontier")  # fmt: skip
        axis.set_ylim(bottom=0)
        axis.set_title(shape, fontsize="medium")
        axis.set_xlabel("cost per run ($: compute + EBS + Lambda)")
        axis.set_ylabel("p95 wait (s)")
        axis.grid(alpha=0.3)
    for index in range(len(shapes), rows * columns):
        axes[index // columns][index % columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize="small")
    figure.suptitle(
        "Cost against p95 wait, one point per configuration tried; the reference is the red "
        "star and line; lower-left is better"
    )
    legend_rows = (len(labels) + 2) // 3
    figure.tight_layout(rect=(0, min(0.04 * legend_rows, 0.4), 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


# -- the report ----------------------------------------------------------------------------


def write_report(data: BenchData, report: Path, figures: Path) -> None:
    """Write docs/benchmarks.md and the frontier plot."""
    plot_frontier(data, figures / "frontier.png")
    relative = figures.name
    lines: list[str] = []
    add = lines.append
    checks = target_checks(data)

    add("# Benchmarks: the project's scaler against the reference scaler")
    add("")
    add(
        "_Generated by `make bench` (`python -m tools.simulate.bench`) from seeded traces; "
        "do not edit by hand. Every number below comes from the discrete-event simulator in "
        "`tools/simulate/`, which drives the project's real `agent_scaler.policy.decide()` "
        "and a model of the reference scaler (buildkite-agent-scaler v1.12) that reproduces "
        "that scaler's own table tests (`python -m tools.simulate --check-reference-cases "
        "../shared/reference/reference-scaler-cases.json`). Dollars use the published "
        "us-east-1 prices in `tools/simulate/prices.py` (sources below)._"
    )
    add("")
    _targets(data, checks, lines)
    _obstacles(data, checks, lines)
    _costs(data, lines)
    _model(data, lines)
    _traces(data, lines)
    add("## Results per trace")
    add("")
    add(
        "Averages over the seeds, dollars per run (the whole trace); `waited` is the share of "
        "jobs that waited at all; `cost efficiency` is oracle instance-hours (job-hours ÷ "
        "AgentsPerInstance) ÷ instance-hours; `max` is the largest wait of any seed; `cold "
        "launches`, `pool resumes` and `drains` are per run. Plots show seed "
        f"{min(data.main_seeds)}."
    )
    add("")
    for shape in data.shapes:
        add(f"### {shape}")
        add("")
        add(SHAPES[shape].description.capitalize() + ".")
        add("")
        rows = [
            result_row(label, data.main(shape, label))
            for label in data.main_labels
            if ("main", shape, label) in data.aggregates
        ]
        lines.extend(_table(RESULT_HEADER, rows))
        add("")
        if min(data.main_seeds) == 1:
            for label in data.main_labels:
                name = data.plot_names.get(label)
                if name:
                    add(f"![{shape}, {label}]({relative}/{shape}-{name}.png)")
                    add("")
    _frontier(data, lines, relative)
    _reproduce(lines)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def _seeds(seeds: Sequence[int]) -> str:
    if len(seeds) > 1 and list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(seed) for seed in seeds)


def _targets(data: BenchData, checks: list[TargetCheck], lines: list[str]) -> None:
    add = lines.append
    add("## Targets")
    add("")
    add(
        f"MaxSize {data.base_overrides['MaxSize']} and stack defaults otherwise, poll mode "
        f"unless said, averaged over seeds {_seeds(data.main_seeds)}. `defaults`: the project "
        "as shipped (mixed instances, spot-capable); `warm pool`: EnableWarmPool true, "
        "OnDemandPercentage 100, one instance type (t3.large), the pool sized by the scaler; "
        "`push`: the push trigger on. Cost is dollars per run: compute, EBS (running and "
        "warm-pool volumes) and Lambda; instance-hours are in the tables below."
    )
    add("")
    summary = []
    for configuration in ("defaults", "warm pool", "push"):
        mine = [check for check in checks if check.configuration == configuration]
        held = sum(check.held for check in mine)
        summary.append(f"{configuration} {held} of {len(mine)}")
    total = sum(check.held for check in checks)
    add(f"**{total} of {len(checks)} targets hold** ({'; '.join(summary)}).")
    add("")
    lines.extend(
        _table(
            ("configuration", "trace", "target", "reference", "project", "limit", "verdict"),
            [check_row(check) for check in checks],
        )
    )
    add("")


def _point(data: BenchData, configuration: str, shape: str) -> Aggregate:
    label = {"defaults": PROJECT_POLL, "warm pool": PROJECT_WARM, "push": PROJECT_PUSH}
    if configuration in label:
        return data.main(shape, label[configuration])
    return data.sweep(shape, configuration)


def obstacle(data: BenchData, check: TargetCheck) -> str:
    """What stands in the way of a missed target, with the numbers."""
    shape = check.shape
    reference = (
        data.main(shape, REFERENCE)
        if check.configuration in ("defaults", "warm pool", "push")
        else data.sweep_reference(shape)
    )
    point = _point(data, check.configuration, shape)
    head = f"**{check.configuration}, {shape}, {check.target}**: "
    if check.target == "cost $":
        extra = point.cost_total - reference.cost_total
        compute = point.cost_compute - reference.cost_compute
        ebs = point.cost_ebs - reference.cost_ebs
        lambda_ = point.cost_lambda - reference.cost_lambda
        text = (
            f"{_usd(point.cost_total)} against {_usd(reference.cost_total)} (+{_usd(extra)}): "
            f"compute {compute:+.2f} $ ({point.instance_hours:.1f} against "
            f"{reference.instance_hours:.1f} instance-hours), EBS {ebs:+.2f} $ (EBS share "
            f"{point.ebs_share * 100:.0f} % against {reference.ebs_share * 100:.0f} %), Lambda "
            f"{lambda_:+.3f} $."
        )
        if point.resumes or point.returned_to_pool:
            text += (
                f" The pool's stopped volumes are the EBS difference: per run "
                f"{point.returned_to_pool:.0f} instances went back into the pool and "
                f"{point.resumes:.0f} came out of it; a stopped instance pays "
                f"{prices.GP3_GB_MONTH_USD * prices.ROOT_VOLUME_GB / prices.HOURS_PER_MONTH:.4f}"
                " $/h for its 250 GB volume while it waits."
            )
        elif compute > 0:
            text += (
                " The extra compute is idle capacity: instances launched for a backlog that "
                "finishing jobs would have absorbed, and their idle tails "
                f"({point.drained_instances:.0f} drained per run)."
            )
        return head + text
    if check.target in ("mean wait", "p95 wait"):
        boot = policy_defaults("project").boot_delay.median_s
        resume = policy_defaults("project").resume_delay.median_s
        starts = point.launches + point.resumes
        from_pool = point.resumes / starts * 100 if starts else 0.0
        text = (
            f"{check.value:.1f} s against a limit of {check.limit:.1f} s "
            f"(reference {check.reference:.1f} s). {point.waited_share * 100:.0f} % of jobs "
            f"waited at all (reference {reference.waited_share * 100:.0f} %); a job that finds "
            f"no idle agent waits for a cold boot (median {boot:.0f} s)"
        )
        if point.resumes:
            text += (
                f" or a resume from the pool (median {resume:.0f} s); {from_pool:.0f} % of the "
                f"{starts:.0f} instance starts per run came from the pool; the other "
                f"{point.launches:.0f} booted cold, each when no stopped instance was left in it"
            )
        text += (
            f". Scale-outs per run {point.scale_out_actions:.0f} (reference "
            f"{reference.scale_out_actions:.0f})."
        )
        return head + text + _idle_tail_trade(data, check)
    if check.target == "Lambda GB-s":
        project = policy_defaults("project")
        per_push = project.push_lambda_memory_mb / 1024 * project.evaluation_duration_s
        pushed = point.push_invocations * per_push
        return head + (
            f"{check.value:,.0f} GB-s against a limit of {check.limit:,.0f} GB-s "
            f"(reference {check.reference:,.0f}): the scheduled function bills "
            f"{check.value - pushed:,.0f} GB-s ({point.scheduled_invocations:.0f} single "
            f"evaluations), the push function {pushed:,.0f} GB-s "
            f"({point.push_invocations:,.0f} invocations of {per_push:.3f} GB-s, one per batch "
            f"of job events within the {project.push_batch_window_s:g} s SQS batching window). "
            "The push function's GB-s grow with the job rate (one invocation per batch), the "
            "scheduled function's do not; the reference's loop does not either."
        )
    if check.target == "p95 wait vs poll":
        return head + (
            f"{check.value:.1f} s against poll mode's {check.limit:.1f} s: the push trigger "
            "evaluates about 2 s after a job is scheduled, the poll loop within 10 s, so a "
            "higher p95 comes from what the earlier scale-out launched, not from when."
        )
    return head + f"{check.value:g} jobs interrupted (must be 0)."


def _idle_tail_trade(data: BenchData, check: TargetCheck) -> str:
    """For a missed wait of the defaults: the same wait with the idle tail off (sweep)."""
    labels = ("defaults", IDLE_TAIL_OFF)
    if check.configuration != "defaults" or not set(labels) <= set(data.sweep_labels):
        return ""
    reference = data.sweep_reference(check.shape)
    attribute = "wait_mean" if check.target == "mean wait" else "wait_p95"
    on, off = (data.sweep(check.shape, label) for label in labels)

    def described(point: Aggregate) -> str:
        wait = getattr(point, attribute)
        return (
            f"{wait:.1f} s ({ratio(wait, getattr(reference, attribute))}) at "
            f"{ratio(point.cost_total, reference.cost_total)} the reference's cost"
        )

    compared = (
        f"over seeds {_seeds(data.sweep_seeds)} the {check.target} is {described(on)} with it "
        f"and {described(off)} with ScaleInDemandWindow 0"
    )
    if getattr(on, attribute) <= getattr(off, attribute):
        return f" The idle tail (rule 7) is not what costs this wait: {compared}."
    return (
        f" The idle tail (rule 7) trades this wait for dollars: {compared}; it drains capacity "
        "above the peak demand of the window, and a later burst above that peak waits for a boot."
    )


def _obstacles(data: BenchData, checks: list[TargetCheck], lines: list[str]) -> None:
    add = lines.append
    add("## What stands in the way")
    add("")
    missed = [check for check in checks if not check.held]
    if not missed:
        add("Every target holds on every standard trace.")
        add("")
    for check in missed:
        add(f"- {obstacle(data, check)}")
    if missed:
        add("")
    boot = policy_defaults("project").boot_delay.median_s
    resume = policy_defaults("project").resume_delay.median_s
    add(
        "Reading the numbers. The project reacts at the next evaluation (no scale-out "
        "cooldown), so where the reference's 300 s cooldown binds its waits are shorter; where "
        "both react at once (bursts minutes apart on an idle fleet) both waits are boot times "
        f"(median {boot:.0f} s cold). A warm pool shortens that start to a resume (median "
        f"{resume:.0f} s, published measurements) only for the instances the pool holds when "
        "the burst comes; the pool holds what recent demand needed, so a burst bigger than "
        "recent demand still boots cold. Every stopped instance pays for its EBS volume while "
        "it waits. Rule 7 (ScaleInDemandWindow) drains in-service capacity above the recent "
        "demand peak, which shortens idle tails; with ReuseOnScaleIn those instances go back "
        "to the pool instead of terminating."
    )
    add("")
    if data.sweep_labels:
        best = min(
            data.sweep_labels,
            key=lambda label: (-sum(c.held for c in variant_checks(data, label)), label),
        )
        held = sum(check.held for check in variant_checks(data, best))
        total = len(variant_checks(data, best))
        add(
            f"The sweep (below) tried {len(data.sweep_labels)} configurations; the one holding "
            f"the most of its targets is **{best}** ({held} of {total}, seeds "
            f"{_seeds(data.sweep_seeds)}). The frontier plot shows what each buys in cost "
            "against p95 wait."
        )
        add("")


def _costs(data: BenchData, lines: list[str]) -> None:
    from tools.simulate.invocations import (
        project_loop_plan,
        reference_loop_plan,
        single_evaluation_plan,
    )
    from tools.simulate.lambda_cost import gb_seconds

    add = lines.append
    add("## Prices, Lambda and EBS")
    add("")
    add(
        f"Published us-east-1 list prices, read {prices.PRICES_READ_ON}, all in "
        "`tools/simulate/prices.py` (change them there to price another setup):"
    )
    add("")
    rows = [[item, price, f"<{url}>"] for item, price, url in prices.SOURCES]
    rows.append(
        ["root volume", f"{prices.ROOT_VOLUME_GB:.0f} GB gp3 (stack default RootVolumeSize)",
         "nested/fleet.yaml"]
    )  # fmt: skip
    rows.append(["month", f"{prices.HOURS_PER_MONTH:.0f} hours", "AWS pricing convention"])
    lines.extend(_table(("item", "price", "source"), rows))
    add("")
    hourly_ebs = prices.GP3_GB_MONTH_USD * prices.ROOT_VOLUME_GB / prices.HOURS_PER_MONTH
    add(
        f"A running default instance costs {prices.ON_DEMAND_HOURLY_USD['t3.large']} $/h "
        f"compute + {hourly_ebs:.4f} $/h EBS; a stopped or hibernated warm-pool instance "
        f"{hourly_ebs:.4f} $/h (EBS only; hibernation stores the RAM on the same volume). "
        "Spot capacity is priced at on-demand here (an upper bound). The reference's Lambda is "
        "x86_64, the project's arm64 (each template's `Architectures`)."
    )
    add("")
    reference = policy_defaults("reference")
    project = policy_defaults("project")
    per_month = prices.HOURS_PER_MONTH * 3600 / reference.schedule_period_s
    plans = (
        ("reference (poll)", reference, reference_loop_plan(reference),
         prices.GB_SECOND_X86_64_USD),
        ("project (poll)", project, project_loop_plan(project), prices.GB_SECOND_ARM64_USD),
        ("project (push): scheduled", project, single_evaluation_plan(project),
         prices.GB_SECOND_ARM64_USD),
    )  # fmt: skip
    rows = []
    for label, config, plan, rate in plans:
        gbs = gb_seconds(config.lambda_memory_mb, plan.duration_s)
        dollars = (gbs * rate + prices.REQUEST_USD) * per_month
        rows.append(
            [label, f"{config.lambda_memory_mb:.0f} MB x {plan.duration_s:.1f} s",
             f"{len(plan.offsets_s)}", f"{gbs:.2f}", f"{gbs * per_month:,.0f}",
             f"${dollars:.2f}"]
        )  # fmt: skip
    add(
        "Lambda per scheduled invocation (one a minute) and per month of schedule alone; push "
        f"invocations add {project.evaluation_duration_s:g} s at "
        f"{project.push_lambda_memory_mb:.0f} MB each ({project_sizing(PUSH_HANDLER).source}):"
    )
    add("")
    lines.extend(
        _table(
            ("function", "billed", "evaluations", "GB-s", "GB-s per month", "$ per month"),
            rows,
        )
    )
    add("")
    rows = []
    for shape in data.shapes:
        ref = data.main(shape, REFERENCE)
        poll = data.main(shape, PROJECT_POLL)
        push = data.main(shape, PROJECT_PUSH)
        rows.append(
            [shape, f"{ref.lambda_gb_seconds:,.0f} (${ref.cost_lambda:.3f})",
             f"{poll.lambda_gb_seconds:,.0f} (${poll.cost_lambda:.3f})",
             f"{push.lambda_gb_seconds:,.0f} (${push.cost_lambda:.3f})",
             f"{push.lambda_gb_seconds / ref.lambda_gb_seconds * 100:.1f} %"
             if ref.lambda_gb_seconds else "-"]
        )  # fmt: skip
    add("Lambda GB-s (and dollars) per run, measured:")
    add("")
    lines.extend(
        _table(
            ("trace", "reference (poll)", "project (poll)", "project (push)", "push / ref"), rows
        )
    )
    add("")


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
        f"agents). Compute billed while running (from launch until gone, "
        f"{project.instance_shutdown_s:.0f} s after termination), EBS while the volume exists."
    )
    rshift, _, rsigma = project.resume_delay.parameters()
    add(
        "- **Warm pool** (EnableWarmPool). A pool of prepared instances beside the group keeps "
        "max(WarmPoolMinSize, MaxGroupPreparedCapacity - desired capacity) instances, counting "
        "those on their way back into it (unset MaxGroupPreparedCapacity = MaxSize; with "
        "WarmPoolMaxPreparedCapacity -1 the scaler sets it, rule 8). A new warm instance runs its "
        "full boot (paid compute, `Warmed:Pending`), then stops (`Warmed:Stopped` or "
        "`Warmed:Hibernated`: EBS only). Scale-out takes stopped pool instances first; they "
        "register their agents after a resume delay: shifted log-normal with median "
        f"{project.resume_delay.median_s:.0f} s, 5th percentile {project.resume_delay.p05_s:.0f}"
        f" s, 95th {project.resume_delay.p95_s:.0f} s (shift {rshift:.0f} s, sigma "
        f"{rsigma:.3f}): 5th percentile = starting a stopped instance until SSH answers, 21.2 s "
        "measured (m7i.large, Amazon Linux 2023; <https://github.com/brevdev/"
        "ec2-coldboot-research>, docs/start-stopped-results.md); median = an instance leaving a "
        'warm pool in the AWS EC2 Auto Scaling workshop, "Duration: 36s" (<https://'
        "ec2spotworkshops.com/efficient-and-resilient-ec2-auto-scaling/lab1/"
        "100-launch-from-warm-pool.html>); 95th = an assumption (no published tail), a median "
        "cold boot. Hibernated resumes 0.5 s sooner (hibernate 20.7 s against stop/start "
        "21.2 s in the same measurements). Instances still warming are not taken; the rest "
        "boot cold. With WarmPoolReuseOnScaleIn a drained or idle-exited instance returns to "
        "the pool after its jobs finished when the pool has room, and stops "
        f"{project.instance_shutdown_s:.0f} s later. The surplus of a shrinking pool is "
        "terminated, newest first. Refused, like the template, with OnDemandPercentage < 100 "
        "or several InstanceTypes."
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
        f"({push.source}); with the push trigger on, the scheduled function evaluates once per "
        f"invocation (no loop), billed {project.evaluation_duration_s:g} s. Scale-out only "
        "upwards; drains (rules 5 and 7) through the lifecycle hook, rule 7 only of instances "
        "their lifecycle handler reports idle (unprotected from scale-in once no job has run on "
        f"them for {REPORT_IDLE_AFTER_S:g} s); the warm pool's "
        "MaxGroupPreparedCapacity set when rule 8 changes it; the demand history "
        "(ScalerState) carried between scheduled evaluations, never written by push ones."
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
    for shape in data.shapes:
        aggregate = data.main(shape, REFERENCE)
        rows.append(
            [shape, SHAPES[shape].description, f"{aggregate.jobs:.0f}", _s(aggregate.oracle_hours)]
        )
    lines.extend(_table(("trace", "shape", "jobs", "job-hours"), rows))
    add("")


def _frontier(data: BenchData, lines: list[str], relative: str) -> None:
    add = lines.append
    add("## Frontier: cost against p95 wait")
    add("")
    add(
        "One point per configuration tried: the four main runs (seeds "
        f"{_seeds(data.main_seeds)}) and every sweep variant (project, poll, seeds "
        f"{_seeds(data.sweep_seeds)}; each changes only the listed parameters). The black line "
        "joins the configurations no other one beats on both cost and p95."
    )
    add("")
    add(f"![frontier]({relative}/frontier.png)")
    add("")
    if not data.sweep_labels:
        add("(This reduced run skipped the sweep.)")
        add("")
        return
    header = (
        "variant", "trace", "mean s", "vs ref", "p95 s", "vs ref", "cost $", "vs ref",
        "EBS share", "instance-h", "interrupted", "targets", "on frontier",
    )  # fmt: skip
    rows = []
    for shape in data.shapes:
        reference = data.sweep_reference(shape)
        front = {label for _, _, label in pareto_front(frontier_points(data, shape))}
        for label in data.sweep_labels:
            point = data.sweep(shape, label)
            checks = [c for c in variant_checks(data, label) if c.shape == shape]
            rows.append(
                [label, shape, _s(point.wait_mean), ratio(point.wait_mean, reference.wait_mean),
                 _s(point.wait_p95), ratio(point.wait_p95, reference.wait_p95),
                 _usd(point.cost_total), ratio(point.cost_total, reference.cost_total),
                 f"{point.ebs_share * 100:.0f} %", _s(point.instance_hours),
                 str(point.interrupted_jobs), f"{sum(c.held for c in checks)}/{len(checks)}",
                 "yes" if f"sweep: {label}" in front else ""]
            )  # fmt: skip
    add(
        "`targets` counts the targets of the variant's kind (defaults' or the warm pool's) "
        "that hold on that trace against the reference over the same seeds."
    )
    add("")
    lines.extend(_table(header, rows))
    add("")


def _reproduce(lines: list[str]) -> None:
    add = lines.append
    add("## Reproduce")
    add("")
    add("```sh")
    add("make bench                                   # this report (a few minutes on 2 cores)")
    add("python -m tools.simulate.bench --seeds 1 --shapes office-hours --no-sweep \\")
    add("    --docs /tmp/bench-docs                   # a reduced run, elsewhere")
    add("python -m tools.simulate.traces --shape office-hours --seed 1 --out office.csv")
    add(
        'echo \'{"MaxSize": 100, "EnableWarmPool": true, "OnDemandPercentage": 100}\' > config.json'
    )
    add(
        "python -m tools.simulate --trace office.csv --policy project --trigger poll "
        "--config config.json --seed 1 --out result.json --plot timeline.png"
    )
    add(
        "python -m tools.simulate --check-reference-cases "
        "../shared/reference/reference-scaler-cases.json"
    )
    add("```")
