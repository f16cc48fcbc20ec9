"""A drain has an end: the agent unit's stop timeout, the lifecycle handler and the hook agree.

The lifecycle handler cancels a job at the grace period and gives the agent CANCEL_WAIT_SECONDS;
systemd's TimeoutStopSec on the agent unit is a backstop that must come after both for every
grace period the template accepts (and must not be 0, systemd's "wait forever"). The grace period
the instance enforces is the one the lifecycle hook times out with.
"""

from __future__ import annotations

import re
from pathlib import Path

from tools.cfn_template import load_template, render
from tools.testing.fleet_stack import FLEET_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
AGENT_UNIT = ROOT / "packer" / "conf" / "systemd" / "buildkite-agent.service"
HANDLER = ROOT / "packer" / "conf" / "bin" / "bk-lifecycle-handler"
WIRING = FLEET_PARAMETERS
TIME_UNITS = {"h": 3600, "min": 60, "s": 1}


def systemd_seconds(span: str) -> int:
    """A systemd time span such as 2h10min or 90s (plain numbers are seconds)."""
    if span.isdigit():
        return int(span)
    parts = re.findall(r"(\d+)(h|min|s)", span)
    assert "".join(number + unit for number, unit in parts) == span, f"unparsed span {span!r}"
    return sum(int(number) * TIME_UNITS[unit] for number, unit in parts)


def unit_setting(name: str) -> str:
    (value,) = re.findall(rf"^{name}=(.*)$", AGENT_UNIT.read_text(encoding="utf-8"), re.M)
    return value


def handler_constant(name: str) -> int:
    (value,) = re.findall(rf"^{name}=(\d+)$", HANDLER.read_text(encoding="utf-8"), re.M)
    return int(value)


def longest_grace_period() -> int:
    spec = load_template(ROOT / "template.yaml")["Parameters"]["InstanceTerminationGracePeriod"]
    accepted = [n for n in range(20_000) if re.fullmatch(spec["AllowedPattern"], str(n))]
    assert accepted[0] == 30, "the hook's smallest heartbeat timeout is 30 s"
    return accepted[-1]


def test_systemd_seconds():
    assert systemd_seconds("2h10min") == 7800
    assert systemd_seconds("90") == 90


def test_the_agent_stop_never_waits_forever():
    timeout = systemd_seconds(unit_setting("TimeoutStopSec"))
    assert timeout > 0
    assert timeout > longest_grace_period() + handler_constant("CANCEL_WAIT_SECONDS")


def test_the_cancel_wait_fits_in_the_smallest_hook_timeout():
    # The heartbeat sent with the cancel keeps the hook alive while the agent cancels.
    assert handler_constant("CANCEL_WAIT_SECONDS") < 30
    assert handler_constant("CANCEL_WAIT_SECONDS") > handler_constant("SPOT_QUIT_LEAD_SECONDS")


def test_the_instance_enforces_the_hooks_own_timeout():
    fleet = load_template(ROOT / "nested" / "fleet.yaml")
    stack = render(fleet, {**WIRING, "InstanceTerminationGracePeriod": "45"})
    group = stack.resources["AgentAutoScaleGroup"]["Properties"]
    (hook,) = group["LifecycleHookSpecificationList"]
    assert str(stack.evaluate(hook["HeartbeatTimeout"])) == "45"
    data = stack.resources["AgentLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    user_data = stack.evaluate(data["UserData"]["Fn::Base64"])
    assert "export BUILDKITE_TERMINATION_GRACE_PERIOD='45'" in user_data.splitlines()
