"""python -m tools.migrate: a reference stack's parameters, as this stack's parameters.

Exit status: 0 converted; 1 the input or the result is not valid; 2 some parameters need a
decision (the report says which) and --accept-changes was not given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.cfn_template import constraint_violations, load_template
from tools.migrate import formats
from tools.migrate.convert import DEFAULT_TOKEN_PARAMETER, Migration, convert
from tools.migrate.sources import SourceError, StackParameters, from_file, from_stack

ROOT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.migrate",
        description=(
            "Convert the parameters of a Buildkite Elastic CI Stack for AWS stack into this "
            "stack's. Writes them to standard output and a report to standard error."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "file",
        nargs="?",
        type=Path,
        help="describe-stacks JSON, or a [{ParameterKey, ParameterValue}] list",
    )
    source.add_argument("--stack", help="read the parameters of this deployed stack")
    parser.add_argument("--region", help="region of --stack (default: the AWS CLI's)")
    parser.add_argument("--format", choices=["overrides", "samconfig", "json"], default="overrides")
    parser.add_argument(
        "--config-env", default="default", help="samconfig.toml environment (--format samconfig)"
    )
    parser.add_argument(
        "--accept-changes",
        action="store_true",
        help="write the result even where the report says a decision is needed",
    )
    parser.add_argument(
        "--token-parameter",
        default=DEFAULT_TOKEN_PARAMETER,
        help=f"SSM parameter to hold the agent token (default {DEFAULT_TOKEN_PARAMETER})",
    )
    parser.add_argument(
        "--ssh-ingress-cidr", default="", help="keep KeyName, with SSH open to this CIDR only"
    )
    parser.add_argument("--template", type=Path, default=ROOT_TEMPLATE, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def render(migration: Migration, arguments: argparse.Namespace) -> str:
    if arguments.format == "samconfig":
        return formats.samconfig(migration.parameters, arguments.config_env)
    if arguments.format == "json":
        return formats.cloudformation(migration.parameters)
    return formats.overrides(migration.parameters) + "\n"


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        stack: StackParameters = (
            from_stack(arguments.stack, arguments.region)
            if arguments.stack
            else from_file(arguments.file)
        )
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    template = load_template(arguments.template)
    migration = convert(
        stack.values,
        template,
        token_parameter=arguments.token_parameter,
        ssh_ingress_cidr=arguments.ssh_ingress_cidr,
        stack_name=stack.stack_name,
    )
    for note in migration.notes:
        print(note.line(), file=sys.stderr)
    if migration.needs_decision and not arguments.accept_changes:
        print(
            "stopped: the parameters marked 'decide' change what the stack does; rerun with "
            "--accept-changes to take the changes the report describes",
            file=sys.stderr,
        )
        return 2
    problems = constraint_violations(template, migration.parameters)
    if problems:
        for problem in problems:
            print(f"invalid  {problem}", file=sys.stderr)
        print(
            "error: the result does not pass the template's parameter constraints", file=sys.stderr
        )
        return 1
    try:
        sys.stdout.write(render(migration, arguments))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
