"""Does an identity policy allow an action on a resource? IAM's evaluation, for the tests.

Enough of IAM's policy evaluation logic for the project's roles, and strict about the rest:

- an explicit Deny wins; otherwise some Allow statement must match;
- `Action` / `NotAction` match case-insensitively, `Resource` / `NotResource` case-sensitively,
  both with the `*` and `?` wildcards;
- `Condition`: every operator block must hold, every key in it must hold (AND), and a key
  holds when any of its policy values matches any of the request's values (OR). The String*,
  Arn* and Bool operators are supported, with `...IfExists`; any other operator raises
  `UnsupportedPolicy` rather than being guessed at.

A request's condition context is a mapping of condition keys (matched case-insensitively, as
IAM does) to a value or a list of values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

PolicyDocument = Mapping[str, Any]


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not implement."""


@dataclass(frozen=True)
class Request:
    """One authorization question: may the principal do `action` on `resource`?"""

    action: str
    resource: str
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)

    def describe(self) -> str:
        conditions = ", ".join(f"{key}={value}" for key, value in sorted(self.context.items()))
        return f"{self.action} on {self.resource}" + (f" ({conditions})" if conditions else "")


def allows(documents: Iterable[PolicyDocument], request: Request) -> bool:
    """True when the policies allow `request` (an explicit Deny in any of them wins)."""
    allowed = False
    for statement in _statements(documents):
        if not _applies(statement, request):
            continue
        if statement["Effect"] == "Deny":
            return False
        if statement["Effect"] == "Allow":
            allowed = True
    return allowed


def widened_for_moto(document: PolicyDocument) -> dict[str, Any]:
    """The same actions on every resource, without conditions.

    moto's IAM enforcement checks only the Action element: it authorizes most services'
    requests against the resource "*" and evaluates conditions with no request context, so a
    statement scoped to an ARN or a tag never matches there. Giving moto this widened copy
    lets it enforce the actions; resources and conditions are checked by `allows`.
    """
    statements = []
    for statement in _statements([document]):
        widened = {key: value for key, value in statement.items() if key != "Condition"}
        widened.pop("NotResource", None)
        widened["Resource"] = "*"
        statements.append(widened)
    return {"Version": "2012-10-17", "Statement": statements}


def _statements(documents: Iterable[PolicyDocument]) -> list[Mapping[str, Any]]:
    statements: list[Mapping[str, Any]] = []
    for document in documents:
        listed = document.get("Statement", [])
        statements.extend([listed] if isinstance(listed, Mapping) else listed)
    return statements


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "NotAction" in statement:
        action_matches = not _any_match(statement["NotAction"], request.action, ignore_case=True)
    else:
        action_matches = _any_match(statement.get("Action", []), request.action, ignore_case=True)
    if "NotResource" in statement:
        resource_matches = not _any_match(statement["NotResource"], request.resource)
    else:
        resource_matches = _any_match(statement.get("Resource", []), request.resource)
    return (
        action_matches
        and resource_matches
        and _conditions_hold(statement.get("Condition") or {}, request.context)
    )


def _any_match(patterns: str | Sequence[str], value: str, *, ignore_case: bool = False) -> bool:
    listed = [patterns] if isinstance(patterns, str) else list(patterns)
    return any(_wildcard(pattern, ignore_case).fullmatch(value) for pattern in listed)


@cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # IAM's wildcards are * and ? only (no [...] classes as in shell globs).
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(regex, re.IGNORECASE if ignore_case else 0)


def _conditions_hold(conditions: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    by_key = {key.lower(): value for key, value in context.items()}
    for operator, block in conditions.items():
        for key, expected in block.items():
            actual = by_key.get(key.lower())
            if not _condition_holds(operator, expected, actual):
                return False
    return True


def _condition_holds(operator: str, expected: Any, actual: Any) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    negated = "Not" in base
    if actual is None:
        # A missing key satisfies only the negated operators and the ...IfExists forms.
        return if_exists or negated
    expected_values = [str(v) for v in (expected if isinstance(expected, list) else [expected])]
    actual_values = [str(v) for v in (actual if isinstance(actual, list | tuple) else [actual])]
    match = _OPERATORS.get(base.replace("Not", "", 1) if negated else base)
    if match is None:
        raise UnsupportedPolicy(f"condition operator {operator} is not supported")
    found = any(match(e, a) for e in expected_values for a in actual_values)
    return not found if negated else found


_OPERATORS = {
    "StringEquals": lambda expected, actual: expected == actual,
    "StringEqualsIgnoreCase": lambda expected, actual: expected.lower() == actual.lower(),
    "StringLike": lambda expected, actual: bool(_wildcard(expected, False).fullmatch(actual)),
    "ArnEquals": lambda expected, actual: bool(_wildcard(expected, False).fullmatch(actual)),
    "ArnLike": lambda expected, actual: bool(_wildcard(expected, False).fullmatch(actual)),
    "Bool": lambda expected, actual: expected.lower() == actual.lower(),
}
