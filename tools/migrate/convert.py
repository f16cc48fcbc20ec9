"""Apply the rules to one reference stack's parameter values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.migrate.reference import REFERENCE_DEFAULTS, REFERENCE_RELEASE
from tools.migrate.rules import (
    DEFAULT_REASONS,
    RULES,
    Context,
    Drop,
    Keep,
    Note,
    Outcome,
    Special,
)

# Where the token goes unless --token-parameter says otherwise: a parameter name, not a secret.
DEFAULT_TOKEN_PARAMETER = "/buildkite/agent-token"  # noqa: S105


@dataclass
class Migration:
    """Our root template's parameters for one reference stack, and the report."""

    parameters: dict[str, str] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)

    @property
    def needs_decision(self) -> bool:
        return any(note.kind == "decide" for note in self.notes)


def same_value(left: Any, right: Any) -> bool:
    """Equal as CloudFormation parameter values ("1.0" and 1 are the same number)."""
    left, right = str(left), str(right)
    if left == right:
        return True
    try:
        return float(left) == float(right)
    except ValueError:
        return False


def our_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: str(spec["Default"])
        for name, spec in (template.get("Parameters") or {}).items()
        if "Default" in spec
    }


def convert(
    values: Mapping[str, str],
    template: Mapping[str, Any],
    *,
    token_parameter: str = DEFAULT_TOKEN_PARAMETER,
    ssh_ingress_cidr: str = "",
    stack_name: str = "",
) -> Migration:
    """Our parameters for a reference stack with these parameter values."""
    defaults = our_defaults(template)
    filled = {**REFERENCE_DEFAULTS, **{k: str(v) for k, v in values.items()}}
    given = frozenset(
        name
        for name, value in filled.items()
        if name in REFERENCE_DEFAULTS and not same_value(value, REFERENCE_DEFAULTS[name])
    )
    context = Context(filled, given, defaults, token_parameter, ssh_ingress_cidr, stack_name)
    migration = Migration()
    for name in REFERENCE_DEFAULTS:
        outcome = _apply(name, filled[name], context)
        migration.parameters.update(outcome.parameters)
        migration.notes.extend(outcome.notes)
    for name in values:
        if name not in REFERENCE_DEFAULTS:
            migration.notes.append(
                Note(
                    "unknown",
                    name,
                    f"not a parameter of the reference stack {REFERENCE_RELEASE}, which this "
                    "command knows; not carried over (look for an equivalent in the README)",
                )
            )
    order = {name: index for index, name in enumerate(template.get("Parameters") or {})}
    migration.parameters = {
        name: value
        for name, value in sorted(
            migration.parameters.items(), key=lambda item: order.get(item[0], len(order))
        )
        if not (name in defaults and same_value(value, defaults[name]))
    }
    return migration


def _apply(name: str, value: str, context: Context) -> Outcome:
    rule = RULES[name]
    if isinstance(rule, Special):
        if context.is_set(name) or rule.always:
            return rule.apply(name, value, context)
        return Outcome()
    if isinstance(rule, Drop):
        return _drop(name, value, rule, context)
    return _keep(name, value, rule, context)


def _keep(name: str, value: str, rule: Keep, context: Context) -> Outcome:
    target = rule.target or name
    translate = rule.translate or (lambda text: text)
    if not context.is_set(name):
        ours = context.our_defaults.get(target)
        theirs = translate(value)
        if ours is None or same_value(ours, theirs):
            return Outcome()
        reason = DEFAULT_REASONS.get(target, "")
        return Outcome(
            notes=[
                Note(
                    "default",
                    name,
                    f"not set; our default {ours or '(empty)'} replaces the reference's "
                    f"{theirs or '(empty)'}" + (f" ({reason})" if reason else ""),
                )
            ]
        )
    new = translate(value)
    notes = []
    if target != name:
        change = f" = {new} (from {value}: {rule.why})" if new != value else ""
        notes.append(Note("renamed", name, f"-> {target}{change}"))
    elif new != value:
        notes.append(Note("translated", name, f"{value} -> {new} ({rule.why})"))
    return Outcome(parameters={target: new}, notes=notes)


def _drop(name: str, value: str, rule: Drop, context: Context) -> Outcome:
    if not context.is_set(name):
        return Outcome(notes=[Note("default", name, rule.unset)] if rule.unset else [])
    kind = "dropped" if rule.fine is None or value in rule.fine else "decide"
    instead = f"; instead: {rule.instead}" if rule.instead else ""
    return Outcome(notes=[Note(kind, name, f"{value}: {rule.why}{instead}")])
