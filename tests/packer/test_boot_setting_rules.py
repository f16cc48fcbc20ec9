"""One source of truth for the boot settings: no value the templates accept is refused at boot.

A value the boot script refuses fails every instance the group launches, over and over, while the
stack itself deploys fine (with MinSize 0 no creation signal catches it). So every rule of the
boot script's ``check_settings`` must be enforced by the parameter that feeds the setting.

Nothing is copied from either side: the settings' sources are read from the templates (the fleet's
user data ``export NAME='${Parameter}'`` and the root's ``Fleet`` parameters), the patterns and
bounds from the parameters, and the rules are run in bash by sourcing the boot script and calling
its ``check_settings``. The candidate values come from both sides: strings generated from each
parameter's pattern (hypothesis), and probes aimed at the script's rules (every ASCII character
inside a valid value, numbers around every bound, malformed numbers).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.cfn_template import load_template, render
from tools.testing.fleet_stack import FLEET_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
BOOT_SCRIPT = ROOT / "packer" / "conf" / "bin" / "bk-install-elastic-stack.sh"
ROOT_TEMPLATE = ROOT / "template.yaml"
FLEET_TEMPLATE = ROOT / "nested" / "fleet.yaml"

# What the root stack hands the fleet from its other nested stacks (not user parameters).
FLEET_WIRING = FLEET_PARAMETERS
EXPORT = re.compile(r"^export ([A-Z][A-Z0-9_]*)='\$\{([A-Za-z0-9:]+)\}'$", re.M)
RENDERED_EXPORT = re.compile(r"^export ([A-Z][A-Z0-9_]*)='([^']*)'$", re.M)

# Runs check_settings once per NUL-separated NAME, VALUE pair on stdin, each in a subshell with
# errexit on (as at boot), and prints "ok" or "refused" per pair.
DRIVER = r"""
. "$1"
set +e
while IFS= read -r -d '' name && IFS= read -r -d '' value; do
  (
    set -e
    export "$name=$value"
    check_settings
  ) >/dev/null 2>&1
  if (($? == 0)); then printf 'ok\n'; else printf 'refused\n'; fi
done
"""


@dataclass(frozen=True)
class Source:
    """A boot setting fed by a user parameter: the root's and the fleet's declarations of it."""

    setting: str
    root_name: str | None
    root: Mapping[str, Any] | None
    fleet_name: str
    fleet: Mapping[str, Any]


@cache
def templates() -> tuple[dict[str, Any], dict[str, Any]]:
    return load_template(ROOT_TEMPLATE), load_template(FLEET_TEMPLATE)


def user_data_source(fleet: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The fleet's user data Fn::Sub text and its variable map."""
    data = fleet["Resources"]["AgentLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    sub = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    return (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})


def refs_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["Ref"]} if isinstance(value.get("Ref"), str) else set()
        return found.union(*(refs_in(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(refs_in(item) for item in value))
    return set()


@cache
def sources() -> tuple[Source, ...]:
    """Every boot setting whose value passes through from a fleet parameter (directly or as one
    branch of an Fn::If), with the root parameter that feeds that fleet parameter, if any."""
    root, fleet = templates()
    text, variables = user_data_source(fleet)
    root_parameters = root["Parameters"]
    fleet_parameters = fleet["Parameters"]
    fleet_inputs = root["Resources"]["Fleet"]["Properties"]["Parameters"]
    found = []
    for setting, name in EXPORT.findall(text):
        if name in fleet_parameters:
            fleet_names = {name}
        elif name in variables:
            fleet_names = refs_in(variables[name]) & set(fleet_parameters)
        else:
            continue  # a pseudo parameter (AWS::Region, AWS::StackName)
        for fleet_name in sorted(fleet_names):
            fed_by = fleet_inputs.get(fleet_name)
            root_name = fed_by.get("Ref") if isinstance(fed_by, dict) else None
            if root_name not in root_parameters:
                root_name = None  # an output of another nested stack, or a mapping
            found.append(
                Source(
                    setting,
                    root_name,
                    root_parameters.get(root_name) if root_name else None,
                    fleet_name,
                    fleet_parameters[fleet_name],
                )
            )
    return tuple(found)


NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parameter_accepts(spec: Mapping[str, Any], value: str) -> bool:
    """CloudFormation's parameter validation: type, pattern, length, bounds, allowed values."""
    if spec.get("Type", "String") == "Number":
        if not NUMBER.fullmatch(value):
            return False
        number = float(value)
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return False
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return False
    else:
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            return False
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            return False
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            return False
    allowed = spec.get("AllowedValues")
    return allowed is None or value in {str(item) for item in allowed}


def deployable(source: Source, value: str) -> bool:
    """The value passes every parameter on its way to the instance (root, then fleet)."""
    if source.root is not None and not parameter_accepts(source.root, value):
        return False
    return parameter_accepts(source.fleet, value)


@cache
def baseline_environment() -> dict[str, str]:
    """The settings the default fleet's user data exports (check_settings starts from them)."""
    _, fleet = templates()
    stack = render(fleet, FLEET_WIRING)
    data = stack.resources["AgentLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    return dict(RENDERED_EXPORT.findall(stack.evaluate(data["UserData"]["Fn::Base64"])))


def boot_accepts(setting: str, values: Iterable[str]) -> dict[str, bool]:
    """Run the boot script's check_settings on each value of one setting (the rest at baseline)."""
    values = list(dict.fromkeys(values))
    if not values:
        return {}
    stdin = b"".join(f"{setting}\0{value}\0".encode() for value in values)
    result = subprocess.run(
        ["bash", "-c", DRIVER, "check-settings", str(BOOT_SCRIPT)],
        input=stdin,
        capture_output=True,
        env={"PATH": os.environ["PATH"], **baseline_environment()},
        check=True,
        timeout=120,
    )
    verdicts = result.stdout.decode().split()
    assert len(verdicts) == len(values), result.stderr.decode()
    return {value: verdict == "ok" for value, verdict in zip(values, verdicts, strict=True)}


def refused_but_deployable(source: Source, candidates: Iterable[str]) -> list[str]:
    """Candidates both templates accept that the boot script refuses (must be none)."""
    deployable_values = [value for value in candidates if deployable(source, value)]
    verdicts = boot_accepts(source.setting, deployable_values)
    return [value for value, accepted in verdicts.items() if not accepted]


def sample_value(source: Source) -> str:
    """A value the templates accept for this source: its default, else a simple one."""
    for spec in (source.root, source.fleet):
        if spec is not None and spec.get("Default") not in (None, ""):
            value = str(spec["Default"])
            if deployable(source, value):
                return value
    for value in ("x", "1", "https://example.com/x", "s3://bucket/key"):
        if deployable(source, value):
            return value
    return ""


def rule_probes(source: Source) -> list[str]:
    """Values aimed at the script's rules: every ASCII character (but NUL) inside and after a
    valid value, whole numbers around every bound, and malformed numbers."""
    base = sample_value(source)
    middle = len(base) // 2
    probes = [""]
    for code in range(1, 128):  # NUL cannot be in an environment variable
        char = chr(code)
        probes += [base[:middle] + char + base[middle:], base + char]
    if base.isdigit():
        bounds = (0, 1, 2, 29, 30, 31, 59, 60, 99, 100, 101, 3600, 7199, 7200, 7201, 10**7)
        probes += [str(number + offset) for number in bounds for offset in (-1, 0, 1)]
        probes += ["1.5", "30.0", "600.5", "1e3", "01", "+1", " 1", "1 ", "0x10", "-0"]
    return probes


def pattern_of(source: Source) -> str | None:
    spec = source.root if source.root is not None else source.fleet
    return spec.get("AllowedPattern")


SOURCES = sources()
PATTERNED = [source for source in SOURCES if pattern_of(source)]


def source_id(source: Source) -> str:
    return f"{source.setting}<-{source.root_name or source.fleet_name}"


# --- the wiring the test relies on -------------------------------------------------------------
def test_the_user_facing_settings_are_all_found():
    found = {(source.setting, source.root_name) for source in SOURCES}
    assert {
        ("BUILDKITE_AGENT_TAGS", "BuildkiteAgentTags"),
        ("BUILDKITE_AGENT_ENDPOINT", "AgentEndpoint"),
        ("BUILDKITE_QUEUE", "BuildkiteQueue"),
        ("BUILDKITE_AGENTS_PER_INSTANCE", "AgentsPerInstance"),
        ("BUILDKITE_SCALE_IN_IDLE_PERIOD", "ScaleInIdlePeriod"),
        ("BUILDKITE_TERMINATION_GRACE_PERIOD", "InstanceTerminationGracePeriod"),
        ("BUILDKITE_BOOTSTRAP_SCRIPT_URL", "BootstrapScriptUrl"),
        ("BUILDKITE_ENV_FILE_URL", "AgentEnvFileUrl"),
        ("BUILDKITE_PIPELINE_SIGNING_KMS_ACCESS", "PipelineSigningKMSAccess"),
    } <= found
    # Fed by another nested stack's output, checked against the fleet's own pattern.
    assert ("BUILDKITE_PIPELINE_SIGNING_KMS_KEY", None) in found


def test_the_default_fleet_boots():
    baseline = baseline_environment()
    assert "BUILDKITE_AGENT_TOKEN_PATH" in baseline
    assert boot_accepts("BUILDKITE_QUEUE", [baseline["BUILDKITE_QUEUE"]]) == {
        baseline["BUILDKITE_QUEUE"]: True
    }


def test_the_driver_reports_refusals():
    verdicts = boot_accepts("BUILDKITE_AGENT_TAGS", ["team=a", 'team="a"'])
    assert verdicts == {"team=a": True, 'team="a"': False}


# --- the property ------------------------------------------------------------------------------
@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_no_deployable_value_is_refused_at_boot_rule_probes(source: Source):
    refused = refused_but_deployable(source, rule_probes(source))
    assert not refused, (
        f"{source_id(source)}: the templates accept values the boot script refuses: {refused[:10]}"
    )


@pytest.mark.parametrize("source", PATTERNED, ids=source_id)
def test_no_deployable_value_is_refused_at_boot_pattern_samples(source: Source):
    # NUL cannot be in an environment variable (nor, in practice, in a parameter value).
    values = st.from_regex(pattern_of(source), fullmatch=True).map(lambda v: v.replace("\0", ""))

    @settings(
        max_examples=4,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.lists(values, min_size=25, max_size=25))
    def check(values: list[str]) -> None:
        refused = refused_but_deployable(source, values)
        assert not refused, f"{source_id(source)}: refused at boot: {refused[:10]}"

    check()


def test_a_tag_with_a_quote_is_refused_by_the_templates_and_by_the_boot_script():
    (tags,) = [s for s in SOURCES if s.setting == "BUILDKITE_AGENT_TAGS"]
    for value in ('team="platform"', "team=a\\b", "team=a\nb"):
        assert not parameter_accepts(tags.root, value)
        assert not parameter_accepts(tags.fleet, value)
        assert boot_accepts(tags.setting, [value]) == {value: False}
    assert deployable(tags, "team=platform,size=large")


def test_an_idle_period_of_zero_is_refused_everywhere():
    (idle,) = [s for s in SOURCES if s.setting == "BUILDKITE_SCALE_IN_IDLE_PERIOD"]
    assert not parameter_accepts(idle.root, "0")
    assert not parameter_accepts(idle.fleet, "0")
    assert boot_accepts(idle.setting, ["0", "1"]) == {"0": False, "1": True}


def test_the_check_catches_a_loosened_pattern():
    """The drift the issue found: tags allowed anything but a single quote."""
    (tags,) = [s for s in SOURCES if s.setting == "BUILDKITE_AGENT_TAGS"]
    loose = Source(
        tags.setting,
        tags.root_name,
        {**tags.root, "AllowedPattern": "^[^']*$"},
        tags.fleet_name,
        {**tags.fleet, "AllowedPattern": "^[^']*$"},
    )
    refused = refused_but_deployable(loose, rule_probes(loose))
    assert '"' + sample_value(loose) in refused


def test_the_check_catches_a_number_the_script_cannot_use():
    """CloudFormation's Number type takes 1.5; no instance can run one and a half agents."""
    (agents,) = [s for s in SOURCES if s.setting == "BUILDKITE_AGENTS_PER_INSTANCE"]
    as_number = Source(
        agents.setting,
        agents.root_name,
        {"Type": "Number", "MinValue": 1, "MaxValue": 100},
        agents.fleet_name,
        agents.fleet,
    )
    assert "1.5" in refused_but_deployable(as_number, rule_probes(as_number))
