"""Faults injected into agent API routes: what to break, on which route, for how many requests.

A fault matches a route (``metrics_queue``, ``metrics`` or ``*`` for both) and optionally one
queue name. The first matching fault in the table answers a request and uses up one of its
``count`` requests (``count: null`` keeps it until removed). What it does, combined as given:

- ``delay_s``: wait before answering (a client read timeout shorter than this fires);
- ``reset``: close the connection with a TCP reset instead of answering;
- ``status`` (+ ``message``, ``retry_after``): answer this status with ``{"message": ...}``;
- ``malformed`` / ``body`` / ``json``: replace the answer's body (non-JSON text, raw text, or
  a JSON document, e.g. wrong-typed or negative counts);
- ``truncate``: send the full ``Content-Length`` but only the first half of the body, then close;
- ``headers``: set (or, with ``null``, remove) response headers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from tools.buildkite_emulator import validation
from tools.buildkite_emulator.validation import ControlError

ROUTES = ("metrics_queue", "metrics", "*")
MALFORMED_BODY = "<html><body><h1>502 Bad Gateway</h1></body></html>"
MAX_DELAY_S = 120.0

_FIELDS = {
    "route",
    "queue",
    "count",
    "status",
    "message",
    "retry_after",
    "delay_s",
    "reset",
    "malformed",
    "body",
    "json",
    "truncate",
    "headers",
}


@dataclass
class Fault:
    """One injected fault and how many more requests it will answer (None: until removed)."""

    fault_id: str
    route: str = "*"
    queue: str | None = None
    remaining: int | None = 1
    status: int | None = None
    message: str | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    reset: bool = False
    body: str | None = None
    json: Any = None
    has_json: bool = False
    truncate: bool = False
    headers: dict[str, str | None] = field(default_factory=dict)
    hits: int = 0

    def matches(self, route: str, queue: str | None) -> bool:
        return self.route in ("*", route) and (self.queue is None or self.queue == queue)

    def snapshot(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "fault_id": self.fault_id,
            "route": self.route,
            "queue": self.queue,
            "count": self.remaining,
            "status": self.status,
            "message": self.message,
            "retry_after": self.retry_after,
            "delay_s": self.delay_s,
            "reset": self.reset,
            "body": self.body,
            "truncate": self.truncate,
            "headers": dict(self.headers),
            "hits": self.hits,
        }
        if self.has_json:
            document["json"] = self.json
        return document


def fault_from_document(fault_id: str, document: Any) -> Fault:
    """Validate a control-API fault document."""
    if not isinstance(document, dict):
        raise ControlError(400, "a fault must be a JSON object")
    validation.only_keys("fault", document, _FIELDS)
    route = document.get("route", "*")
    if route not in ROUTES:
        raise ControlError(400, f"route must be one of {', '.join(ROUTES)}")
    queue = document.get("queue")
    if queue is not None:
        validation.name("queue", queue)
    count = document.get("count", 1)
    if count is not None:
        validation.positive_int("count", count)
    status = document.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
    ):
        raise ControlError(400, "status must be an HTTP status code (100-599)")
    message = _optional_text(document, "message")
    retry_after = document.get("retry_after")
    if retry_after is not None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | str):
            raise ControlError(400, "retry_after must be a number of seconds or an HTTP date")
        retry_after = str(retry_after)
    body = _optional_text(document, "body")
    malformed = _flag(document, "malformed")
    has_json = "json" in document
    if sum((body is not None, malformed, has_json)) > 1:
        raise ControlError(400, "give at most one of body, malformed and json")
    reset = _flag(document, "reset")
    truncate = _flag(document, "truncate")
    if reset and (truncate or status is not None or body is not None or malformed or has_json):
        raise ControlError(400, "a reset sends no answer: combine it only with delay_s")
    headers = document.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(key, str) and key and (value is None or isinstance(value, str | int))
        for key, value in headers.items()
    ):
        raise ControlError(400, "headers must map header names to strings (or null to remove)")
    return Fault(
        fault_id=fault_id,
        route=route,
        queue=queue,
        remaining=count,
        status=status,
        message=message,
        retry_after=retry_after,
        delay_s=validation.seconds("delay_s", document.get("delay_s", 0.0), maximum=MAX_DELAY_S),
        reset=reset,
        body=MALFORMED_BODY if malformed else body,
        json=document.get("json"),
        has_json=has_json,
        truncate=truncate,
        headers={key: None if value is None else str(value) for key, value in headers.items()},
    )


class FaultTable:
    """The injected faults, first added first used."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, document: Any) -> Fault:
        fault = fault_from_document(f"fault-{next(self._ids)}", document)
        self._faults.append(fault)
        return fault

    def take(self, route: str, queue: str | None) -> Fault | None:
        """The fault that answers this request, if any; uses up one of its requests."""
        for fault in self._faults:
            if not fault.matches(route, queue):
                continue
            fault.hits += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
            return fault
        return None

    def remove(self, fault_id: str) -> None:
        for fault in self._faults:
            if fault.fault_id == fault_id:
                self._faults.remove(fault)
                return
        raise ControlError(404, f"no fault {fault_id!r}")

    def clear(self) -> None:
        self._faults.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        return [fault.snapshot() for fault in self._faults]


def _optional_text(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise ControlError(400, f"{key} must be a string")
    return value


def _flag(document: dict[str, Any], key: str) -> bool:
    value = document.get(key, False)
    if not isinstance(value, bool):
        raise ControlError(400, f"{key} must be true or false")
    return value
