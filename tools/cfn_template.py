"""Load CloudFormation templates and render their conditions for a set of parameter values.

Tests and tools use this to ask "which resources does this template create for these
parameters?" without an AWS account. It understands the YAML short-form tags, evaluates the
condition functions (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`) over parameters,
pseudo parameters and the value functions they may contain (`Ref`, `Fn::Join`, `Fn::Select`,
`Fn::Split`, `Fn::Sub`, `Fn::FindInMap`), and resolves `Fn::If` / `AWS::NoValue` inside
resources and outputs. Anything that needs a deployed resource (`Fn::GetAtt`, `Ref` to a
resource) is left as written, unless `Rendered.evaluate` is given a `Deployed` that says what
those resolve to (a test's model of one deployment).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import yaml

PSEUDO_PARAMETERS: dict[str, str] = {
    "AWS::AccountId": "123456789012",
    "AWS::NotificationARNs": "",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/test-stack/guid",
    "AWS::StackName": "test-stack",
    "AWS::URLSuffix": "amazonaws.com",
}

_NO_VALUE = object()
_LIST_TYPES = ("List<", "CommaDelimitedList")


class TemplateError(ValueError):
    """The template or the parameter values given for it are not valid."""


class _Unresolved(Exception):
    """A value depends on something only a deployment knows (a resource, an attribute)."""


class Deployed(Protocol):
    """What one deployment's resources resolve to: `Ref` to a resource and `Fn::GetAtt`."""

    def ref(self, logical_id: str) -> Any:
        """The resource's `Ref` value (its physical id, name or ARN, per its type)."""
        ...

    def attribute(self, logical_id: str, name: str) -> Any:
        """The resource's `Fn::GetAtt` attribute `name` (e.g. "Arn", "Outputs.X")."""
        ...


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` into `{"Ref": "x"}`, `!Sub s` into `{"Fn::Sub": s}`..."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template file (YAML or JSON) into plain Python values."""
    return parse_template(Path(path).read_text(encoding="utf-8"), source=str(path))


def parse_template(text: str, *, source: str = "template") -> dict[str, Any]:
    """Parse CloudFormation/SAM template text (YAML or JSON) into plain Python values."""
    template = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader
    if not isinstance(template, dict) or "Resources" not in template:
        raise TemplateError(f"{source}: not a CloudFormation template (no Resources)")
    return template


@dataclass
class Rendered:
    """A template as CloudFormation would see it for one set of parameter values."""

    parameters: dict[str, Any]
    conditions: dict[str, bool]
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    mappings: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, value: Any, deployed: Deployed | None = None) -> Any:
        """Resolve every intrinsic in `value` that depends only on parameters.

        With `deployed`, `Ref` to a resource and `Fn::GetAtt` resolve through it; without,
        raises TemplateError when something needs a deployed resource.
        """
        evaluator = _Evaluator(self.parameters, self.conditions, self.mappings)
        evaluator.deployed = deployed
        try:
            return evaluator.value(value)
        except _Unresolved as exc:
            raise TemplateError(f"cannot resolve without a deployment: {exc}") from None

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """The rendered resources of one type, by logical id."""
        return {
            name: resource
            for name, resource in self.resources.items()
            if resource.get("Type") == resource_type
        }


def parameter_values(template: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `given` over the template's defaults, checking names, presence and AllowedValues."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameters: {', '.join(unknown)}")
    values: dict[str, Any] = dict(PSEUDO_PARAMETERS)
    for name, spec in declared.items():
        if name in given:
            raw = given[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no default and no value was given")
        is_list = str(spec.get("Type", "String")).startswith(_LIST_TYPES)
        if is_list:
            items = raw if isinstance(raw, list) else [s for s in str(raw).split(",") if s != ""]
            value: Any = [str(item).strip() for item in items]
        else:
            value = str(raw)
        allowed = spec.get("AllowedValues")
        if allowed is not None:
            allowed_strings = {str(a) for a in allowed}
            checked = value if is_list else [value]
            bad = [item for item in checked if item not in allowed_strings]
            if bad:
                raise TemplateError(f"parameter {name}: {bad} not in AllowedValues {allowed}")
        values[name] = value
    return values


def render(template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None) -> Rendered:
    """Evaluate the template's conditions and keep what they allow, with `Fn::If` resolved."""
    values = parameter_values(template, parameters or {})
    mappings = dict(template.get("Mappings") or {})
    evaluator = _Evaluator(values, {}, mappings, template.get("Conditions") or {})
    conditions = {name: evaluator.condition(name) for name in template.get("Conditions") or {}}
    evaluator.conditions = conditions

    def kept(section: str) -> dict[str, dict[str, Any]]:
        result = {}
        for name, body in (template.get(section) or {}).items():
            condition = body.get("Condition")
            if condition is not None and not _known_condition(conditions, condition):
                continue
            result[name] = evaluator.branches(body)
        return result

    return Rendered(values, conditions, kept("Resources"), kept("Outputs"), mappings)


def rule_violations(template: Mapping[str, Any], parameters: Mapping[str, Any]) -> list[str]:
    """The AssertDescription of every template rule assertion these parameter values break."""
    values = parameter_values(template, parameters)
    evaluator = _Evaluator(values, {}, template.get("Mappings") or {})
    broken = []
    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not evaluator.truth(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            if not evaluator.truth(assertion["Assert"]):
                broken.append(assertion.get("AssertDescription", name))
    return broken


def _known_condition(conditions: Mapping[str, bool], name: str) -> bool:
    if name not in conditions:
        raise TemplateError(f"condition {name} is not declared")
    return conditions[name]


class _Evaluator:
    """Evaluates intrinsic functions against known parameter values."""

    def __init__(
        self,
        parameters: Mapping[str, Any],
        conditions: Mapping[str, bool],
        mappings: Mapping[str, Any],
        condition_bodies: Mapping[str, Any] | None = None,
    ) -> None:
        self.parameters = parameters
        self.conditions = dict(conditions)
        self.mappings = mappings
        self.condition_bodies = condition_bodies or {}
        self.deployed: Deployed | None = None
        self._evaluating: set[str] = set()

    # Conditions -------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name in self.conditions:
            return self.conditions[name]
        if name not in self.condition_bodies:
            raise TemplateError(f"condition {name} is not declared")
        if name in self._evaluating:
            raise TemplateError(f"condition {name} refers to itself")
        self._evaluating.add(name)
        result = self.truth(self.condition_bodies[name])
        self._evaluating.discard(name)
        self.conditions[name] = result
        return result

    def truth(self, expression: Any) -> bool:
        if not isinstance(expression, dict) or len(expression) != 1:
            raise TemplateError(f"not a condition expression: {expression!r}")
        ((function, argument),) = expression.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            try:
                left, right = (self.value(item) for item in argument)
            except _Unresolved as exc:
                raise TemplateError(f"a condition cannot depend on {exc}") from None
            return str(left) == str(right) if not isinstance(left, list) else left == right
        if function == "Fn::Not":
            return not self.truth(argument[0])
        if function == "Fn::And":
            return all(self.truth(item) for item in argument)
        if function == "Fn::Or":
            return any(self.truth(item) for item in argument)
        if function == "Fn::EachMemberEquals":
            members, expected = (self.value(item) for item in argument)
            return all(str(member) == str(expected) for member in members)
        if function == "Fn::Contains":
            members, expected = (self.value(item) for item in argument)
            return str(expected) in [str(member) for member in members]
        raise TemplateError(f"unsupported condition function {function}")

    # Fn::If inside resources and outputs ------------------------------------------------
    def branches(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.branches(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.branches(when_true if self.condition(name) else when_false)
            if key == "Ref" and argument == "AWS::NoValue":
                return _NO_VALUE
        result = {}
        for key, item in value.items():
            resolved = self.branches(item)
            if resolved is not _NO_VALUE:
                result[key] = resolved
        return result

    # Values -----------------------------------------------------------------------------
    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self.value(item) for key, item in value.items()}
        ((function, argument),) = value.items()
        handler = self._functions.get(function)
        if handler is None:
            if function.startswith("Fn::"):
                raise _Unresolved(function)
            return {function: self.value(argument)}
        return handler(self, argument)

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if self.deployed is not None:
            return self.deployed.ref(name)
        raise _Unresolved(f"Ref {name}")

    def _get_att(self, argument: list[Any]) -> Any:
        if self.deployed is None:
            raise _Unresolved("Fn::GetAtt")
        logical_id, name = argument
        return self.deployed.attribute(logical_id, str(self.value(name)))

    def _join(self, argument: list[Any]) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.value(items))

    def _select(self, argument: list[Any]) -> Any:
        index, items = argument
        items = self.value(items)
        index = int(self.value(index))
        if not 0 <= index < len(items):
            raise TemplateError(f"Fn::Select index {index} out of range for {items!r}")
        return items[index]

    def _split(self, argument: list[Any]) -> list[str]:
        delimiter, text = argument
        return str(self.value(text)).split(delimiter)

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument
            local = {key: self.value(item) for key, item in variables.items()}
        else:
            text, local = argument, {}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name:
                if self.deployed is None:
                    raise _Unresolved(f"Fn::Sub ${{{name}}}")
                logical_id, attribute = name.split(".", 1)
                return str(self.deployed.attribute(logical_id, attribute))
            resolved = self._ref(name)
            return ",".join(resolved) if isinstance(resolved, list) else str(resolved)

        return re.sub(r"\$\{([^}]+)\}", substitute, text)

    def _find_in_map(self, argument: list[Any]) -> Any:
        map_name, top, second = (self.value(item) for item in argument)
        try:
            return self.mappings[map_name][top][second]
        except KeyError:
            raise TemplateError(f"Fn::FindInMap {map_name}/{top}/{second} not found") from None

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.value(when_true if self.condition(name) else when_false)

    _functions: ClassVar[dict[str, Any]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::Sub": _sub,
        "Fn::FindInMap": _find_in_map,
        "Fn::If": _if,
        "Condition": lambda self, name: self.condition(name),
    }


def constraint_violations(template: Mapping[str, Any], parameters: Mapping[str, Any]) -> list[str]:
    """Every way `parameters` break the template's parameter constraints or its rules.

    CloudFormation's own checks before it creates anything: known names, AllowedValues,
    AllowedPattern (a full match), MinLength/MaxLength, Number values and MinValue/MaxValue
    (each item of a list type), then the template's Rules. An empty list means it would accept
    them.
    """
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    problems = [f"unknown parameter {name}" for name in sorted(set(parameters) - set(declared))]
    known = {name: value for name, value in parameters.items() if name in declared}
    for name, spec in declared.items():
        raw = known.get(name, spec.get("Default"))
        if raw is None:
            problems.append(f"{name}: no value and no default")
            continue
        kind = str(spec.get("Type", "String"))
        is_list = kind.startswith(_LIST_TYPES)
        items = (raw if isinstance(raw, list) else str(raw).split(",")) if is_list else [str(raw)]
        for item in (str(i).strip() if is_list else str(i) for i in items):
            problems.extend(f"{name}: {p}" for p in _item_violations(spec, item, kind))
    if not problems:
        problems.extend(rule_violations(template, known))
    return problems


def _item_violations(spec: Mapping[str, Any], value: str, kind: str) -> list[str]:
    found = []
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in {str(a) for a in allowed}:
        found.append(f"{value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, value) is None:
        found.append(f"{value!r} does not match {pattern}")
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        found.append(f"{value!r} is shorter than {spec['MinLength']}")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        found.append(f"{value!r} is longer than {spec['MaxLength']}")
    if kind == "Number" or kind == "List<Number>":
        try:
            number = float(value)
        except ValueError:
            return [*found, f"{value!r} is not a number"]
        if "MinValue" in spec and number < float(spec["MinValue"]):
            found.append(f"{value} is below {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            found.append(f"{value} is above {spec['MaxValue']}")
    return found


@dataclass
class RenderedTree:
    """A root template and its nested stacks, each rendered for the values the root passes."""

    root: Rendered
    children: dict[str, Rendered]
    child_parameters: dict[str, dict[str, Any]]

    def output(self, name: str) -> Any:
        """A root output's value, followed into the nested stack that provides it.

        Values that only a deployment knows stay as written (e.g. `{"Ref": "SomeResource"}` in
        the child that owns the resource).
        """
        return self._resolved(self.root.outputs[name]["Value"])

    def _resolved(self, value: Any) -> Any:
        found = _nested_output(value)
        if found is not None:
            child, output = found
            body = self.children[child].outputs[output]["Value"]
            try:
                return self.children[child].evaluate(body)
            except TemplateError:
                return body
        return self.root.evaluate(value)


def _nested_output(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        target, attribute = value["Fn::GetAtt"]
        if isinstance(attribute, str) and attribute.startswith("Outputs."):
            return target, attribute.removeprefix("Outputs.")
    return None


def render_tree(
    root: Mapping[str, Any],
    children: Mapping[str, Mapping[str, Any]],
    parameters: Mapping[str, Any] | None = None,
) -> RenderedTree:
    """Render `root` and each nested stack in `children` (logical id -> template).

    Each child gets the parameter values the root passes it: evaluated where they depend only
    on parameters or on outputs of children rendered before it (in the order given), and
    `<Logical.Attribute>` placeholders where only a deployment knows them (a function's ARN).
    """
    rendered_root = render(root, parameters)
    rendered: dict[str, Rendered] = {}
    passed: dict[str, dict[str, Any]] = {}
    for name, template in children.items():
        resource = rendered_root.resources[name]
        values = {}
        for key, value in (resource["Properties"].get("Parameters") or {}).items():
            values[key] = _passed_value(rendered_root, rendered, value)
        passed[name] = values
        rendered[name] = render(template, values)
    return RenderedTree(rendered_root, rendered, passed)


def _passed_value(root: Rendered, children: Mapping[str, Rendered], value: Any) -> Any:
    found = _nested_output(value)
    if found is not None:
        child, output = found
        if child in children:
            body = children[child].outputs[output]["Value"]
            try:
                return children[child].evaluate(body)
            except TemplateError:
                return f"<{child}.{output}>"
        return f"<{child}.{output}>"
    try:
        return root.evaluate(value)
    except TemplateError:
        return f"<{_placeholder(value)}>"


def _placeholder(value: Any) -> str:
    """A short, stable text for an unresolved intrinsic (used in placeholders)."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if isinstance(argument, list):
            argument = ".".join(str(item) for item in argument)
        return f"{function.removeprefix('Fn::')} {argument}"
    return str(value)
