"""The Buildkite agent API emulator over real HTTP: agent routes, control API, faults, command."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tools.buildkite_emulator import BuildkiteEmulator, EmulatorControlError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
POLL_HEADER = "Buildkite-Agent-Metrics-Poll-Duration"


def get(
    emulator: BuildkiteEmulator,
    queue: str | None = "default",
    *,
    authorization: str | None = "token",
    route: str = "/metrics/queue",
) -> requests.Response:
    headers = {}
    if authorization == "token":
        headers["Authorization"] = f"Token {emulator.token}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    params = {"name": queue} if queue is not None and route == "/metrics/queue" else None
    return requests.get(emulator.url + route, params=params, headers=headers, timeout=5)


def read_until_closed(connection: socket.socket) -> None:
    while connection.recv(4096):
        pass


# --- agent API -----------------------------------------------------------------------------


def test_fixture_gives_url_token_and_control(buildkite_emulator: BuildkiteEmulator) -> None:
    assert buildkite_emulator.url.startswith("http://127.0.0.1:")
    assert buildkite_emulator.url.endswith("/v3")
    assert len(buildkite_emulator.token) >= 20
    assert buildkite_emulator.control.now() == 0.0


def test_queue_route_has_the_documented_shape(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.set_counts(
        "default", scheduled_jobs=4, running_jobs=2, waiting_jobs=7, idle_agents=3, busy_agents=2
    )
    response = get(buildkite_emulator)
    assert response.status_code == 200
    assert response.headers[POLL_HEADER] == "10"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "agents": {"idle": 3, "busy": 2, "total": 5},
        "jobs": {"scheduled": 4, "running": 2, "waiting": 7, "total": 6},
        "organization": {"slug": "acme"},
    }


def test_unknown_queue_has_zero_counts(buildkite_emulator: BuildkiteEmulator) -> None:
    body = get(buildkite_emulator, "never-seen").json()
    assert body["agents"] == {"idle": 0, "busy": 0, "total": 0}
    assert body["jobs"] == {"scheduled": 0, "running": 0, "waiting": 0, "total": 0}


def test_bearer_scheme_is_accepted(buildkite_emulator: BuildkiteEmulator) -> None:
    response = get(buildkite_emulator, authorization=f"Bearer {buildkite_emulator.token}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Token wrong-token", "Bearer wrong-token", "Basic {token}", "{token}", "Token"],
)
def test_bad_or_missing_token_is_401_with_a_message(
    buildkite_emulator: BuildkiteEmulator, authorization: str | None
) -> None:
    if authorization is not None:
        authorization = authorization.format(token=buildkite_emulator.token)
    response = get(buildkite_emulator, authorization=authorization)
    assert response.status_code == 401
    assert isinstance(response.json()["message"], str)
    assert POLL_HEADER not in response.headers
    assert buildkite_emulator.token not in response.text


def test_all_queues_route_sums_and_maps_queues(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    control.configure(cluster_name="linux")
    control.set_counts("a", scheduled_jobs=1, idle_agents=2)
    control.set_counts("b", scheduled_jobs=3, busy_agents=1, running_jobs=1, waiting_jobs=5)
    response = get(buildkite_emulator, route="/metrics")
    assert response.status_code == 200
    assert response.headers[POLL_HEADER] == "10"
    body = response.json()
    assert body["agents"] == {
        "idle": 2,
        "busy": 1,
        "total": 3,
        "queues": {
            "a": {"idle": 2, "busy": 0, "total": 2},
            "b": {"idle": 0, "busy": 1, "total": 1},
        },
    }
    assert body["jobs"] == {
        "scheduled": 4,
        "running": 1,
        "waiting": 5,
        "total": 5,
        "queues": {
            "a": {"scheduled": 1, "running": 0, "waiting": 0, "total": 1},
            "b": {"scheduled": 3, "running": 1, "waiting": 5, "total": 4},
        },
    }
    assert body["organization"] == {"slug": "acme"}
    assert body["cluster"] == {"name": "linux"}


def test_queue_route_needs_a_name(buildkite_emulator: BuildkiteEmulator) -> None:
    response = get(buildkite_emulator, queue=None)
    assert response.status_code == 400
    assert "name" in response.json()["message"]


def test_unknown_paths_and_methods(buildkite_emulator: BuildkiteEmulator) -> None:
    assert get(buildkite_emulator, route="/agents").status_code == 404
    response = requests.post(
        buildkite_emulator.url + "/metrics",
        headers={"Authorization": f"Token {buildkite_emulator.token}"},
        timeout=5,
    )
    assert response.status_code == 405
    assert "message" in response.json()


def test_concurrent_requests_are_served(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.set_counts("default", scheduled_jobs=2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: get(buildkite_emulator), range(32)))
    assert {response.status_code for response in responses} == {200}
    assert len(buildkite_emulator.control.agent_requests()) == 32


# --- counts --------------------------------------------------------------------------------


def test_count_overrides_replace_fields_and_derive_totals(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    control = buildkite_emulator.control
    control.enqueue_jobs("default", 2, duration_s=60)
    control.register_instance("i-1", "default", agents_per_instance=3)
    counts = control.set_counts("default", waiting_jobs=9, scheduled_jobs=5)
    assert counts == {
        "scheduled_jobs": 5,
        "running_jobs": 2,
        "waiting_jobs": 9,
        "total_jobs": 7,
        "idle_agents": 1,
        "busy_agents": 2,
        "total_agents": 3,
    }
    counts = control.set_counts("default", scheduled_jobs=None, total_agents=10)
    assert (counts["scheduled_jobs"], counts["total_jobs"], counts["total_agents"]) == (0, 2, 10)
    counts = control.clear_counts("default")
    assert (counts["waiting_jobs"], counts["total_agents"]) == (0, 3)


@pytest.mark.parametrize(
    "counts",
    [{"scheduled_jobs": -1}, {"idle_agents": True}, {"busy_agents": "3"}, {"queued": 1}],
)
def test_invalid_counts_are_refused(
    buildkite_emulator: BuildkiteEmulator, counts: dict[str, Any]
) -> None:
    with pytest.raises(EmulatorControlError) as raised:
        buildkite_emulator.control.set_counts("default", **counts)
    assert raised.value.status == 400


# --- simulation ----------------------------------------------------------------------------


def test_agents_take_jobs_fifo_and_finish_them_as_time_advances(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    control = buildkite_emulator.control
    job_ids = control.enqueue_jobs("default", 3, duration_s=60)
    control.advance(10)
    control.register_instance("i-1", "default", agents_per_instance=2)
    assert control.queue_counts("default") == {
        "scheduled_jobs": 1,
        "running_jobs": 2,
        "waiting_jobs": 0,
        "total_jobs": 3,
        "idle_agents": 0,
        "busy_agents": 2,
        "total_agents": 2,
    }
    result = control.advance(60)
    assert (result.now, result.finished_job_ids) == (70.0, tuple(job_ids[:2]))
    first, _, third = control.jobs("default")
    assert (first.submitted_at, first.first_started_at, first.finished_at) == (0.0, 10.0, 70.0)
    assert (first.instance_id, first.agent_name, first.wait_s) == ("i-1", "i-1-1", 10.0)
    assert (third.state, third.started_at, third.wait_s) == ("running", 70.0, 70.0)
    assert control.instance("i-1").idle_since is None
    control.advance(100)
    assert control.job(job_ids[2]).finished_at == 130.0
    instance = control.instance("i-1")
    assert (instance.idle_since, instance.idle_agents, instance.busy_agents) == (130.0, 2, 0)


def test_jobs_go_to_the_queue_they_were_submitted_to(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    control = buildkite_emulator.control
    control.enqueue_jobs("linux", 1, duration_s=30)
    control.register_instance("i-win", "windows", agents_per_instance=1)
    assert control.queue_counts("linux")["scheduled_jobs"] == 1
    assert control.queue_counts("windows")["idle_agents"] == 1
    assert [job.queue for job in control.jobs(state="scheduled")] == ["linux"]
    assert control.jobs("windows") == []


def test_deregistering_a_busy_instance_interrupts_and_reschedules_its_job(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    control = buildkite_emulator.control
    first, second = control.enqueue_jobs("default", 2, duration_s=100)
    control.register_instance("i-1", "default")
    control.advance(30)
    assert control.deregister_instance("i-1") == [first]
    job = control.job(first)
    assert (job.state, job.instance_id, job.started_at, job.first_started_at) == (
        "scheduled",
        None,
        None,
        0.0,
    )
    assert job.interrupted
    [interruption] = job.interruptions
    assert (interruption.instance_id, interruption.started_at, interruption.interrupted_at) == (
        "i-1",
        0.0,
        30.0,
    )
    counts = control.queue_counts("default")
    assert (counts["scheduled_jobs"], counts["running_jobs"], counts["total_agents"]) == (2, 0, 0)
    gone = control.instance("i-1")
    assert (gone.state, gone.deregistered_at) == ("gone", 30.0)

    control.register_instance("i-2", "default")
    control.advance(100)
    job = control.job(first)
    assert (job.state, job.instance_id, job.started_at, job.finished_at) == (
        "finished",
        "i-2",
        30.0,
        130.0,
    )
    assert not control.job(second).interrupted

    with pytest.raises(EmulatorControlError) as raised:
        control.deregister_instance("i-1")
    assert raised.value.status == 409
    with pytest.raises(EmulatorControlError) as raised:
        control.deregister_instance("i-unknown")
    assert raised.value.status == 404


def test_a_stopping_instance_finishes_its_jobs_and_takes_no_new_ones(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    control = buildkite_emulator.control
    [running] = control.enqueue_jobs("default", 1, duration_s=50)
    control.register_instance("i-1", "default", agents_per_instance=2)
    stopping = control.stop_instance("i-1")
    assert (stopping.state, stopping.busy_agents, stopping.idle_agents) == ("stopping", 1, 0)
    [waiting] = control.enqueue_jobs("default", 1, duration_s=10)
    counts = control.queue_counts("default")
    assert (counts["scheduled_jobs"], counts["busy_agents"], counts["idle_agents"]) == (1, 1, 0)
    control.advance(50)
    assert control.job(running).state == "finished"
    assert not control.job(running).interrupted
    assert control.job(waiting).state == "scheduled"
    gone = control.instance("i-1")
    assert (gone.state, gone.deregistered_at) == ("gone", 50.0)


def test_instance_listing_and_registration_rules(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    control.register_instance("i-1", "a", agents_per_instance=4)
    control.register_instance("i-2", "b")
    assert [instance.instance_id for instance in control.instances()] == ["i-1", "i-2"]
    assert [instance.instance_id for instance in control.instances("b")] == ["i-2"]
    with pytest.raises(EmulatorControlError) as raised:
        control.register_instance("i-1", "a")
    assert raised.value.status == 409
    with pytest.raises(EmulatorControlError) as raised:
        control.register_instance("i-3", "a", agents_per_instance=0)
    assert raised.value.status == 400


def test_the_clock_only_moves_forward(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    assert control.advance_to(42.5).now == 42.5
    assert control.now() == 42.5
    for move in (lambda: control.advance_to(10), lambda: control.advance(-1)):
        with pytest.raises(EmulatorControlError) as raised:
            move()
        assert raised.value.status == 400


def test_job_durations_can_differ(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    ids = control.enqueue_jobs("default", durations_s=[30, 10, 20])
    control.register_instance("i-1", "default", agents_per_instance=3)
    assert control.advance(25).finished_job_ids == (ids[1], ids[2])
    assert [job.finished_at for job in control.jobs()] == [None, 10.0, 20.0]


# --- faults --------------------------------------------------------------------------------


def test_a_fault_answers_the_next_n_requests_then_stops(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    control = buildkite_emulator.control
    fault_id = control.add_fault(status=503, count=2)
    assert [fault["fault_id"] for fault in control.faults()] == [fault_id]
    statuses = [get(buildkite_emulator).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert control.faults() == []
    assert [request.fault_id for request in control.agent_requests()] == [fault_id, fault_id, None]


def test_a_fault_without_count_lasts_until_removed(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    fault_id = control.add_fault(status=500, count=None)
    assert {get(buildkite_emulator).status_code for _ in range(5)} == {500}
    assert control.faults()[0]["hits"] == 5
    control.remove_fault(fault_id)
    assert get(buildkite_emulator).status_code == 200
    control.add_fault(status=500, count=None)
    control.clear_faults()
    assert get(buildkite_emulator).status_code == 200


def test_status_fault_sends_message_and_retry_after(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(status=429, retry_after=7, message="Slow down")
    response = get(buildkite_emulator)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {"message": "Slow down"}
    assert POLL_HEADER not in response.headers


def test_faults_apply_per_route_and_per_queue(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    control.add_fault("metrics", status=502, count=None)
    control.add_fault("metrics_queue", queue="broken", status=504, count=None)
    assert get(buildkite_emulator, route="/metrics").status_code == 502
    assert get(buildkite_emulator, "broken").status_code == 504
    assert get(buildkite_emulator, "fine").status_code == 200


def test_faults_never_touch_the_control_api(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    control.add_fault(reset=True, count=None)
    control.set_counts("default", scheduled_jobs=1)
    assert control.state()["queues"]["default"]["scheduled_jobs"] == 1


def test_delay_fault_delays_the_answer(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(delay_s=0.3)
    started = time.monotonic()
    assert get(buildkite_emulator).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_malformed_fault_sends_a_non_json_200(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(malformed=True)
    response = get(buildkite_emulator)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html"
    with pytest.raises(ValueError, match="Expecting value"):
        response.json()


def test_json_fault_replaces_the_body(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(json_body={"agents": {"idle": "many"}})
    response = get(buildkite_emulator)
    assert (response.status_code, response.json()) == (200, {"agents": {"idle": "many"}})


def test_truncate_fault_cuts_the_body_short(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(truncate=True)
    connection = http.client.HTTPConnection("127.0.0.1", buildkite_emulator.port, timeout=5)
    try:
        connection.request(
            "GET",
            "/v3/metrics/queue?name=default",
            headers={"Authorization": f"Token {buildkite_emulator.token}"},
        )
        response = connection.getresponse()
        declared = int(response.headers["Content-Length"])
        with pytest.raises(http.client.IncompleteRead) as raised:
            response.read()
        assert 0 < len(raised.value.partial) < declared
    finally:
        connection.close()


def test_reset_fault_resets_the_connection(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.add_fault(reset=True)
    with socket.create_connection(("127.0.0.1", buildkite_emulator.port), timeout=5) as raw:
        raw.sendall(b"GET /v3/metrics/queue?name=default HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            read_until_closed(raw)
    assert get(buildkite_emulator).status_code == 200


@pytest.mark.parametrize(
    "fault",
    [
        {"route": "/v3/metrics"},
        {"status": 99},
        {"status": True},
        {"count": 0},
        {"reset": True, "status": 503},
        {"body": "x", "json": {}},
        {"delay_s": -1},
        {"headers": ["Retry-After"]},
        {"colour": "red"},
    ],
)
def test_invalid_faults_are_refused(
    buildkite_emulator: BuildkiteEmulator, fault: dict[str, Any]
) -> None:
    response = requests.post(buildkite_emulator.control_url + "/faults", json=fault, timeout=5)
    assert response.status_code == 400
    assert response.json()["message"]


# --- request log, configuration, reset -----------------------------------------------------


def test_request_log_records_requests_but_never_the_token(
    buildkite_emulator: BuildkiteEmulator,
) -> None:
    control = buildkite_emulator.control
    control.advance(5)
    get(buildkite_emulator, "ci/linux")
    get(buildkite_emulator, authorization="Token not-it")
    first, second = control.agent_requests()
    assert (first.route, first.queue, first.authorized, first.status) == (
        "metrics_queue",
        "ci/linux",
        True,
        200,
    )
    assert first.virtual_time == 5.0
    assert (second.authorized, second.status) == (False, 401)
    raw = requests.get(buildkite_emulator.control_url + "/requests", timeout=5).text
    assert buildkite_emulator.token not in raw
    assert [request.queue for request in control.agent_requests(queue="ci/linux")] == ["ci/linux"]
    control.clear_agent_requests()
    assert control.agent_requests() == []


def test_token_can_be_rotated_and_is_never_shown(buildkite_emulator: BuildkiteEmulator) -> None:
    old = buildkite_emulator.token
    buildkite_emulator.control.configure(token="rotated-token-0123456789")
    assert buildkite_emulator.token == "rotated-token-0123456789"
    assert get(buildkite_emulator, authorization=f"Token {old}").status_code == 401
    assert get(buildkite_emulator).status_code == 200
    state = requests.get(buildkite_emulator.control_url + "/state", timeout=5).text
    assert "rotated-token-0123456789" not in state
    with pytest.raises(EmulatorControlError) as raised:
        buildkite_emulator.control.configure(token="has space")
    assert raised.value.status == 400
    assert "has space" not in str(raised.value)


def test_poll_duration_is_configurable(buildkite_emulator: BuildkiteEmulator) -> None:
    buildkite_emulator.control.configure(poll_duration_s=30)
    assert get(buildkite_emulator).headers[POLL_HEADER] == "30"


def test_reset_restores_the_initial_state(buildkite_emulator: BuildkiteEmulator) -> None:
    control = buildkite_emulator.control
    token = buildkite_emulator.token
    control.configure(token="another-token-0123456789", poll_duration_s=60)
    control.enqueue_jobs("default", 2)
    control.register_instance("i-1", "default")
    control.advance(5)
    control.add_fault(status=500, count=None)
    control.reset()
    state = control.state()
    assert (state["now"], state["queues"], state["jobs"], state["instances"]) == (0.0, {}, [], [])
    assert (state["faults"], state["request_count"]) == ([], 0)
    assert state["config"] == {
        "poll_duration_s": 10,
        "organization_slug": "acme",
        "cluster_name": None,
    }
    assert buildkite_emulator.token == token
    assert get(buildkite_emulator).status_code == 200


def test_control_errors_carry_status_and_message(buildkite_emulator: BuildkiteEmulator) -> None:
    bad_json = requests.post(
        buildkite_emulator.control_url + "/advance", data=b"{not json", timeout=5
    )
    assert bad_json.status_code == 400
    assert "JSON" in bad_json.json()["message"]
    unknown = requests.get(buildkite_emulator.control_url + "/nothing/here", timeout=5)
    assert unknown.status_code == 404
    with pytest.raises(EmulatorControlError, match="no job") as raised:
        buildkite_emulator.control.job("job-404")
    assert raised.value.status == 404


# --- running it ----------------------------------------------------------------------------


def test_context_manager_stops_serving() -> None:
    with BuildkiteEmulator() as emulator:
        port = emulator.port
        assert get(emulator).status_code == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def start_command(*arguments: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.buildkite_emulator", "--port", "0", *arguments],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = process.stdout.readline().strip() if process.stdout else ""
    return process, url


def stop_command(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    return stdout, stderr


def test_command_prints_its_url_and_stops_on_sigterm() -> None:
    token = "command-token-0123456789abcdef"
    env = {**os.environ, "BUILDKITE_EMULATOR_TOKEN": token}
    process, url = start_command("--poll-duration", "15", env=env)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v3")
        response = requests.get(
            url + "/metrics/queue",
            params={"name": "default"},
            headers={"Authorization": f"Token {token}"},
            timeout=5,
        )
        assert (response.status_code, response.headers[POLL_HEADER]) == (200, "15")
    finally:
        stdout, stderr = stop_command(process)
    assert stdout == ""
    assert token not in stderr


def test_command_without_a_token_writes_one_to_a_private_file(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "BUILDKITE_EMULATOR_TOKEN"}
    token_file = tmp_path / "token"
    process, url = start_command("--token-file", str(token_file), env=env)
    try:
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        response = requests.get(
            url + "/metrics/queue",
            params={"name": "default"},
            headers={"Authorization": f"Token {token}"},
            timeout=5,
        )
        assert response.status_code == 200
    finally:
        _, stderr = stop_command(process)
    assert token not in stderr


def test_command_with_no_token_source_generates_a_temporary_token_file() -> None:
    env = {key: value for key, value in os.environ.items() if key != "BUILDKITE_EMULATOR_TOKEN"}
    process, url = start_command(env=env)
    try:
        assert process.stderr is not None
        lines = [process.stderr.readline().strip() for _ in range(2)]
        [token_line] = [line for line in lines if line.startswith("agent token file: ")]
        token_file = Path(token_line.removeprefix("agent token file: "))
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        response = requests.get(
            url + "/metrics/queue",
            params={"name": "default"},
            headers={"Authorization": f"Token {token}"},
            timeout=5,
        )
        assert response.status_code == 200
    finally:
        stdout, stderr = stop_command(process)
    assert not token_file.exists(), "the generated token file outlived the emulator"
    assert token not in stdout + stderr
