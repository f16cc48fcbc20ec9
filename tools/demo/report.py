"""What the demo shows: the live table, the summary, the timeline PNG and a JSON summary."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tools.buildkite_emulator import JobRecord
from tools.demo.fleet import (
    COLD,
    PROTECTION_GRACE_S,
    RESUMED,
    RETURNED_TO_POOL,
    WARMING,
    InstanceLife,
)
from tools.demo.replay import Decision, ReplayResult, Sample, format_clock
from tools.demo.stacks import Deployment
from tools.demo.warm_pool import WarmPoolEmulation
from tools.simulate.stats import summarize_waits

HEADER = ("time", "scheduled", "running", "idle agents", "desired", "last decision")
WIDTHS = (5, 9, 7, 11, 7)
# With a warm pool: its instances, prepared of all (e.g. "3/4").
WARM_HEADER = "warm pool"
WARM_WIDTH = 9
HEARTBEAT_S = 60.0
# How the scaler's idle-tail rule (rule 7) words a drain in its reasons.
IDLE_TAIL_DRAIN = "(ScaleInDemandWindow): drain"


def terminal_width(stream: Any) -> int | None:
    """The width of the terminal ``stream`` writes to; None when it is not a terminal."""
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return max(80, shutil.get_terminal_size((120, 24)).columns)


class LiveTable:
    """Prints a row when the world or the scaler's last decision changed (at least a minute)."""

    def __init__(
        self, write: Callable[[str], None], *, width: int | None, warm_pool: bool = False
    ) -> None:
        """``width``: cut rows to this many characters (a terminal's); None: never cut.

        ``warm_pool``: add a column with the pool's prepared and total instances.
        """
        self._write = write
        self._last_key: tuple[Any, ...] | None = None
        self._last_at = -HEARTBEAT_S
        self._width = width
        self._warm_pool = warm_pool

    def header(self) -> None:
        cells = [name.rjust(width) for name, width in zip(HEADER, WIDTHS, strict=False)]
        if self._warm_pool:
            cells.append(WARM_HEADER.rjust(WARM_WIDTH))
        self._write("  ".join([*cells, HEADER[-1]]))

    def row(self, sample: Sample, decision: Decision | None) -> None:
        key = (
            sample.scheduled_jobs,
            sample.running_jobs,
            sample.idle_agents,
            sample.desired_capacity,
            sample.warm_pool_prepared,
            sample.warm_pool_instances,
            _verdict(decision),
        )
        if key == self._last_key and sample.at - self._last_at < HEARTBEAT_S:
            return
        self._last_key = key
        self._last_at = sample.at
        values = (
            format_clock(sample.at),
            sample.scheduled_jobs,
            sample.running_jobs,
            sample.idle_agents,
            sample.desired_capacity,
        )
        cells = [str(value).rjust(width) for value, width in zip(values, WIDTHS, strict=True)]
        if self._warm_pool:
            pool = f"{sample.warm_pool_prepared}/{sample.warm_pool_instances}"
            cells.append(pool.rjust(WARM_WIDTH))
        line = "  ".join([*cells, _decision_text(decision)])
        if self._width is not None and len(line) > self._width:
            line = line[: self._width - 3] + "..."
        self._write(line)


def _verdict(decision: Decision | None) -> str:
    """Any limit that applied and what the decision did (the demand is in the columns)."""
    if decision is None:
        return "(no evaluation yet)"
    return "; ".join(decision.reasons[1:] or decision.reasons) or decision.action


def _decision_text(decision: Decision | None) -> str:
    if decision is None:
        return _verdict(decision)
    return f"[{format_clock(decision.at)}] {_verdict(decision)}"


@dataclass(frozen=True)
class WarmPoolSummary:
    """What the (emulated) warm pool did over the run."""

    pool_state: str
    resumed_from_pool: int
    taken_while_warming: int
    cold_starts: int
    returned_to_pool: int
    launched_into_pool: int
    terminated_from_pool: int
    pool_instances_min: int
    pool_instances_max: int
    pool_instances_mean: float
    pool_instances_at_end: int
    resume_s: float
    cold_boot_s: float


@dataclass(frozen=True)
class Summary:
    """The numbers the demo ends with."""

    jobs_submitted: int
    jobs_finished: int
    jobs_interrupted: int
    wait_mean_s: float
    wait_p95_s: float
    wait_max_s: float
    instances_launched: int
    instance_minutes: float
    peak_desired_capacity: int
    final_desired_capacity: int
    scale_outs: int
    invocations: int
    evaluations: int
    virtual_duration_s: float
    settled: bool
    warm_pool: WarmPoolSummary | None = None
    # Scale-in protection as the instances' lifecycle handler set it (SetInstanceProtection).
    protection_set_off: int = 0
    protection_set_on: int = 0
    # Instances the scaler drained (through the terminating hook), of them unprotected ones,
    # and the evaluations whose idle-tail rule (ScaleInDemandWindow) drained any.
    drained: int = 0
    drained_unprotected: int = 0
    idle_tail_drains: int = 0

    @property
    def succeeded(self) -> bool:
        return self.jobs_finished == self.jobs_submitted and self.jobs_interrupted == 0


def summarize(
    jobs: list[JobRecord],
    lives: list[InstanceLife],
    result: ReplayResult,
    submitted: int,
    pool: WarmPoolEmulation | None = None,
    cold_boot_s: float = 0.0,
) -> Summary:
    waits = summarize_waits(job.wait_s for job in jobs if job.wait_s is not None)
    end = result.ended_at
    instance_seconds = sum(
        (life.left_at if life.left_at is not None else end) - life.in_service_at for life in lives
    )
    desired = [sample.desired_capacity for sample in result.samples] or [0]
    return Summary(
        jobs_submitted=submitted,
        jobs_finished=sum(1 for job in jobs if job.state == "finished"),
        jobs_interrupted=sum(1 for job in jobs if job.interrupted),
        wait_mean_s=waits.mean,
        wait_p95_s=waits.p95,
        wait_max_s=waits.max,
        instances_launched=len(lives),
        instance_minutes=instance_seconds / 60.0,
        peak_desired_capacity=max(desired),
        final_desired_capacity=desired[-1],
        scale_outs=sum(1 for d in result.decisions if d.desired_capacity is not None),
        invocations=result.invocations,
        evaluations=result.evaluations,
        virtual_duration_s=end,
        settled=result.settled,
        warm_pool=None if pool is None else _warm_pool_summary(pool, lives, result, cold_boot_s),
        protection_set_off=sum(life.protection_dropped for life in lives),
        protection_set_on=sum(life.protection_restored for life in lives),
        drained=sum(1 for life in lives if life.removed_by_group),
        drained_unprotected=sum(1 for life in lives if life.unprotected_when_removed),
        idle_tail_drains=sum(
            1
            for decision in result.decisions
            if any(IDLE_TAIL_DRAIN in reason for reason in decision.reasons)
        ),
    )


def _warm_pool_summary(
    pool: WarmPoolEmulation, lives: list[InstanceLife], result: ReplayResult, cold_boot_s: float
) -> WarmPoolSummary:
    sizes = [sample.warm_pool_instances for sample in result.samples] or [0]
    return WarmPoolSummary(
        pool_state=pool.settings.warmed_state,
        resumed_from_pool=sum(1 for life in lives if life.start == RESUMED),
        taken_while_warming=sum(1 for life in lives if life.start == WARMING),
        cold_starts=sum(1 for life in lives if life.start == COLD),
        returned_to_pool=sum(1 for life in lives if life.how_left == RETURNED_TO_POOL),
        launched_into_pool=pool.counts.launched_into_pool,
        terminated_from_pool=pool.counts.terminated_from_pool,
        pool_instances_min=min(sizes),
        pool_instances_max=max(sizes),
        pool_instances_mean=sum(sizes) / len(sizes),
        pool_instances_at_end=len(pool.instances),
        resume_s=pool.resume_s,
        cold_boot_s=cold_boot_s,
    )


def summary_lines(summary: Summary, wall_s: float, plot: Path, scaler_log: Path) -> list[str]:
    return [
        f"Summary ({format_clock(summary.virtual_duration_s)} of virtual time "
        f"in {wall_s:.0f} s of wall time)",
        f"  jobs        {summary.jobs_submitted} submitted, {summary.jobs_finished} finished, "
        f"{summary.jobs_interrupted} interrupted",
        f"  wait        mean {summary.wait_mean_s:.1f} s, p95 {summary.wait_p95_s:.1f} s, "
        f"max {summary.wait_max_s:.1f} s",
        f"  instances   {summary.instances_launched} launched, peak desired capacity "
        f"{summary.peak_desired_capacity}, {summary.instance_minutes:.1f} instance-minutes, "
        f"desired capacity at the end {summary.final_desired_capacity}",
        f"  scaler      {summary.invocations} invocations, {summary.evaluations} evaluations, "
        f"{summary.scale_outs} scale-outs, {summary.idle_tail_drains} idle-tail drain(s) "
        "(ScaleInDemandWindow)",
        f"  scale-in    protection set off {summary.protection_set_off} time(s) (all agents idle "
        f"{PROTECTION_GRACE_S:g} s), back on {summary.protection_set_on} (took a job); "
        f"{summary.drained} instance(s) drained by the scaler through the terminating hook "
        f"({summary.drained_unprotected} unprotected)",
        *_warm_pool_lines(summary.warm_pool),
        f"  timeline    {plot}",
        f"  scaler log  {scaler_log}",
    ]


def _warm_pool_lines(pool: WarmPoolSummary | None) -> list[str]:
    if pool is None:
        return []
    return [
        f"  warm pool   played by the demo (moto keeps only the configuration): "
        f"{pool.resumed_from_pool} resumed from the pool in ~{pool.resume_s:g} s, "
        + (
            f"{pool.taken_while_warming} taken from it while still warming, "
            if pool.taken_while_warming
            else ""
        )
        + f"{pool.cold_starts} cold start(s) of {pool.cold_boot_s:g} s, "
        f"{pool.returned_to_pool} returned to the pool on scale-in",
        f"              pool instances min {pool.pool_instances_min}, max "
        f"{pool.pool_instances_max}, mean {pool.pool_instances_mean:.1f}, at the end "
        f"{pool.pool_instances_at_end} ({pool.pool_state}); {pool.launched_into_pool} launched "
        f"into it, {pool.terminated_from_pool} terminated from it",
    ]


def comparison_lines(this: Summary, other: dict[str, Any], other_path: Path) -> list[str]:
    """This run's job waits beside another run's (its --summary-json record)."""
    theirs = other["summary"]
    label_other = "warm pool" if theirs.get("warm_pool") else "default"
    label_this = "warm pool" if this.warm_pool is not None else "default"

    def ratio(mine: float, reference: float) -> str:
        return f"{mine / reference:.2f}x" if reference > 0 else "n/a"

    rows = [
        ("wait mean", this.wait_mean_s, theirs["wait_mean_s"]),
        ("wait p95", this.wait_p95_s, theirs["wait_p95_s"]),
        ("wait max", this.wait_max_s, theirs["wait_max_s"]),
    ]
    lines = [
        f"Compared with the {label_other} run ({other_path})",
        f"  {'':<16}{label_other:>12}{label_this:>12}{'ratio':>9}",
    ]
    for name, mine, reference in rows:
        lines.append(
            f"  {name + ' (s)':<16}{reference:>12.1f}{mine:>12.1f}{ratio(mine, reference):>9}"
        )
    minutes = theirs["instance_minutes"]
    lines.append(
        f"  {'instance-min':<16}{minutes:>12.1f}{this.instance_minutes:>12.1f}"
        f"{ratio(this.instance_minutes, minutes):>9}"
    )
    return lines


def plot_timeline(result: ReplayResult, agents_per_instance: int, path: Path, title: str) -> None:
    """Write the timeline PNG (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    samples = result.samples
    minutes = [s.at / 60.0 for s in samples]
    figure, (jobs_axis, fleet_axis) = plt.subplots(
        2,
        1,
        figsize=(12 if any(s.warm_pool_instances for s in samples) else 10, 6),
        sharex=True,
        height_ratios=(1, 2),
    )
    jobs_axis.step(minutes, [s.scheduled_jobs for s in samples], where="post", label="scheduled")
    jobs_axis.step(minutes, [s.running_jobs for s in samples], where="post", label="running")
    jobs_axis.set_ylabel("jobs")
    jobs_axis.legend(loc="upper right", fontsize="small")
    jobs_axis.grid(alpha=0.3)
    jobs_axis.yaxis.set_major_locator(MaxNLocator(integer=True))

    fleet_axis.stackplot(
        minutes,
        [s.busy_agents for s in samples],
        [s.idle_agents for s in samples],
        labels=("busy agents", "idle agents"),
        colors=("tab:blue", "tab:green"),
        alpha=0.5,
        step="post",
    )
    scale = f" (x {agents_per_instance} agents)" if agents_per_instance > 1 else ""
    fleet_axis.step(
        minutes,
        [s.desired_capacity * agents_per_instance for s in samples],
        where="post",
        color="black",
        label=f"desired capacity{scale}",
    )
    fleet_axis.step(
        minutes,
        [s.instances * agents_per_instance for s in samples],
        where="post",
        color="tab:orange",
        linestyle="--",
        label=f"instances{scale}",
    )
    if any(s.warm_pool_instances for s in samples):
        fleet_axis.step(
            minutes,
            [s.warm_pool_instances * agents_per_instance for s in samples],
            where="post",
            color="tab:purple",
            linestyle=":",
            label=f"warm pool instances{scale}",
        )
    for decision in result.decisions:
        if decision.desired_capacity is not None:
            fleet_axis.axvline(decision.at / 60.0, color="tab:red", alpha=0.3, linewidth=0.8)
    fleet_axis.set_xlabel("minutes (virtual time); red lines: scale-out decisions")
    fleet_axis.set_ylabel("agents")
    if any(s.warm_pool_instances for s in samples):
        # The pool fills up at the end, where the legend would hide it: the legend goes outside.
        fleet_axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        fleet_axis.legend(loc="upper right", fontsize="small")
    fleet_axis.grid(alpha=0.3)
    fleet_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_json_summary(
    path: Path,
    *,
    summary: Summary,
    deployment: Deployment,
    result: ReplayResult,
    endpoints: dict[str, str],
    plot: Path,
) -> None:
    """The machine-readable record of a run (the test reads it; no secrets in it)."""
    document = {
        "summary": asdict(summary),
        "succeeded": summary.succeeded,
        "endpoints": endpoints,
        "group_name": deployment.group_name,
        "token_parameter": deployment.token_parameter,
        "stacks": [
            {
                "name": stack.name,
                "template": stack.template,
                "resources": [asdict(resource) for resource in stack.resources],
                "outputs": stack.outputs,
            }
            for stack in deployment.stacks
        ],
        "gaps": [asdict(gap) for gap in deployment.gaps],
        "decisions": [
            {
                "at": d.at,
                "action": d.action,
                "desired_capacity_before": d.desired_capacity_before,
                "desired_capacity": d.desired_capacity,
            }
            for d in result.decisions
        ],
        "samples": [asdict(sample) for sample in result.samples],
        "timeline_png": str(plot),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
