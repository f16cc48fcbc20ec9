"""The acceptance report's format and verdicts, from a hand-made run record (no servers)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tools.acceptance.aws import GroupView, ScalerDecision
from tools.acceptance.measure import InstanceLog, InstanceTiming, JobTiming, job_timings
from tools.acceptance.report import (
    FAIL,
    NOTE,
    PASS,
    measured_figures,
    side_by_side_rows,
    simulated_figures,
    verdicts,
    write_report,
)
from tools.acceptance.run import RunOptions, RunRecord
from tools.acceptance.workload import Workload

T0 = 1_800_000_000.0
OPTIONS = RunOptions(
    region="eu-west-1",
    organization="acme",
    stack_name="acc",
    queue="acc",
    workload=Workload(burst_jobs=2, short_job_s=60, long_job_s=900),
    agents_per_instance=1,
    max_size=2,
    scale_in_idle_period=300,
    poll_interval_s=15,
    repository="https://example.com/r.git",
)


def job(job_id: str, key: str, wait: float, run: float, instance: str, exit_status: int = 0):
    return JobTiming(
        job_id=job_id,
        name=key,
        step_key=key,
        state="passed" if exit_status == 0 else "failed",
        scheduled_at=T0,
        started_at=T0 + wait,
        finished_at=T0 + wait + run,
        exit_status=exit_status,
        instance_id=instance,
    )


def passing_record() -> RunRecord:
    record = RunRecord(options=OPTIONS, started_at=T0 - 300, ended_at=T0 + 1800)
    record.step = 5
    record.pipeline_slug = "acc-acceptance"
    record.build_number = 1
    record.group_name = "acc-group"
    record.jobs = [
        job("j1", "long", 90, 900, "i-a"),
        job("j2", "burst", 90, 60, "i-b"),
        job("j3", "burst", 150, 60, "i-b"),
    ]
    record.instances = [
        InstanceTiming("i-a", T0 + 15, T0 + 30, T0 + 90, T0 + 1290, T0 + 1320),
        InstanceTiming("i-b", T0 + 15, T0 + 30, T0 + 75, T0 + 510, T0 + 540),
    ]
    record.decisions = [
        ScalerDecision(T0 + 10, "no change", 0, None, ("0 scheduled",)),
        ScalerDecision(T0 + 12, "scale out 0 -> 2", 0, 2, ("3 scheduled", "MaxSize 2")),
    ]
    record.update.applied_at = T0 + 300
    record.update.long_job_state = "running"
    record.update.version_before = "1"
    record.update.version_after = "2"
    record.update.user_data_changed = True
    record.back_to_min_at = T0 + 1330
    record.final_desired_capacity = 0
    record.teardown.done = ["deleted pipeline acc-acceptance", "deleted stack acc"]
    record.teardown.checked = True
    return record


def lines_of(record: RunRecord) -> list[str]:
    measured = measured_figures(record)
    return [line.line for line in verdicts(record, measured, simulated_figures(record))]


def test_a_passing_run_has_these_verdict_lines() -> None:
    lines = lines_of(passing_record())
    assert lines[:6] == [
        "PASS run: all 5 steps completed",
        "PASS jobs ran on this stack's instances: 3 jobs started on 2 of the 2 instances the "
        "group launched",
        "PASS every job passed: 3 of 3 exited 0",
        "PASS the stack update left the long job alone: launch template version 1 -> 2; the "
        "long job ran on and exited 0",
        "PASS the fleet returned to MinSize: desired capacity 0, 0 instances, 340 s after the "
        "last job finished",
        "PASS teardown: nothing left (deleted pipeline acc-acceptance; deleted stack acc)",
    ]
    assert lines[6].startswith("NOTE job wait vs the simulator: p95 measured 144.0 s, simulated ")
    assert lines[7] == (
        "NOTE boot vs the simulator's model: median measured 67.5 s, model median 75 s, "
        "5-95 % [45, 150] s: inside the model's 5-95 % range"
    )


def test_the_side_by_side_table() -> None:
    record = passing_record()
    measured = measured_figures(record)
    simulated = replace(measured, boot_p50_s=75.0, instances_launched=3)
    rows = side_by_side_rows(measured, simulated)
    assert rows[:2] == ["| Figure | Measured | Simulated |", "| --- | ---: | ---: |"]
    assert rows[2:] == [
        "| Job wait, mean (s) | 110.0 | 110.0 |",
        "| Job wait, p95 (s) | 144.0 | 144.0 |",
        "| Job wait, max (s) | 150.0 | 150.0 |",
        "| Boot, launch to agent connected, median (s) | 67.5 | 75.0 (model) |",
        "| Boot, launch to agent connected, p95 (s) | 74.2 | 74.2 (model) |",
        "| Launch to InService, median (s) | 15.0 | 15.0 (model) |",
        "| Drain, leaving service to gone, mean (s) | 30.0 | 30.0 (model) |",
        "| Instance-minutes | 30.5 | 30.5 |",
        "| Instances launched | 2 | 3 |",
        "| Scale-out decisions | 1 | 1 |",
        "| Jobs interrupted | 0 | 0 |",
    ]
    assert side_by_side_rows(measured, None)[2] == "| Job wait, mean (s) | 110.0 | - |"


def test_the_simulator_replays_the_runs_schedule_with_its_settings() -> None:
    simulated = simulated_figures(passing_record())
    assert simulated is not None
    assert simulated.waits.count == 3
    # Fleet from zero: every job waits at least the simulator's shortest boot (shift ~25 s).
    assert simulated.waits.mean is not None
    assert simulated.waits.mean > 20
    assert simulated.instances_launched == 2  # MaxSize 2
    assert (simulated.boot_p50_s, simulated.boot_p95_s) == (75.0, 150.0)


@pytest.mark.parametrize(
    ("change", "check", "detail"),
    [
        (
            lambda r: setattr(r.update, "user_data_changed", False),
            "the stack update left the long job alone",
            "the update did not change the user data (launch template version 1 -> 2)",
        ),
        (
            lambda r: setattr(r, "jobs", [job("j1", "long", 90, 900, "i-a", exit_status=-1)]),
            "the stack update left the long job alone",
            "the long job ended failed, exit -1 (launch template version 1 -> 2)",
        ),
        (
            lambda r: setattr(r.update, "long_job_state", "passed"),
            "the stack update left the long job alone",
            "the long job was passed when the update began",
        ),
        (
            lambda r: setattr(r, "jobs", [job("j1", "long", 90, 900, "i-zzz")]),
            "jobs ran on this stack's instances",
            "outside the group: j1 on i-zzz",
        ),
        (
            lambda r: setattr(r, "back_to_min_at", None),
            "the fleet returned to MinSize",
            "not seen before the run ended",
        ),
        (
            lambda r: setattr(r.teardown, "leftovers", ["stack acc (DELETE_FAILED)"]),
            "teardown",
            "left behind: stack acc (DELETE_FAILED)",
        ),
        (
            lambda r: setattr(r, "failure", "step 3 (run the build): HTTP 502"),
            "run",
            "step 3 (run the build): HTTP 502",
        ),
    ],
)
def test_each_failure_is_a_fail_line(change, check: str, detail: str) -> None:
    record = passing_record()
    change(record)
    measured = measured_figures(record)
    found = [v for v in verdicts(record, measured, None) if v.check == check]
    assert len(found) == 1
    assert (found[0].status, found[0].detail) == (FAIL, detail)


def test_keep_is_a_note_not_a_failure() -> None:
    record = passing_record()
    record.teardown = replace(record.teardown, skipped=True, leftovers=["pipeline p"], done=[])
    line = next(
        v for v in verdicts(record, measured_figures(record), None) if v.check == "teardown"
    )
    assert (line.status, line.detail) == (NOTE, "skipped (--keep); left in place: pipeline p")


def test_boot_outside_the_model_says_so() -> None:
    record = passing_record()
    for instance in record.instances:
        instance.registered_at = instance.launched_at + 400
    line = lines_of(record)[7]
    assert line.startswith("NOTE boot vs the simulator's model: median measured 400.0 s")
    assert "OUTSIDE the model's 5-95 % range" in line


def test_written_files(tmp_path: Path) -> None:
    markdown, document, outcome = write_report(passing_record(), tmp_path / "out")
    assert outcome == PASS
    text = markdown.read_text()
    assert text.startswith("# Acceptance run: acc in eu-west-1\n\nResult: **PASS**\n")
    for heading in (
        "## Verdicts",
        "## Measured and simulated, side by side",
        "## Jobs",
        "## Instances",
        "## Scaler decisions (2 evaluations; those that changed capacity)",
        "## Stack update",
        "## Teardown",
    ):
        assert f"\n{heading}\n" in text
    assert "| long | long | +05:00 | 90.0 | 900.0 | passed | 0 | i-a |" in text
    assert "| i-b | +05:15 | 15.0 | 60.0 | 30.0 | +14:00 |" in text
    assert "| +05:12 | scale out 0 -> 2 | 0 | 2 | 3 scheduled; MaxSize 2 |" in text
    report = json.loads(document.read_text())
    assert report["result"] == "PASS"
    assert [v["status"] for v in report["verdicts"]] == [PASS] * 6 + [NOTE, NOTE]
    assert report["measured"]["waits"]["p95"] == pytest.approx(144.0)
    assert set(report["simulated"]) == set(report["measured"])
    assert report["simulator_trace"] == [
        {"submit_s": 0.0, "duration_s": 900.0},
        {"submit_s": 0.0, "duration_s": 60.0},
        {"submit_s": 0.0, "duration_s": 60.0},
    ]


def test_job_timings_read_the_rest_build() -> None:
    build = {
        "jobs": [
            {"id": "w", "type": "waiter"},
            {
                "id": "j",
                "type": "script",
                "name": "long",
                "step_key": "long",
                "state": "passed",
                "scheduled_at": "2027-01-15T08:00:00.000Z",
                "started_at": "2027-01-15T08:01:30.500Z",
                "finished_at": "2027-01-15T08:16:30.500Z",
                "exit_status": 0,
                "agent": {"meta_data": ["queue=acc", "aws:instance-id=i-0abc"]},
            },
        ]
    }
    (timing,) = job_timings(build)
    assert (timing.wait_s, timing.run_s, timing.instance_id) == (90.5, 900.0, "i-0abc")
    assert timing.done


def test_instance_log_folds_polls_into_lifetimes() -> None:
    log = InstanceLog("acc")

    def group(**states: str) -> GroupView:
        return GroupView("g", len(states), 0, 2, dict(states), "lt", "1")

    agent = {"meta_data": ["queue=acc", "aws:instance-id=i-1"]}
    other_queue = {"meta_data": ["queue=other", "aws:instance-id=i-2"]}
    log.observe(T0, group(), [])
    log.observe(T0 + 15, group(**{"i-1": "Pending"}), [])
    log.observe(T0 + 30, group(**{"i-1": "InService", "i-2": "Pending"}), [other_queue])
    log.observe(T0 + 90, group(**{"i-1": "InService", "i-2": "InService"}), [agent])
    log.observe(T0 + 600, group(**{"i-1": "Terminating:Wait", "i-2": "InService"}), [])
    log.observe(T0 + 630, group(**{"i-2": "InService"}), [])
    first, second = log.instances["i-1"], log.instances["i-2"]
    assert (first.in_service_s, first.boot_s, first.drain_s) == (15.0, 75.0, 30.0)
    assert first.billed_s(T0 + 9999) == 615.0
    assert second.registered_at is None  # its agent serves another queue
    assert second.gone_at is None
