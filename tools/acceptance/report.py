"""``report.md`` and ``report.json``: verdicts, measured figures, the simulator's, side by side.

The simulator (``tools.simulate``, the project's policy, the scheduled trigger) replays the
run's own job schedule: each job's submission relative to the first and its measured run time
(its planned ``sleep`` when it never ran), with the run's AgentsPerInstance, MinSize, MaxSize and
ScaleInIdlePeriod. Its boot, in-service and shutdown delays are its model's published inputs
(``tools.simulate.config``); this run is how they are checked against a real account.

Verdict lines say PASS or FAIL for what the run is there to show (jobs ran on this stack's
instances and passed, the update left the long job alone, the fleet came back to MinSize,
nothing was left behind) and NOTE for the comparisons with the simulator, which inform and
never fail a run. The result is PASS when no line says FAIL.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.acceptance.measure import JobTiming, Spread, spread, wait_spread
from tools.acceptance.run import RunRecord
from tools.acceptance.workload import LONG_JOB_KEY
from tools.simulate.config import build_config
from tools.simulate.runner import simulate
from tools.simulate.traces import TraceJob

PASS = "PASS"  # noqa: S105 (a verdict, not a password)
FAIL = "FAIL"
NOTE = "NOTE"
DASH = "-"


@dataclass(frozen=True)
class Verdict:
    status: str
    check: str
    detail: str

    @property
    def line(self) -> str:
        return f"{self.status} {self.check}: {self.detail}"


@dataclass(frozen=True)
class Figures:
    """One column of the side-by-side table (None: not measured / not modelled)."""

    waits: Spread
    boot_p50_s: float | None
    boot_p95_s: float | None
    in_service_p50_s: float | None
    drain_mean_s: float | None
    instance_minutes: float | None
    instances_launched: int | None
    scale_outs: int | None
    interrupted_jobs: int | None


def measured_figures(record: RunRecord) -> Figures:
    end = record.ended_at if record.ended_at is not None else record.started_at
    boot = spread(instance.boot_s for instance in record.instances)
    return Figures(
        waits=wait_spread(record.jobs),
        boot_p50_s=boot.p50,
        boot_p95_s=boot.p95,
        in_service_p50_s=spread(instance.in_service_s for instance in record.instances).p50,
        drain_mean_s=spread(instance.drain_s for instance in record.instances).mean,
        instance_minutes=sum(instance.billed_s(end) for instance in record.instances) / 60.0,
        instances_launched=len(record.instances),
        scale_outs=sum(
            1
            for decision in record.decisions
            if decision.desired_capacity is not None
            and decision.desired_capacity > (decision.desired_capacity_before or 0)
        ),
        interrupted_jobs=sum(1 for job in record.jobs if job.exit_status == -1),
    )


def simulator_config(record: RunRecord) -> dict[str, Any]:
    options = record.options
    return {
        "AgentsPerInstance": options.agents_per_instance,
        "MinSize": options.min_size,
        "MaxSize": options.max_size,
        "ScaleInIdlePeriod": options.scale_in_idle_period,
    }


def simulation_trace(record: RunRecord) -> list[TraceJob]:
    """The run's job schedule: submissions from the first, measured (else planned) run times."""
    workload = record.options.workload
    scheduled = [job for job in record.jobs if job.scheduled_at is not None]
    if not scheduled:
        return []
    first = min(job.scheduled_at or 0.0 for job in scheduled)
    trace = []
    for job in scheduled:
        planned = workload.long_job_s if job.step_key == LONG_JOB_KEY else workload.short_job_s
        trace.append(TraceJob((job.scheduled_at or first) - first, job.run_s or float(planned)))
    return trace


def simulated_figures(record: RunRecord) -> Figures | None:
    trace = simulation_trace(record)
    if not trace:
        return None
    config = build_config("project", simulator_config(record))
    result = simulate(trace, "project", "poll", config)
    waits = result.waits
    return Figures(
        waits=Spread(result.jobs, waits.mean, waits.p50, waits.p95, waits.max),
        boot_p50_s=config.boot_delay.median_s,
        boot_p95_s=config.boot_delay.p95_s,
        in_service_p50_s=config.in_service_delay_s,
        drain_mean_s=config.instance_shutdown_s,
        instance_minutes=result.instance_seconds / 60.0,
        instances_launched=result.launches,
        scale_outs=result.scaler.scale_out_actions,
        interrupted_jobs=result.interrupted_jobs,
    )


# --- verdicts ---------------------------------------------------------------------------


def verdicts(record: RunRecord, measured: Figures, simulated: Figures | None) -> list[Verdict]:
    lines = [_completion(record), _ran_on_stack(record), _passed(record), _update(record)]
    lines += [_min_size(record), _teardown(record)]
    lines += _comparisons(record, measured, simulated)
    return lines


def result(lines: list[Verdict]) -> str:
    return FAIL if any(line.status == FAIL for line in lines) else PASS


def _completion(record: RunRecord) -> Verdict:
    if record.interrupted:
        return Verdict(FAIL, "run", f"interrupted (Ctrl-C) in step {record.step}")
    if record.failure is not None:
        return Verdict(FAIL, "run", record.failure)
    return Verdict(PASS, "run", "all 5 steps completed")


def _ran_on_stack(record: RunRecord) -> Verdict:
    check = "jobs ran on this stack's instances"
    if not record.jobs:
        return Verdict(FAIL, check, "no job was created")
    launched = {instance.instance_id for instance in record.instances}
    never = [job.job_id for job in record.jobs if job.started_at is None]
    elsewhere = [
        f"{job.job_id} on {job.instance_id or 'an unknown agent'}"
        for job in record.jobs
        if job.started_at is not None and job.instance_id not in launched
    ]
    if never or elsewhere:
        problems = []
        if never:
            problems.append(f"never started: {', '.join(never)}")
        if elsewhere:
            problems.append(f"outside the group: {', '.join(elsewhere)}")
        return Verdict(FAIL, check, "; ".join(problems))
    used = {job.instance_id for job in record.jobs}
    return Verdict(
        PASS,
        check,
        f"{len(record.jobs)} jobs started on {len(used)} of the {len(launched)} instances "
        "the group launched",
    )


def _passed(record: RunRecord) -> Verdict:
    check = "every job passed"
    failed = [
        f"{job.job_id} ({job.state}, exit {job.exit_status})"
        for job in record.jobs
        if job.exit_status != 0
    ]
    if not record.jobs or failed:
        return Verdict(FAIL, check, ", ".join(failed) or "no job was created")
    return Verdict(PASS, check, f"{len(record.jobs)} of {len(record.jobs)} exited 0")


def _update(record: RunRecord) -> Verdict:
    check = "the stack update left the long job alone"
    update = record.update
    job = record.job(LONG_JOB_KEY)
    if update.applied_at is None or job is None:
        return Verdict(FAIL, check, "the update was never applied")
    template = f"launch template version {update.version_before} -> {update.version_after}"
    if not update.user_data_changed:
        return Verdict(FAIL, check, f"the update did not change the user data ({template})")
    if update.long_job_state != "running":
        return Verdict(
            FAIL, check, f"the long job was {update.long_job_state} when the update began"
        )
    if job.exit_status != 0:
        return Verdict(
            FAIL, check, f"the long job ended {job.state}, exit {job.exit_status} ({template})"
        )
    return Verdict(PASS, check, f"{template}; the long job ran on and exited 0")


def _min_size(record: RunRecord) -> Verdict:
    check = "the fleet returned to MinSize"
    if record.back_to_min_at is None:
        return Verdict(FAIL, check, "not seen before the run ended")
    last = max((job.finished_at or 0.0 for job in record.jobs), default=0.0)
    after = f", {record.back_to_min_at - last:.0f} s after the last job finished" if last else ""
    return Verdict(
        PASS,
        check,
        f"desired capacity {record.final_desired_capacity}, "
        f"{record.options.min_size} instances{after}",
    )


def _teardown(record: RunRecord) -> Verdict:
    teardown = record.teardown
    if teardown.skipped:
        return Verdict(
            NOTE, "teardown", "skipped (--keep); left in place: " + ", ".join(teardown.leftovers)
        )
    if teardown.errors or teardown.leftovers or not teardown.checked:
        problems = [*teardown.errors, *(f"left behind: {item}" for item in teardown.leftovers)]
        if not teardown.checked:
            problems.append("what is left could not be checked")
        return Verdict(FAIL, "teardown", "; ".join(problems))
    return Verdict(PASS, "teardown", f"nothing left ({'; '.join(teardown.done)})")


def _comparisons(record: RunRecord, measured: Figures, simulated: Figures | None) -> list[Verdict]:
    if simulated is None:
        return [Verdict(NOTE, "simulator", "no job was scheduled, nothing to compare")]
    lines = [
        Verdict(
            NOTE,
            "job wait vs the simulator",
            f"p95 measured {_seconds(measured.waits.p95)}, simulated "
            f"{_seconds(simulated.waits.p95)}; mean measured {_seconds(measured.waits.mean)}, "
            f"simulated {_seconds(simulated.waits.mean)}",
        )
    ]
    model = build_config("project", simulator_config(record)).boot_delay
    if measured.boot_p50_s is None:
        lines.append(Verdict(NOTE, "boot vs the simulator's model", "no boot was measured"))
    else:
        inside = model.p05_s <= measured.boot_p50_s <= model.p95_s
        where = (
            "inside the model's 5-95 % range"
            if inside
            else "OUTSIDE the model's 5-95 % range: revisit BootDelay* in tools.simulate.config"
        )
        lines.append(
            Verdict(
                NOTE,
                "boot vs the simulator's model",
                f"median measured {_seconds(measured.boot_p50_s)}, model median "
                f"{model.median_s:g} s, 5-95 % [{model.p05_s:g}, {model.p95_s:g}] s: {where}",
            )
        )
    return lines


# --- writing ----------------------------------------------------------------------------


def write_report(record: RunRecord, directory: Path) -> tuple[Path, Path, str]:
    """Write both files; returns their paths and the result (PASS or FAIL)."""
    measured = measured_figures(record)
    simulated = simulated_figures(record)
    lines = verdicts(record, measured, simulated)
    directory.mkdir(parents=True, exist_ok=True)
    markdown = directory / "report.md"
    document = directory / "report.json"
    markdown.write_text(render_markdown(record, measured, simulated, lines), encoding="utf-8")
    document.write_text(
        json.dumps(report_document(record, measured, simulated, lines), indent=2) + "\n",
        encoding="utf-8",
    )
    return markdown, document, result(lines)


def report_document(
    record: RunRecord, measured: Figures, simulated: Figures | None, lines: list[Verdict]
) -> dict[str, Any]:
    options = record.options
    return {
        "result": result(lines),
        "verdicts": [asdict(line) for line in lines],
        "run": {
            "stack_name": options.stack_name,
            "region": options.region,
            "organization": options.organization,
            "queue": options.queue,
            "workload": asdict(options.workload),
            "agents_per_instance": options.agents_per_instance,
            "min_size": options.min_size,
            "max_size": options.max_size,
            "scale_in_idle_period": options.scale_in_idle_period,
            "poll_interval_s": options.poll_interval_s,
            "started_at": _iso(record.started_at),
            "ended_at": _iso(record.ended_at),
            "failure": record.failure,
            "interrupted": record.interrupted,
            "pipeline": record.pipeline_slug,
            "build_number": record.build_number,
            "group_name": record.group_name,
        },
        "measured": asdict(measured),
        "simulated": None if simulated is None else asdict(simulated),
        "simulator_config": simulator_config(record),
        "simulator_trace": [asdict(job) for job in simulation_trace(record)],
        "jobs": [job.as_json() for job in record.jobs],
        "instances": [instance.as_json() for instance in record.instances],
        "decisions": [asdict(decision) for decision in record.decisions],
        "activities": record.activities,
        "update": asdict(record.update),
        "teardown": asdict(record.teardown),
        "notes": list(record.notes),
    }


SIDE_BY_SIDE = (
    ("Job wait, mean (s)", lambda f: f.waits.mean),
    ("Job wait, p95 (s)", lambda f: f.waits.p95),
    ("Job wait, max (s)", lambda f: f.waits.max),
    ("Boot, launch to agent connected, median (s)", lambda f: f.boot_p50_s),
    ("Boot, launch to agent connected, p95 (s)", lambda f: f.boot_p95_s),
    ("Launch to InService, median (s)", lambda f: f.in_service_p50_s),
    ("Drain, leaving service to gone, mean (s)", lambda f: f.drain_mean_s),
    ("Instance-minutes", lambda f: f.instance_minutes),
    ("Instances launched", lambda f: f.instances_launched),
    ("Scale-out decisions", lambda f: f.scale_outs),
    ("Jobs interrupted", lambda f: f.interrupted_jobs),
)
MODELLED = {
    "Boot, launch to agent connected, median (s)",
    "Boot, launch to agent connected, p95 (s)",
    "Launch to InService, median (s)",
    "Drain, leaving service to gone, mean (s)",
}


def side_by_side_rows(measured: Figures, simulated: Figures | None) -> list[str]:
    rows = ["| Figure | Measured | Simulated |", "| --- | ---: | ---: |"]
    for label, pick in SIDE_BY_SIDE:
        simulated_cell = DASH if simulated is None else _number(pick(simulated))
        if simulated is not None and label in MODELLED:
            simulated_cell += " (model)"
        rows.append(f"| {label} | {_number(pick(measured))} | {simulated_cell} |")
    return rows


def render_markdown(
    record: RunRecord, measured: Figures, simulated: Figures | None, lines: list[Verdict]
) -> str:
    options = record.options
    start = record.started_at
    duration = ((record.ended_at or start) - start) / 60.0
    out = [
        f"# Acceptance run: {options.stack_name} in {options.region}",
        "",
        f"Result: **{result(lines)}**",
        "",
        f"Organization {options.organization}, queue {options.queue}, started "
        f"{_iso(start)}, {duration:.1f} min. Workload: {options.workload.burst_jobs} jobs of "
        f"{options.workload.short_job_s} s and one of {options.workload.long_job_s} s; "
        f"AgentsPerInstance {options.agents_per_instance}, MinSize {options.min_size}, "
        f"MaxSize {options.max_size}, ScaleInIdlePeriod {options.scale_in_idle_period} s.",
        "",
        "## Verdicts",
        "",
        *(f"- {line.line}" for line in lines),
        "",
        "## Measured and simulated, side by side",
        "",
        "Simulated: `tools.simulate`, project policy, scheduled trigger, on this run's job "
        "schedule (submissions and run times as measured) with the settings above; rows marked "
        "(model) are the simulator's inputs. Instance times are as precise as the poll interval "
        f"({options.poll_interval_s:g} s).",
        "",
        *side_by_side_rows(measured, simulated),
        "",
        "## Jobs",
        "",
        "| Job | Step | Scheduled | Wait (s) | Run (s) | State | Exit | Instance |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
        *(_job_row(job, start) for job in record.jobs),
        "",
        "## Instances",
        "",
        "| Instance | Launched | InService after (s) | Agent after (s) | Drain (s) | Gone |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {i.instance_id} | {_clock(i.launched_at, start)} | {_number(i.in_service_s)} "
            f"| {_number(i.boot_s)} | {_number(i.drain_s)} | {_clock(i.gone_at, start)} |"
            for i in record.instances
        ),
        "",
        f"## Scaler decisions ({len(record.decisions)} evaluations; those that changed capacity)",
        "",
        "| Time | Action | Desired before | Desired after | Reasons |",
        "| ---: | --- | ---: | ---: | --- |",
        *(
            f"| {_clock(d.at, start)} | {d.action} | {_number(d.desired_capacity_before)} "
            f"| {_number(d.desired_capacity)} | {'; '.join(d.reasons)} |"
            for d in record.decisions
            if d.desired_capacity is not None
        ),
        "",
        "## Stack update",
        "",
        _update_text(record),
        "",
        "## Teardown",
        "",
        *_teardown_text(record),
    ]
    if record.notes:
        out += ["", "## Notes", "", *(f"- {note}" for note in record.notes)]
    return "\n".join(out) + "\n"


def _job_row(job: JobTiming, start: float) -> str:
    return (
        f"| {job.name} | {job.step_key or DASH} | {_clock(job.scheduled_at, start)} "
        f"| {_number(job.wait_s)} | {_number(job.run_s)} | {job.state} "
        f"| {DASH if job.exit_status is None else job.exit_status} | {job.instance_id or DASH} |"
    )


def _update_text(record: RunRecord) -> str:
    update = record.update
    if update.applied_at is None:
        return "Not applied."
    return (
        f"Applied at {_clock(update.applied_at, record.started_at)} with the long job "
        f"{update.long_job_state}: BuildkiteAgentTags changed, launch template version "
        f"{update.version_before} -> {update.version_after}, user data "
        f"{'changed' if update.user_data_changed else 'unchanged'}."
    )


def _teardown_text(record: RunRecord) -> list[str]:
    teardown = record.teardown
    if teardown.skipped:
        return ["Skipped (--keep). Left in place:", *(f"- {i}" for i in teardown.leftovers)]
    return [
        *(f"- {line}" for line in teardown.done),
        *(f"- FAILED {line}" for line in teardown.errors),
        f"- left behind: {', '.join(teardown.leftovers) or 'nothing'}",
    ]


def _number(value: float | int | None) -> str:
    if value is None:
        return DASH
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}"


def _seconds(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f} s"


def _clock(moment: float | None, start: float) -> str:
    if moment is None:
        return DASH
    offset = round(moment - start)
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return f"{sign}{offset // 60:02d}:{offset % 60:02d}"


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
