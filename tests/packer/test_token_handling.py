"""Static checks on how the boot script handles the agent token.

boot.bats shows the token reaches the agent config and nowhere else the fakes can see. These
checks cover what fakes cannot: the token variable is touched only by the SSM read, two checks
and one printf (a shell builtin, so the token is never an argument of another process), and no
instance script turns on xtrace, which would print it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOT = ROOT / "packer" / "conf" / "bin" / "bk-install-elastic-stack.sh"
INSTANCE_SCRIPTS = sorted((ROOT / "packer" / "conf").rglob("*"))

ALLOWED_TOKEN_LINES = (
    re.compile(r'^if \[\[ -z "\$token" \|\| "\$token" == None \]\]; then$'),
    re.compile(r'^if \[\[ "\$token" == \*\[.*\]\* \]\]; then$'),
    re.compile(r"""^printf 'token="%s"\\n' "\$token"$"""),
)


def token_lines(text: str) -> list[str]:
    """Lines (outside comments) that expand the token variable."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#") and re.search(r"\$\{?token\b", stripped):
            lines.append(stripped)
    return lines


def disallowed(lines: list[str]) -> list[str]:
    return [line for line in lines if not any(p.search(line) for p in ALLOWED_TOKEN_LINES)]


def test_the_token_is_only_read_checked_and_printed_by_a_builtin():
    text = BOOT.read_text(encoding="utf-8")
    lines = token_lines(text)
    assert len(lines) == 3, lines
    assert disallowed(lines) == []
    assignments = re.findall(r"^\s*token=(.*)$", text, re.M)
    assert assignments == [
        '"$(bk_aws ssm get-parameter --name "$BUILDKITE_AGENT_TOKEN_PATH" --with-decryption \\',
        '""',
    ]


def test_the_check_catches_the_token_on_a_command_line():
    leaky = [
        'echo "$token" | tee /etc/buildkite-agent/buildkite-agent.cfg',
        'sed -i "s/xxx/${token}/" "$BK_AGENT_CFG"',
        'bk_log "token: $token"',
    ]
    assert disallowed(token_lines("\n".join(leaky))) == leaky


def test_the_token_is_cleared_after_the_config_is_written():
    text = BOOT.read_text(encoding="utf-8")
    assert text.index("printf 'token=") < text.index('  token=""\n')


@pytest.mark.parametrize(
    "script",
    [path for path in INSTANCE_SCRIPTS if path.is_file() and path.parent.name in {"bin", "hooks"}],
    ids=lambda path: path.name,
)
def test_no_instance_script_traces_commands(script: Path):
    text = script.read_text(encoding="utf-8")
    assert not re.search(r"^\s*set\s+-\w*x|set\s+-o\s+xtrace|bash\s+-\w*x", text, re.M)
