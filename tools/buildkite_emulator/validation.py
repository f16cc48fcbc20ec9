"""Checks on control-API input; a failed check is a ``ControlError`` the server answers as JSON."""

from __future__ import annotations

import math
from typing import Any


class ControlError(Exception):
    """A control request the emulator refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def non_negative_int(name: str, value: Any, *, maximum: int | None = None) -> int:
    """An ``int`` >= 0 (``bool`` is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ControlError(400, f"{name} must be an integer >= 0")
    if maximum is not None and value > maximum:
        raise ControlError(400, f"{name} must be at most {maximum}")
    return value


def positive_int(name: str, value: Any, *, maximum: int | None = None) -> int:
    """An ``int`` >= 1."""
    if non_negative_int(name, value, maximum=maximum) < 1:
        raise ControlError(400, f"{name} must be an integer >= 1")
    return value


def seconds(name: str, value: Any, *, maximum: float | None = None) -> float:
    """A finite number of seconds >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(400, f"{name} must be a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise ControlError(400, f"{name} must be a finite number of seconds >= 0")
    if maximum is not None and value > maximum:
        raise ControlError(400, f"{name} must be at most {maximum} seconds")
    return float(value)


def name(what: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"{what} must be a non-empty string")
    return value


def token(value: Any) -> str:
    """An agent token: non-empty, printable, no whitespace. Messages never quote it."""
    if (
        not isinstance(value, str)
        or not value
        or not value.isprintable()
        or any(character.isspace() for character in value)
    ):
        raise ControlError(400, "token must be a non-empty string without whitespace")
    return value


def only_keys(what: str, document: dict[str, Any], allowed: set[str]) -> None:
    """Refuse unknown keys, so a typo in a test is an error, not a silent no-op."""
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise ControlError(400, f"unknown {what} field(s): {', '.join(unknown)}")
