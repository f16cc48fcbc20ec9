"""`python -m tools.publish --region R --version V [--dry-run] [--bucket B] ...`

Publishes the application to the Serverless Application Repository: writes the publish variants
into a build folder, then packages and publishes each nested application and finally the root,
whose nested Locations point at the children's ApplicationIds at the same version.
`--dry-run` does everything that needs no AWS call: it writes the variants and prints the commands
it would run (with a placeholder account id unless `--account-id` is given).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tomllib
from pathlib import Path

from tools.publish.aws import PUBLIC_DEPLOY_STATEMENT, caller_account, share_publicly
from tools.publish.plan import Tools, packaged_path, publish_steps
from tools.publish.runner import run_steps
from tools.publish.variants import (
    OVERRIDABLE_METADATA,
    Application,
    PublishError,
    Release,
    write_child_variants,
    write_root_variant,
)

PLACEHOLDER_ACCOUNT_ID = "123456789012"  # AWS documentation's example account: clearly not yours
PLACEHOLDER_BUCKET = "your-artifact-bucket"
PLACEHOLDER_MARKER = "/OWNER/"  # in HomePageUrl / SourceCodeUrl until the publisher sets them
BUILD_MARKER = ".tools-publish"
_CONFIG_KEYS = {
    "author": "Author",
    "home_page_url": "HomePageUrl",
    "source_code_url": "SourceCodeUrl",
}
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.publish", description=__doc__)
    parser.add_argument("--region", required=True, help="region to publish in, e.g. us-east-1")
    parser.add_argument("--version", required=True, help="SemanticVersion of this release")
    parser.add_argument("--dry-run", action="store_true", help="make no AWS call; print commands")
    parser.add_argument(
        "--bucket",
        help="artifact bucket in the same region; its policy must let serverlessrepo.amazonaws.com "
        "s3:GetObject (required unless --dry-run)",
    )
    parser.add_argument(
        "--account-id",
        help=f"publishing account (default: the caller's; {PLACEHOLDER_ACCOUNT_ID} in a dry run)",
    )
    parser.add_argument("--public", action="store_true", help="share every application publicly")
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML file with author, home_page_url, source_code_url "
        "(see tools/publish/publisher.example.toml)",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: .)")
    parser.add_argument("--build-dir", type=Path, help="default: build/publish/<version>")
    parser.add_argument("--s3-prefix", help="default: buildkite-sam-fleet/<version>")
    parser.add_argument("--sam", default=_default_sam(), help="SAM CLI executable")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _publish(args)
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _publish(args: argparse.Namespace) -> int:
    _validate(args)
    root = args.root.resolve()
    root_template = root / "template.yaml"
    build_dir = (args.build_dir or root / "build" / "publish" / args.version).resolve()
    account_id = args.account_id or (PLACEHOLDER_ACCOUNT_ID if args.dry_run else _caller(args))
    release = Release(
        region=args.region,
        account_id=account_id,
        version=args.version,
        metadata_overrides=read_config(args.config) if args.config else {},
    )
    _fresh_build_dir(build_dir)
    children = write_child_variants(root_template, build_dir, release)
    # A real run rewrites this from the `sam build` output (a plan step); the dry run shows it
    # written from the source template, by the same function.
    root_app = write_root_variant(root_template, build_dir / root_template.name, children, release)
    applications = [*children, root_app]
    for application in applications:
        packaged_path(build_dir, application.variant).parent.mkdir(parents=True, exist_ok=True)
    tools = Tools(
        sam=args.sam,
        bucket=args.bucket or PLACEHOLDER_BUCKET,
        s3_prefix=args.s3_prefix or f"buildkite-sam-fleet/{args.version}",
    )
    steps = publish_steps(root_template, children, root_app, build_dir, release, tools)
    placeholders = _placeholder_metadata(applications)

    if args.dry_run:
        print(f"Dry run: no AWS call. Publish variants written to {build_dir}:")
        for application in applications:
            print(f"  {application.variant}  ->  {application.application_id}")
        if account_id == PLACEHOLDER_ACCOUNT_ID:
            print(f"  (account id {PLACEHOLDER_ACCOUNT_ID} is a placeholder: pass --account-id)")
        for warning in placeholders:
            print(f"warning: {warning}")
        print("A real run does:")
        for step in steps:
            print(f"  {step.shell()}")
        if args.public:
            for application in applications:
                print(
                    f"  serverlessrepo:PutApplicationPolicy {application.application_id} "
                    f"{PUBLIC_DEPLOY_STATEMENT}"
                )
        return 0

    if placeholders:
        raise PublishError("; ".join(placeholders))
    failed = run_steps(steps)
    if failed is not None:
        print(f"error: step failed: {failed.description}", file=sys.stderr)
        return 1
    if args.public:
        share_publicly(
            _client("serverlessrepo", args.region), [app.application_id for app in applications]
        )
    print("Published:")
    for application in applications:
        print(f"  {application.application_id} {args.version}")
    return 0


def read_config(path: Path) -> dict[str, str]:
    """Metadata overrides from the publisher's TOML file (author, home_page_url, ...)."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    unknown = sorted(set(data) - set(_CONFIG_KEYS))
    if unknown:
        raise PublishError(f"{path}: unknown keys {', '.join(unknown)}")
    return {_CONFIG_KEYS[key]: str(value) for key, value in data.items()}


def _validate(args: argparse.Namespace) -> None:
    if not _REGION.match(args.region):
        raise PublishError(f"region {args.region!r} is not a region name")
    if args.account_id and not _ACCOUNT.match(args.account_id):
        raise PublishError("--account-id must be 12 digits")
    if args.bucket and not _BUCKET.match(args.bucket):
        raise PublishError(f"bucket {args.bucket!r} is not a bucket name")
    if not args.dry_run and not args.bucket:
        raise PublishError(
            "--bucket is required: SAR reads the artifacts from a bucket whose policy lets "
            "serverlessrepo.amazonaws.com s3:GetObject (see README, Deploy)"
        )


def _placeholder_metadata(applications: list[Application]) -> list[str]:
    """One message per placeholder value still in the metadata (e.g. an OWNER URL)."""
    found: dict[tuple[str, str], list[str]] = {}
    for application in applications:
        for key in OVERRIDABLE_METADATA:
            value = str(application.metadata.get(key, ""))
            if PLACEHOLDER_MARKER in value:
                found.setdefault((key, value), []).append(application.name)
    return [
        f"{key} {value} is a placeholder in {', '.join(names)} (set it with --config)"
        for (key, value), names in found.items()
    ]


def _fresh_build_dir(build_dir: Path) -> None:
    """Empty a build folder this tool made before; refuse to touch any other non-empty folder."""
    if build_dir.exists() and any(build_dir.iterdir()):
        if not (build_dir / BUILD_MARKER).is_file():
            raise PublishError(f"{build_dir} is not empty and was not made by tools.publish")
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / BUILD_MARKER).write_text("written by python -m tools.publish\n", encoding="utf-8")


def _default_sam() -> str:
    beside_python = Path(sys.executable).with_name("sam")  # the pinned SAM CLI in .venv
    return str(beside_python) if beside_python.is_file() else (shutil.which("sam") or "sam")


def _client(service: str, region: str):  # pragma: no cover - needs AWS credentials
    import boto3

    return boto3.client(service, region_name=region)


def _caller(args: argparse.Namespace) -> str:  # pragma: no cover - needs AWS credentials
    return caller_account(_client("sts", args.region))
