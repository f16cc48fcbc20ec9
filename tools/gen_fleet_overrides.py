"""Generate the instance-type sections of nested/fleet.yaml.

CloudFormation has no loop that can build a list inside a resource property (`Fn::ForEach`
needs the AWS::LanguageExtensions transform and only emits keyed objects), so the mixed
instances overrides for up to 25 `InstanceTypes` are written out: one condition per optional
position and one `Fn::If` override per position. This tool writes them between marker comments
in the template, and a template test checks the committed file equals its output.

    python -m tools.gen_fleet_overrides           # rewrite nested/fleet.yaml in place
    python -m tools.gen_fleet_overrides --check   # exit 1 when the file is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "nested" / "fleet.yaml"
MAX_INSTANCE_TYPES = 25
# Padding the list with empty items lets Fn::Select read any position of a shorter list.
# (Fn::Join, not Fn::Sub: the long-standing way to build a string inside a condition.)
PADDED_TYPES = (
    '!Split [",", !Join ["", [!Ref InstanceTypes, "' + "," * (MAX_INSTANCE_TYPES - 1) + '"]]]'
)
BEGIN = "# BEGIN GENERATED {section} (python -m tools.gen_fleet_overrides)"
END = "# END GENERATED {section}"


def condition_name(position: int) -> str:
    """Name of the condition that holds when InstanceTypes has a `position`-th item (1-based)."""
    return f"HasInstanceType{position}"


def conditions_section(indent: str) -> list[str]:
    return [
        f"{indent}{condition_name(position)}: "
        f'!Not [!Equals [!Select [{position - 1}, {PADDED_TYPES}], ""]]'
        for position in range(2, MAX_INSTANCE_TYPES + 1)
    ]


def overrides_section(indent: str) -> list[str]:
    lines = [f"{indent}- InstanceType: !Select [0, {PADDED_TYPES}]"]
    lines += [
        f"{indent}- !If [{condition_name(position)}, "
        f"{{InstanceType: !Select [{position - 1}, {PADDED_TYPES}]}}, !Ref AWS::NoValue]"
        for position in range(2, MAX_INSTANCE_TYPES + 1)
    ]
    return lines


SECTIONS = {
    "instance type conditions": conditions_section,
    "instance type overrides": overrides_section,
}


def regenerate(text: str) -> str:
    """`text` with every generated section rewritten; ValueError when a marker is missing."""
    for section, build in SECTIONS.items():
        begin, end = BEGIN.format(section=section), END.format(section=section)
        pattern = re.compile(
            rf"^(?P<indent>[ ]*){re.escape(begin)}\n.*?^(?P=indent){re.escape(end)}$",
            re.MULTILINE | re.DOTALL,
        )
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"markers for the {section} section not found")
        indent = match.group("indent")
        body = "\n".join([f"{indent}{begin}", *build(indent), f"{indent}{end}"])
        text = text[: match.start()] + body + text[match.end() :]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is stale")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    current = args.template.read_text(encoding="utf-8")
    generated = regenerate(current)
    if args.check:
        if generated != current:
            print(f"{args.template} is out of date: run python -m tools.gen_fleet_overrides")
            return 1
        return 0
    if generated != current:
        args.template.write_text(generated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
