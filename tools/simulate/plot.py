"""The timeline plot: queue depth, desired capacity, busy and idle agents over time (PNG)."""

from __future__ import annotations

from pathlib import Path

from tools.simulate.runner import SimulationResult


def plot_timeline(result: SimulationResult, path: Path, title: str | None = None) -> None:
    """Write ``result``'s timeline as a PNG (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = result.timeline
    hours = [t / 3600.0 for t in timeline.times_s]
    per_instance = result.config.agents_per_instance
    figure, (queue_axis, fleet_axis) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, height_ratios=(1, 2)
    )
    queue_axis.fill_between(hours, timeline.scheduled_jobs, step="post", color="tab:red", alpha=0.4)
    queue_axis.step(hours, timeline.scheduled_jobs, where="post", color="tab:red", linewidth=0.8)
    queue_axis.set_ylabel("scheduled jobs")
    queue_axis.grid(alpha=0.3)

    fleet_axis.stackplot(
        hours,
        timeline.busy_agents,
        timeline.idle_agents,
        labels=("busy agents", "idle agents"),
        colors=("tab:blue", "tab:green"),
        alpha=0.5,
        step="post",
    )
    capacity_label = "desired capacity" + (
        f" (x {per_instance} agents)" if per_instance > 1 else ""
    )
    fleet_axis.step(
        hours,
        [d * per_instance for d in timeline.desired_capacity],
        where="post",
        color="black",
        linewidth=1.0,
        label=capacity_label,
    )
    scaled = f" (x {per_instance})" if per_instance > 1 else ""
    series = [(timeline.instances, "tab:orange", "--", "instances alive")]
    if any(timeline.warm_instances):
        series.append(
            (timeline.warm_instances, "tab:purple", ":", "warm pool (stopped or warming)")
        )
    for counts, color, linestyle, label in series:
        fleet_axis.step(
            hours,
            [n * per_instance for n in counts],
            where="post",
            color=color,
            linewidth=0.8,
            linestyle=linestyle,
            label=label + scaled,
        )
    fleet_axis.set_ylabel("agents")
    fleet_axis.set_xlabel("hours from trace start")
    fleet_axis.grid(alpha=0.3)
    fleet_axis.legend(loc="upper right", fontsize="small")
    waits = result.waits
    heading = title or f"{result.policy} ({result.trigger})"
    figure.suptitle(
        f"{heading}: wait mean {waits.mean:.1f} s, p95 {waits.p95:.1f} s; "
        f"{result.instance_seconds / 3600:.1f} instance-hours, ${result.cost.total:.2f}"
    )
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
