"""The Buildkite emulator's REST API slice over real HTTP, through the acceptance run's client.

Pipelines, builds with their jobs' scheduled/started/finished times, cancel, agents (paginated),
its own access token, and the real API's error shapes.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import requests

from tools.acceptance.buildkite import BuildkiteError, BuildkiteRest
from tools.buildkite_emulator import BuildkiteEmulator

pytestmark = pytest.mark.integration

CONFIGURATION = json.dumps(
    {
        "steps": [
            {"label": "long", "key": "long", "command": "sleep 300", "agents": {"queue": "q"}},
            {"key": "burst", "command": "sleep 30", "parallelism": 3, "agents": ["queue=q"]},
        ]
    }
)
YAML_CONFIGURATION = """\
steps:
  - label: build
    commands:
      - make
      - sleep 20 && sleep 5
"""


@pytest.fixture
def rest(buildkite_emulator: BuildkiteEmulator) -> BuildkiteRest:
    return BuildkiteRest(buildkite_emulator.rest_url, "acme", buildkite_emulator.api_token)


def seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_rest_api_needs_its_own_bearer_token(buildkite_emulator: BuildkiteEmulator) -> None:
    url = f"{buildkite_emulator.rest_url}/organizations/acme/agents"
    assert buildkite_emulator.api_token != buildkite_emulator.token
    for header in (None, f"Bearer {buildkite_emulator.token}", "Bearer wrong"):
        headers = {"Authorization": header} if header else {}
        response = requests.get(url, headers=headers, timeout=5)
        assert response.status_code == 401
        assert "message" in response.json()
    ok = requests.get(
        url, headers={"Authorization": f"Bearer {buildkite_emulator.api_token}"}, timeout=5
    )
    assert ok.status_code == 200
    assert ok.json() == []
    # Neither token shows in the control API's state.
    state = json.dumps(buildkite_emulator.control.state())
    assert buildkite_emulator.api_token not in state


def test_errors_name_the_call_not_the_token(buildkite_emulator: BuildkiteEmulator) -> None:
    wrong = BuildkiteRest(buildkite_emulator.rest_url, "acme", "not-the-token-0123456789")
    with pytest.raises(BuildkiteError) as raised:
        wrong.agents()
    assert "401" in str(raised.value)
    assert "not-the-token-0123456789" not in str(raised.value)
    assert "not-the-token" not in repr(wrong)
    other_org = BuildkiteRest(buildkite_emulator.rest_url, "other", buildkite_emulator.api_token)
    with pytest.raises(BuildkiteError, match="404"):
        other_org.build("x", 1)


def test_pipeline_lifecycle(rest: BuildkiteRest, buildkite_emulator: BuildkiteEmulator) -> None:
    pipeline = rest.create_pipeline("Acc 1 acceptance", "https://example.com/r.git", CONFIGURATION)
    assert pipeline["slug"] == "acc-1-acceptance"
    assert rest.pipeline_exists("acc-1-acceptance")
    assert buildkite_emulator.control.rest_pipelines() == ["acc-1-acceptance"]
    with pytest.raises(BuildkiteError, match=r"422.*already been taken"):
        rest.create_pipeline("Acc 1 acceptance", "https://example.com/r.git", CONFIGURATION)
    assert rest.delete_pipeline("acc-1-acceptance") is True
    assert not rest.pipeline_exists("acc-1-acceptance")
    assert rest.delete_pipeline("acc-1-acceptance") is False


@pytest.mark.parametrize(
    ("configuration", "message"),
    [
        ("", "configuration can't be blank"),
        ("steps: [", "not YAML"),
        ("steps: []", "list of steps"),
        ("steps:\n  - wait", "command steps only"),
        ("steps:\n  - command: x\n    parallelism: 0", "parallelism"),
    ],
)
def test_bad_configurations_are_refused(
    rest: BuildkiteRest, configuration: str, message: str
) -> None:
    with pytest.raises(BuildkiteError, match="422") as raised:
        rest.create_pipeline("p", "https://example.com/r.git", configuration)
    assert message in str(raised.value)


def test_build_jobs_follow_the_agents_on_the_virtual_clock(
    rest: BuildkiteRest, buildkite_emulator: BuildkiteEmulator
) -> None:
    control = buildkite_emulator.control
    epoch = control.rest_epoch()
    rest.create_pipeline("p", "https://example.com/r.git", CONFIGURATION)
    control.advance(10)
    build = rest.create_build("p", "acceptance")
    assert build["number"] == 1
    assert build["state"] == "scheduled"
    jobs = build["jobs"]
    assert [job["step_key"] for job in jobs] == ["long", "burst", "burst", "burst"]
    assert {job["agent_query_rules"][0] for job in jobs} == {"queue=q"}
    assert all(seconds(job["scheduled_at"]) == pytest.approx(epoch + 10) for job in jobs)
    assert all(job["started_at"] is None and job["exit_status"] is None for job in jobs)

    control.advance(20)
    control.register_instance("i-1", "q", agents_per_instance=2)
    agents = rest.agents()
    assert sorted(agent["name"] for agent in agents) == ["i-1-1", "i-1-2"]
    assert all("aws:instance-id=i-1" in agent["meta_data"] for agent in agents)
    assert all(seconds(agent["created_at"]) == pytest.approx(epoch + 30) for agent in agents)

    control.advance(30)  # the long job and the first burst job started at 30 s
    build = rest.build("p", 1)
    assert build["state"] == "running"
    by_key = build["jobs"]
    long_job = by_key[0]
    assert long_job["state"] == "running"
    assert seconds(long_job["started_at"]) == pytest.approx(epoch + 30)
    first_burst = by_key[1]
    assert first_burst["state"] == "passed"
    assert first_burst["exit_status"] == 0
    assert seconds(first_burst["finished_at"]) == pytest.approx(epoch + 60)
    assert first_burst["agent"]["meta_data"][1] == "aws:instance-id=i-1"

    control.advance(400)
    build = rest.build("p", 1)
    assert build["state"] == "passed"
    assert {job["exit_status"] for job in build["jobs"]} == {0}
    assert seconds(build["jobs"][0]["finished_at"]) == pytest.approx(epoch + 330)


def test_yaml_commands_sum_their_sleeps(
    rest: BuildkiteRest, buildkite_emulator: BuildkiteEmulator
) -> None:
    rest.create_pipeline("y", "https://example.com/r.git", YAML_CONFIGURATION)
    build = rest.create_build("y", "m")
    (job,) = build["jobs"]
    assert job["name"] == "build"
    assert job["agent_query_rules"] == ["queue=default"]
    buildkite_emulator.control.register_instance("i-1", "default")
    buildkite_emulator.control.advance(24)
    assert rest.build("y", 1)["jobs"][0]["state"] == "running"
    buildkite_emulator.control.advance(1)
    assert rest.build("y", 1)["jobs"][0]["state"] == "passed"


def test_a_job_whose_instance_vanished_is_reported_failed(
    rest: BuildkiteRest, buildkite_emulator: BuildkiteEmulator
) -> None:
    control = buildkite_emulator.control
    rest.create_pipeline("v", "https://example.com/r.git", "steps:\n  - command: sleep 60")
    rest.create_build("v", "m")
    control.register_instance("i-1", "default")
    control.advance(10)
    control.deregister_instance("i-1")
    control.register_instance("i-2", "default")
    control.advance(60)
    (job,) = rest.build("v", 1)["jobs"]
    assert (job["state"], job["exit_status"]) == ("failed", -1)
    assert rest.build("v", 1)["state"] == "failed"


def test_cancel_frees_agents_and_empties_the_queue(
    rest: BuildkiteRest, buildkite_emulator: BuildkiteEmulator
) -> None:
    control = buildkite_emulator.control
    rest.create_pipeline("c", "https://example.com/r.git", CONFIGURATION)
    rest.create_build("c", "m")
    control.register_instance("i-1", "q")
    assert control.queue_counts("q")["scheduled_jobs"] == 3
    assert rest.cancel_build("c", 1) is True
    build = rest.build("c", 1)
    assert build["state"] == "canceled"
    assert {job["state"] for job in build["jobs"]} == {"canceled"}
    counts = control.queue_counts("q")
    assert (counts["scheduled_jobs"], counts["running_jobs"], counts["idle_agents"]) == (0, 0, 1)
    # A canceled job never comes back when time passes.
    control.advance(1000)
    assert {job["state"] for job in rest.build("c", 1)["jobs"]} == {"canceled"}
    # A finished build cannot be canceled: the API answers 422, the client says False.
    assert rest.cancel_build("c", 1) is False


def test_deleting_a_pipeline_cancels_its_builds(
    rest: BuildkiteRest, buildkite_emulator: BuildkiteEmulator
) -> None:
    rest.create_pipeline("d", "https://example.com/r.git", CONFIGURATION)
    rest.create_build("d", "m")
    rest.delete_pipeline("d")
    assert buildkite_emulator.control.queue_counts("q")["scheduled_jobs"] == 0
    with pytest.raises(BuildkiteError, match="404"):
        rest.build("d", 1)


def test_agents_are_paginated_with_link_headers(
    rest: BuildkiteRest, buildkite_emulator: BuildkiteEmulator
) -> None:
    buildkite_emulator.control.register_instance("i-big", "q", agents_per_instance=250)
    url = f"{buildkite_emulator.rest_url}/organizations/acme/agents"
    headers = {"Authorization": f"Bearer {buildkite_emulator.api_token}"}
    first = requests.get(url, params={"per_page": 100}, headers=headers, timeout=5)
    assert len(first.json()) == 100
    assert 'rel="next"' in first.headers["Link"]
    last = requests.get(url, params={"per_page": 100, "page": 3}, headers=headers, timeout=5)
    assert len(last.json()) == 50
    assert "Link" not in last.headers
    assert len(rest.agents()) == 250
