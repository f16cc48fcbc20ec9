"""The emulator's HTTP server: the agent API routes, the control API, and the in-process runner.

Agent API (token checked: ``Token <t>`` or ``Bearer <t>``; faults applied; requests logged):
    GET /v3/metrics/queue?name=<queue>    one queue's counts
    GET /v3/metrics                       every known queue, with per-queue maps
REST API (``/v2/...``: pipelines, builds and their jobs, agents; its own access token, ``Bearer
<t>``): see ``tools.buildkite_emulator.rest``.
Control API (JSON bodies and answers, no token, never faulted; errors are 4xx
``{"message": ...}``). Path segments are URL-encoded (a queue "ci/linux" is ``ci%2Flinux``):
    GET    /_control/state                    clock, config (never the token), counts, all
                                              instances, jobs and faults
    POST   /_control/reset                    back to the initial config, empty world, clock 0
    GET    /_control/config
    PUT    /_control/config                   {token?, poll_duration_s?, organization_slug?,
                                               cluster_name?}
    GET    /_control/queues                   {queues: {name: counts}}
    GET    /_control/queues/<q>               {queue, counts, simulated, overrides}
    PUT    /_control/queues/<q>/counts        {scheduled_jobs?, running_jobs?, waiting_jobs?,
                                               total_jobs?, idle_agents?, busy_agents?,
                                               total_agents?} (null drops an override)
    DELETE /_control/queues/<q>/counts        drop every override of the queue
    POST   /_control/queues/<q>/jobs          {count, duration_s} or {durations_s: [...]}
                                              -> {job_ids}
    GET    /_control/jobs[?queue=&state=]     {jobs: [...]} with submitted_at, first_started_at,
                                              started_at, finished_at, wait_s, instance_id,
                                              agent_name, interruptions
    GET    /_control/jobs/<id>
    POST   /_control/instances                {instance_id, queue, agents_per_instance}
    GET    /_control/instances[?queue=]       {instances: [...]}
    GET    /_control/instances/<id>
    DELETE /_control/instances/<id>           vanish now -> {instance, interrupted_job_ids}
    POST   /_control/instances/<id>/stop      graceful: busy agents finish first
    GET    /_control/clock                    {now}
    POST   /_control/advance                  {seconds} or {to} -> {now, finished_job_ids}
    GET    /_control/faults                   {faults: [...]}
    POST   /_control/faults                   see ``tools.buildkite_emulator.faults``
    DELETE /_control/faults[/<id>]            clear all, or one
    GET    /_control/requests                 {requests: [...]} agent API requests, oldest first
    GET    /_control/rest                     {epoch, pipelines}: the REST API's time origin
                                              (Unix seconds at virtual 0) and pipeline slugs
    DELETE /_control/requests
``tools.buildkite_emulator.control.EmulatorControl`` wraps every route.

``BuildkiteEmulator`` runs the server on 127.0.0.1 (ephemeral port by default) in a thread:

    with BuildkiteEmulator(token="...") as emulator:
        emulator.url        # http://127.0.0.1:<port>/v3, the AgentEndpoint to use
        emulator.control    # EmulatorControl talking to this emulator
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import json
import logging
import secrets
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote

from tools.buildkite_emulator import validation
from tools.buildkite_emulator.control import EmulatorControl
from tools.buildkite_emulator.faults import Fault, FaultTable
from tools.buildkite_emulator.model import Instance, Simulation
from tools.buildkite_emulator.rest import REST_PREFIX, RestWorld
from tools.buildkite_emulator.validation import ControlError

POLL_DURATION_HEADER = "Buildkite-Agent-Metrics-Poll-Duration"
DEFAULT_POLL_DURATION_S = 10
DEFAULT_ORGANIZATION_SLUG = "acme"
AGENT_ROUTES = {"/v3/metrics/queue": "metrics_queue", "/v3/metrics": "metrics"}
CONTROL_PREFIX = "/_control"
REQUEST_LOG_LIMIT = 10_000
MAX_CONTROL_BODY_BYTES = 10_000_000

_LOG = logging.getLogger(__name__)


class EmulatorCore:
    """Everything the routes share: configuration, the simulation, faults, the request log."""

    def __init__(
        self,
        *,
        token: str,
        poll_duration_s: int,
        organization_slug: str,
        cluster_name: str | None,
        api_token: str,
    ) -> None:
        # The REST API's access token: never in the config, the state or the request log.
        self.api_token = validation.token(api_token)
        self._initial_config = {
            "token": validation.token(token),
            "poll_duration_s": validation.non_negative_int("poll_duration_s", poll_duration_s),
            "organization_slug": validation.name("organization_slug", organization_slug),
            "cluster_name": _optional_name("cluster_name", cluster_name),
        }
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._reset()

    def _reset(self) -> None:
        self.config = dict(self._initial_config)
        self.simulation = Simulation()
        self.rest = RestWorld(epoch=time.time())
        self.faults = FaultTable()
        self.requests: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=REQUEST_LOG_LIMIT
        )
        self._request_seq = 0

    @property
    def token(self) -> str:
        with self.lock:
            return self.config["token"]

    # --- agent API -----------------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        scheme, _, credential = (header or "").strip().partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        return hmac.compare_digest(credential.strip().encode(), self.config["token"].encode())

    def rest_authorized(self, header: str | None) -> bool:
        scheme, _, credential = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credential.strip().encode(), self.api_token.encode())

    def metrics_document(self, queue: str | None) -> dict[str, Any]:
        """The body of /v3/metrics/queue (``queue`` given) or /v3/metrics (``queue`` None)."""
        if queue is not None:
            counts = self.simulation.counts(queue)
            agents = _agents_json(counts)
            jobs = _jobs_json(counts)
        else:
            per_queue = {
                name: self.simulation.counts(name) for name in self.simulation.queue_names()
            }
            agents = {
                key: sum(_agents_json(counts)[key] for counts in per_queue.values())
                for key in ("idle", "busy", "total")
            }
            jobs = {
                key: sum(_jobs_json(counts)[key] for counts in per_queue.values())
                for key in ("scheduled", "running", "waiting", "total")
            }
            agents["queues"] = {name: _agents_json(counts) for name, counts in per_queue.items()}
            jobs["queues"] = {name: _jobs_json(counts) for name, counts in per_queue.items()}
        document: dict[str, Any] = {
            "agents": agents,
            "jobs": jobs,
            "organization": {"slug": self.config["organization_slug"]},
        }
        if self.config["cluster_name"] is not None:
            document["cluster"] = {"name": self.config["cluster_name"]}
        return document

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append to the request log (the caller holds ``lock``); returns the stored entry."""
        self._request_seq += 1
        stored = {"seq": self._request_seq, **entry}
        self.requests.append(stored)
        return stored

    # --- control API -----------------------------------------------------------------------

    def handle_control(
        self, method: str, segments: list[str], query: dict[str, list[str]], body: Any
    ) -> Any:
        """Answer one control request (the caller holds ``lock``); raises ``ControlError``."""
        simulation = self.simulation
        match (method, segments):
            case ("GET", ["state"]):
                return self._state()
            case ("POST", ["reset"]):
                self._reset()
                return self._state()
            case ("GET", ["config"]):
                return self._public_config()
            case ("PUT", ["config"]):
                return self._configure(_object(body))
            case ("GET", ["queues"]):
                return {
                    "queues": {name: simulation.counts(name) for name in simulation.queue_names()}
                }
            case ("GET", ["queues", queue]):
                return self._queue(queue)
            case ("PUT", ["queues", queue, "counts"]):
                simulation.set_overrides(queue, _object(body))
                return self._queue(queue)
            case ("DELETE", ["queues", queue, "counts"]):
                simulation.clear_overrides(queue)
                return self._queue(queue)
            case ("POST", ["queues", queue, "jobs"]):
                return {"job_ids": simulation.enqueue(queue, _durations(_object(body)))}
            case ("GET", ["jobs"]):
                jobs = simulation.jobs(_query_value(query, "queue"), _query_value(query, "state"))
                return {"jobs": [job.snapshot() for job in jobs]}
            case ("GET", ["jobs", job_id]):
                return simulation.job(job_id).snapshot()
            case ("GET", ["instances"]):
                instances = simulation.instances(_query_value(query, "queue"))
                return {"instances": [instance.snapshot() for instance in instances]}
            case ("POST", ["instances"]):
                return self._register(_object(body)).snapshot()
            case ("GET", ["instances", instance_id]):
                return simulation.instance(instance_id).snapshot()
            case ("DELETE", ["instances", instance_id]):
                instance, interrupted = simulation.deregister(instance_id)
                return {"instance": instance.snapshot(), "interrupted_job_ids": interrupted}
            case ("POST", ["instances", instance_id, "stop"]):
                return simulation.stop(instance_id).snapshot()
            case ("GET", ["clock"]):
                return {"now": simulation.now}
            case ("POST", ["advance"]):
                return self._advance(_object(body))
            case ("GET", ["faults"]):
                return {"faults": self.faults.snapshot()}
            case ("POST", ["faults"]):
                return self.faults.add(body).snapshot()
            case ("DELETE", ["faults"]):
                self.faults.clear()
                return {"faults": []}
            case ("DELETE", ["faults", fault_id]):
                self.faults.remove(fault_id)
                return {"faults": self.faults.snapshot()}
            case ("GET", ["requests"]):
                return {"requests": list(self.requests)}
            case ("DELETE", ["requests"]):
                self.requests.clear()
                return {"requests": []}
            case ("GET", ["rest"]):
                return {"epoch": self.rest.epoch, "pipelines": sorted(self.rest.pipelines)}
        raise ControlError(404, f"no control route {method} {CONTROL_PREFIX}/{'/'.join(segments)}")

    def _state(self) -> dict[str, Any]:
        simulation = self.simulation
        return {
            "now": simulation.now,
            "config": self._public_config(),
            "queues": {name: simulation.counts(name) for name in simulation.queue_names()},
            "instances": [instance.snapshot() for instance in simulation.instances()],
            "jobs": [job.snapshot() for job in simulation.jobs()],
            "faults": self.faults.snapshot(),
            "request_count": len(self.requests),
        }

    def _public_config(self) -> dict[str, Any]:
        return {key: value for key, value in self.config.items() if key != "token"}

    def _configure(self, document: dict[str, Any]) -> dict[str, Any]:
        validation.only_keys(
            "config", document, {"token", "poll_duration_s", "organization_slug", "cluster_name"}
        )
        update = dict(self.config)
        if "token" in document:
            update["token"] = validation.token(document["token"])
        if "poll_duration_s" in document:
            update["poll_duration_s"] = validation.non_negative_int(
                "poll_duration_s", document["poll_duration_s"]
            )
        if "organization_slug" in document:
            update["organization_slug"] = validation.name(
                "organization_slug", document["organization_slug"]
            )
        if "cluster_name" in document:
            update["cluster_name"] = _optional_name("cluster_name", document["cluster_name"])
        self.config = update
        return self._public_config()

    def _queue(self, queue: str) -> dict[str, Any]:
        return {
            "queue": queue,
            "counts": self.simulation.counts(queue),
            "simulated": self.simulation.simulated_counts(queue),
            "overrides": self.simulation.overrides(queue),
        }

    def _register(self, document: dict[str, Any]) -> Instance:
        validation.only_keys("instance", document, {"instance_id", "queue", "agents_per_instance"})
        return self.simulation.register(
            document.get("instance_id"),
            document.get("queue", "default"),
            document.get("agents_per_instance", 1),
        )

    def _advance(self, document: dict[str, Any]) -> dict[str, Any]:
        validation.only_keys("advance", document, {"seconds", "to"})
        if ("seconds" in document) == ("to" in document):
            raise ControlError(400, "give exactly one of seconds and to")
        if "seconds" in document:
            finished = self.simulation.advance(document["seconds"])
        else:
            finished = self.simulation.advance_to(document["to"])
        return {"now": self.simulation.now, "finished_job_ids": finished}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of clients must not wait for SYN retransmits

    def __init__(self, port: int, core: EmulatorCore) -> None:
        self.core = core
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self.connections_lock:
            self.connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOG.debug("emulator connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "buildkite-agent-api-emulator"
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("emulator: " + format, *args)

    def _dispatch(self, method: str) -> None:
        path, _, raw_query = self.path.partition("?")
        query = parse_qs(raw_query, keep_blank_values=True)
        try:
            body = self._read_body()
            if path in AGENT_ROUTES:
                self._agent_request(method, AGENT_ROUTES[path], query)
            elif path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
                self._control_request(method, path, query, body)
            elif path.startswith(REST_PREFIX):
                self._rest_request(method, path, query, body)
            else:
                self._send_json(404, {"message": "Not Found"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_CONTROL_BODY_BYTES:
            self.close_connection = True
            return b""
        return self.rfile.read(size)

    # --- agent API -----------------------------------------------------------------------

    def _agent_request(self, method: str, route: str, query: dict[str, list[str]]) -> None:
        core = self.server.core
        queue = _query_value(query, "name") if route == "metrics_queue" else None
        with core.lock:
            # Recorded on arrival; "status" stays None until answered (None for a reset).
            fault = core.faults.take(route, queue) if method == "GET" else None
            authorized = core.authorized(self.headers.get("Authorization"))
            entry = core.record(
                {
                    "method": method,
                    "route": route,
                    "path": self.path,
                    "queue": queue,
                    "authorized": authorized,
                    "status": None,
                    "fault_id": fault.fault_id if fault else None,
                    "reset": bool(fault and fault.reset),
                    "virtual_time": core.simulation.now,
                    "wall_time": time.time(),
                }
            )
        if method != "GET":
            with core.lock:
                entry["status"] = 405
            self._send_json(405, {"message": "Method Not Allowed"})
            return
        if fault is not None and fault.delay_s:
            core.stopping.wait(fault.delay_s)
        if fault is not None and fault.reset:
            _LOG.debug("emulator: %s %s queue=%r reset", method, route, queue)
            self._reset_connection()
            return
        with core.lock:
            status, document, headers = self._agent_answer(core, route, queue, authorized)
            status, body, headers = _apply_fault(fault, status, document, headers)
            entry["status"] = status
        _LOG.debug("emulator: %s %s queue=%r -> %s", method, route, queue, status)
        self._send(status, body, headers, truncate=bool(fault and fault.truncate))

    @staticmethod
    def _agent_answer(
        core: EmulatorCore, route: str, queue: str | None, authorized: bool
    ) -> tuple[int, Any, dict[str, str]]:
        if not authorized:
            return 401, {"message": "Invalid or missing agent token"}, {}
        if route == "metrics_queue" and not queue:
            return 400, {"message": "The name parameter is required"}, {}
        headers = {POLL_DURATION_HEADER: str(core.config["poll_duration_s"])}
        return 200, core.metrics_document(queue), headers

    def _reset_connection(self) -> None:
        self.close_connection = True
        connection = self.connection
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            connection.close()

    # --- control API -----------------------------------------------------------------------

    def _control_request(
        self, method: str, path: str, query: dict[str, list[str]], raw_body: bytes
    ) -> None:
        segments = [
            unquote(segment) for segment in path[len(CONTROL_PREFIX) :].strip("/").split("/")
        ]
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
        except ValueError:
            self._send_json(400, {"message": "the request body is not valid JSON"})
            return
        core = self.server.core
        try:
            with core.lock:
                answer = core.handle_control(method, segments, query, body)
        except ControlError as error:
            self._send_json(error.status, {"message": error.message})
            return
        self._send_json(200, answer)

    # --- REST API ----------------------------------------------------------------------------

    def _rest_request(
        self, method: str, path: str, query: dict[str, list[str]], raw_body: bytes
    ) -> None:
        core = self.server.core
        if not core.rest_authorized(self.headers.get("Authorization")):
            self._send_json(401, {"message": "Authentication required. Please supply a token."})
            return
        try:
            body = json.loads(raw_body) if raw_body.strip() else {}
        except ValueError:
            self._send_json(400, {"message": "Problems parsing JSON"})
            return
        segments = [unquote(segment) for segment in path[len(REST_PREFIX) :].strip("/").split("/")]
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        try:
            with core.lock:
                status, document, headers = core.rest.handle(
                    core.simulation,
                    core.config["organization_slug"],
                    method,
                    segments,
                    query,
                    body,
                    f"http://{host}",
                )
        except ControlError as error:
            self._send_json(error.status, {"message": error.message})
            return
        if status == 204:
            self._send(status, b"", {"Content-Type": None})
            return
        self._send(status, json.dumps(document).encode(), dict(headers))

    # --- answers -----------------------------------------------------------------------------

    def _send_json(self, status: int, document: Any) -> None:
        self._send(status, json.dumps(document).encode(), {})

    def _send(
        self, status: int, body: bytes, headers: dict[str, str | None], *, truncate: bool = False
    ) -> None:
        self.send_response(status)
        merged: dict[str, str | None] = {"Content-Type": "application/json"}
        merged.update(headers)
        for key, value in merged.items():
            if value is not None:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncate else body)


def _apply_fault(
    fault: Fault | None, status: int, document: Any, headers: dict[str, str]
) -> tuple[int, bytes, dict[str, str | None]]:
    merged: dict[str, str | None] = dict(headers)
    if fault is None:
        return status, json.dumps(document).encode(), merged
    if fault.status is not None:
        status = fault.status
        document = {"message": fault.message or _default_message(status)}
        if status != 200:
            merged.pop(POLL_DURATION_HEADER, None)
    if fault.retry_after is not None:
        merged["Retry-After"] = fault.retry_after
    if fault.has_json:
        body = json.dumps(fault.json).encode()
    elif fault.body is not None:
        body = fault.body.encode()
        merged["Content-Type"] = (
            "text/html" if fault.body.lstrip().startswith("<") else "text/plain"
        )
    else:
        body = json.dumps(document).encode()
    merged.update(fault.headers)
    return status, body, merged


def _default_message(status: int) -> str:
    phrase = BaseHTTPRequestHandler.responses.get(status, ("Error",))[0]
    return f"{phrase} (injected fault)"


def _agents_json(counts: dict[str, int]) -> dict[str, int]:
    return {
        "idle": counts["idle_agents"],
        "busy": counts["busy_agents"],
        "total": counts["total_agents"],
    }


def _jobs_json(counts: dict[str, int]) -> dict[str, int]:
    return {
        "scheduled": counts["scheduled_jobs"],
        "running": counts["running_jobs"],
        "waiting": counts["waiting_jobs"],
        "total": counts["total_jobs"],
    }


def _query_value(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ControlError(400, "the request body must be a JSON object")
    return body


def _durations(document: dict[str, Any]) -> list[float]:
    validation.only_keys("jobs", document, {"count", "duration_s", "durations_s"})
    if "durations_s" in document:
        if "count" in document or "duration_s" in document:
            raise ControlError(400, "give durations_s, or count and duration_s")
        durations = document["durations_s"]
        if not isinstance(durations, list):
            raise ControlError(400, "durations_s must be a list of seconds")
        return durations
    count = validation.positive_int("count", document.get("count", 1))
    return [document.get("duration_s", 60.0)] * count


def _optional_name(what: str, value: Any) -> str | None:
    return None if value is None else validation.name(what, value)


class BuildkiteEmulator:
    """The emulator serving on 127.0.0.1 in a background thread; a context manager.

    ``url`` is the agent API base URL (ends in ``/v3``); ``token`` the agent token it accepts
    (a random one unless given); ``rest_url`` the REST API base URL (ends in ``/v2``) and
    ``api_token`` its access token (random unless given); ``control`` an ``EmulatorControl``.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        port: int = 0,
        poll_duration_s: int = DEFAULT_POLL_DURATION_S,
        organization_slug: str = DEFAULT_ORGANIZATION_SLUG,
        cluster_name: str | None = None,
        api_token: str | None = None,
    ) -> None:
        self._core = EmulatorCore(
            token=token if token is not None else secrets.token_hex(20),
            poll_duration_s=poll_duration_s,
            organization_slug=organization_slug,
            cluster_name=cluster_name,
            api_token=api_token if api_token is not None else secrets.token_hex(20),
        )
        self._port = port
        self._bound_port: int | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._core.stopping.clear()
        self._server = _Server(self._port, self._core)
        self._bound_port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"buildkite-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        _LOG.debug("Buildkite agent API emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._core.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port it listens (or, once stopped, listened) on."""
        if self._bound_port is None:
            raise RuntimeError("the emulator has not been started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the root of both the agent and the control API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The agent API base URL (the ``AgentEndpoint``): ``http://127.0.0.1:<port>/v3``."""
        return f"{self.base_url}/v3"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}{CONTROL_PREFIX}"

    @property
    def token(self) -> str:
        """The agent token the emulator accepts now (changed by ``control.configure``)."""
        return self._core.token

    @property
    def api_token(self) -> str:
        """The REST API access token the emulator accepts (``Authorization: Bearer``)."""
        return self._core.api_token

    @property
    def rest_url(self) -> str:
        """The REST API base URL: ``http://127.0.0.1:<port>/v2``."""
        return f"{self.base_url}/v2"

    @property
    def control(self) -> EmulatorControl:
        return EmulatorControl(self.base_url)

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"BuildkiteEmulator({where})"
