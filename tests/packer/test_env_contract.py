"""The instance scripts read no setting from their environment beyond packer/boot-settings.txt.

The fleet template's user data exports exactly the names in boot-settings.txt (the template
tests check that side). Here: every variable an instance script (packer/conf/bin, the agent
hooks) reads and does not set itself is in that list, a shell variable, or a BK_TEST_* test hook;
and every listed setting is read by some script. The check is a small static analysis of the
shell text, tested below on scripts that break the rule.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = ROOT / "packer" / "boot-settings.txt"
BIN_DIR = ROOT / "packer" / "conf" / "bin"
HOOKS_DIR = ROOT / "packer" / "conf" / "buildkite-agent" / "hooks"
LIBRARY = BIN_DIR / "bk-lib.sh"
TEST_HOOK_PREFIX = "BK_TEST_"

# Variables bash itself provides, and PATH/HOME, which every process has.
SHELL_VARIABLES = frozenset(
    {
        "BASH_COMMAND",
        "BASH_REMATCH",
        "BASH_SOURCE",
        "EUID",
        "FUNCNAME",
        "HOME",
        "IFS",
        "LINENO",
        "OPTARG",
        "OPTIND",
        "PATH",
        "PIPESTATUS",
        "PWD",
        "RANDOM",
        "SECONDS",
        "UID",
    }
)

# Job variables the agent sets for every job, or the job's own environment provides (the
# secrets bucket's env file); hooks may read them. They are not instance settings.
JOB_VARIABLES = frozenset(
    {
        "BUILDKITE_ARTIFACT_UPLOAD_DESTINATION",
        "BUILDKITE_BUILD_CHECKOUT_PATH",
        "BUILDKITE_BUILD_ID",
        "BUILDKITE_BUILD_PATH",
        "BUILDKITE_JOB_ID",
        "BUILDKITE_PIPELINE_ID",
        "BUILDKITE_PLUGIN_ECR_CREDENTIAL_HELPER",
        "DOCKER_LOGIN_SERVER",
        "DOCKER_LOGIN_USER",
    }
)

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
EXPANSION = re.compile(r"\$\{?(" + NAME + ")")
# Names that look like settings even when not expanded with $ (indirect ${!name}, arithmetic).
SETTING_WORD = re.compile(r"\b((?:BUILDKITE|AWS|BK)_[A-Z0-9_]+)\b")
# NAME=WORD, optionally after local/export/declare/readonly; WORD is the value up to the next
# unquoted blank or operator, so several assignments on one line are each seen.
ASSIGNMENT = re.compile(
    r"(?:^|(?<=[\s;&|(]))(?:(?:local|export|declare|readonly)(?:\s+-\w+)*\s+)?("
    + NAME
    + r")(?:\[[^\]]*\])?\+?=((?:\"[^\"]*\"|\$\([^)]*\)|[^\s;&|])*)"
)
DECLARATION = re.compile(r"\b(?:local|declare|readonly|export)(?:\s+-\w+)*\s+([^;&|\n]+)")
LOOP_OR_READ = re.compile(
    r"\b(?:for\s+("
    + NAME
    + r")\s+in|read(?:\s+-\w+)*\s+((?:"
    + NAME
    + r"\s*)+)|printf\s+-v\s+("
    + NAME
    + "))"
)


def settings() -> list[str]:
    """The names in boot-settings.txt, in order."""
    names = []
    for line in SETTINGS_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            names.append(line.split()[0])
    return names


def code_only(text: str) -> str:
    """Shell text without comments and single-quoted strings (neither expands variables)."""
    out: list[str] = []
    index, in_double = 0, False
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index : index + 2])
            index += 2
            continue
        if in_double:
            in_double = char != '"'
            out.append(char)
        elif char == '"':
            in_double = True
            out.append(char)
        elif char == "'":
            closing = text.find("'", index + 1)
            index = len(text) if closing == -1 else closing
            out.append(" ")
        elif char == "#" and (index == 0 or text[index - 1] in " \t\n;|&("):
            closing = text.find("\n", index)
            index = (len(text) if closing == -1 else closing) - 1
        else:
            out.append(char)
        index += 1
    return "".join(out)


def names_set(code: str) -> set[str]:
    """Names the code gives a value without reading the environment's value first."""
    assigned: set[str] = set()
    for match in ASSIGNMENT.finditer(code):
        name, value = match.groups()
        if not re.search(r"\$\{?" + name + r"\b", value):
            assigned.add(name)
    for match in DECLARATION.finditer(code):
        for word in match.group(1).split():
            candidate = word.split("=", 1)[0]
            if re.fullmatch(NAME, candidate) and "=" not in word:
                assigned.add(candidate)
    for match in LOOP_OR_READ.finditer(code):
        for group in match.groups():
            if group:
                assigned.update(group.split())
    return assigned


def names_read(code: str) -> set[str]:
    """Names the code expands, or mentions as a setting-like word."""
    return set(EXPANSION.findall(code)) | set(SETTING_WORD.findall(code))


def environment_reads(text: str) -> set[str]:
    """What a script reads from its environment: read, not set by itself, not a shell variable."""
    code = code_only(text)
    return {
        name
        for name in names_read(code) - names_set(code) - SHELL_VARIABLES
        if not name.startswith(TEST_HOOK_PREFIX)
    }


def script_text(path: Path) -> str:
    """A script's text together with the library it sources."""
    text = path.read_text(encoding="utf-8")
    if "bk-lib.sh" in text and path != LIBRARY:
        text += "\n" + LIBRARY.read_text(encoding="utf-8")
    return text


INSTANCE_SCRIPTS = sorted(BIN_DIR.iterdir()) + sorted(HOOKS_DIR.iterdir())
HOOKS = frozenset(HOOKS_DIR.iterdir())


def test_the_settings_file_lists_names():
    names = settings()
    assert len(names) == len(set(names)) >= 20
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names)
    assert "BUILDKITE_AGENT_TOKEN_PATH" in names
    assert not any(name.startswith(TEST_HOOK_PREFIX) for name in names)


@pytest.mark.parametrize("script", INSTANCE_SCRIPTS, ids=lambda path: path.name)
def test_instance_script_reads_only_agreed_settings(script: Path):
    allowed = set(settings()) | (JOB_VARIABLES if script in HOOKS else set())
    unlisted = environment_reads(script_text(script)) - allowed
    assert not unlisted, f"{script.name} reads settings not in boot-settings.txt: {unlisted}"


def test_every_agreed_setting_is_read_by_an_instance_script():
    read = set().union(*(environment_reads(script_text(path)) for path in INSTANCE_SCRIPTS))
    unused = set(settings()) - read
    assert not unused, f"settings exported by the fleet but read by no script: {unused}"


def boot_time_scripts() -> list[Path]:
    """The boot script and the instance scripts it runs (they inherit the user data's settings)."""
    boot = BIN_DIR / "bk-install-elastic-stack.sh"
    text = script_text(boot)
    called = [
        path
        for path in sorted(BIN_DIR.iterdir())
        if path != boot and re.search(rf"^\s*{re.escape(path.name)}\b", text, re.M)
    ]
    return [boot, *called]


def test_the_boot_script_reads_every_setting():
    """Every setting is read at boot, by the boot script or an instance script it runs."""
    read = set().union(*(environment_reads(script_text(path)) for path in boot_time_scripts()))
    assert set(settings()) <= read


def test_boot_time_scripts_are_the_ones_the_boot_script_runs():
    names = [path.name for path in boot_time_scripts()]
    assert names[0] == "bk-install-elastic-stack.sh"
    assert {"bk-configure-docker", "bk-git-mirrors", "bk-mount-instance-storage"} <= set(names)
    assert "bk-terminate-instance" not in names


# The analysis itself, on scripts that break the rule.


def test_analysis_finds_a_plain_read():
    assert environment_reads('echo "$NOT_A_SETTING and ${ALSO_NOT:-x}"\n') == {
        "NOT_A_SETTING",
        "ALSO_NOT",
    }


def test_analysis_treats_a_self_default_as_a_read():
    assert environment_reads('LEVEL="${LEVEL:-info}"\necho "$LEVEL"\n') == {"LEVEL"}


def test_analysis_finds_indirect_reads_of_setting_names():
    text = 'for name in BUILDKITE_SECRET_SAUCE AWS_PROFILE; do echo "${!name}"; done\n'
    assert environment_reads(text) == {"BUILDKITE_SECRET_SAUCE", "AWS_PROFILE"}


def test_analysis_ignores_comments_single_quotes_locals_and_test_hooks():
    text = (
        "# $IN_A_COMMENT\n"
        "echo '$IN_SINGLE_QUOTES' # $TRAILING_COMMENT\n"
        'count=0; count=$((count + 1)); local first second="${count}"\n'
        'read -r used free < <(df); for item in a b; do echo "$item $used $free $first"; done\n'
        'root="${BK_TEST_ROOT:-}"; echo "$root $second ${#count} $HOME"\n'
        'echo "it'
        "'"
        's $count"\n'
    )
    assert environment_reads(text) == set()


def test_analysis_flags_an_unlisted_read_in_a_real_script(tmp_path: Path):
    boot = (BIN_DIR / "bk-install-elastic-stack.sh").read_text(encoding="utf-8")
    broken = boot.replace('bk_log "starting"', 'bk_log "starting ${BUILDKITE_DEBUG_LEVEL:-0}"')
    assert broken != boot
    broken += "\n" + LIBRARY.read_text(encoding="utf-8")
    assert environment_reads(broken) - set(settings()) == {"BUILDKITE_DEBUG_LEVEL"}
