"""A value that must never be printed: the agent token, wrapped so that repr/str redact it.

Anything that renders the wrapper (a log call, a traceback, `str(event)`) sees a fixed
placeholder; only code that calls `reveal()` on purpose gets the value.
"""

from __future__ import annotations

from typing import NoReturn

REDACTED = "**********"


class SecretValue:
    """Holds a secret string; its text form is always the redaction placeholder."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one call that must send it (SSM PutParameter)."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretValue({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled")
