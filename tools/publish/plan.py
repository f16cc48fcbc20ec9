"""The steps that publish the application, in the order SAR needs them.

1. `sam build` the project's root template (its functions and layer; nothing is published yet,
   so a broken build stops the release before anything reaches SAR);
2. write the root's publish variant from the build output;
3. package (upload LICENSE and README) and publish every child;
4. package and publish the root, whose nested Locations name the children just published.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.publish.variants import Application, Release, write_root_variant


@dataclass(frozen=True)
class Step:
    """One command to run (argv) or one thing to do in process (action), with its purpose."""

    description: str
    argv: tuple[str, ...] = ()
    action: Callable[[], object] | None = None

    def shell(self) -> str:
        return shlex.join(self.argv) if self.argv else f"(in process) {self.description}"


@dataclass(frozen=True)
class Tools:
    """How to reach AWS: the SAM CLI executable and the artifact bucket."""

    sam: str
    bucket: str
    s3_prefix: str


def packaged_path(build_dir: Path, variant: Path) -> Path:
    return build_dir / "packaged" / variant.relative_to(build_dir)


def sam_build_dir(build_dir: Path) -> Path:
    return build_dir / ".aws-sam" / "build"


def publish_steps(
    root_template: Path,
    children: list[Application],
    root: Application,
    build_dir: Path,
    release: Release,
    tools: Tools,
) -> list[Step]:
    """Every step of a real run, for `children` and the `root` variant written beside them."""
    built = sam_build_dir(build_dir)
    steps = [
        Step(
            "build the root application (functions and layer)",
            (tools.sam, "build", "--template-file", str(root_template), "--build-dir", str(built)),
        ),
        Step(
            f"write {root.variant} from the build output",
            action=_write_root(built / "template.yaml", root.variant, children, release),
        ),
    ]
    for application in [*children, root]:
        packaged = packaged_path(build_dir, application.variant)
        steps += [
            Step(
                f"package {application.name}",
                (
                    tools.sam,
                    "package",
                    "--template-file",
                    str(application.variant),
                    "--s3-bucket",
                    tools.bucket,
                    "--s3-prefix",
                    tools.s3_prefix,
                    "--output-template-file",
                    str(packaged),
                    "--region",
                    release.region,
                ),
            ),
            Step(
                f"publish {application.name} {release.version} as {application.application_id}",
                (
                    tools.sam,
                    "publish",
                    "--template",
                    str(packaged),
                    "--semantic-version",
                    release.version,
                    "--region",
                    release.region,
                ),
            ),
        ]
    return steps


def _write_root(
    built: Path, variant: Path, children: list[Application], release: Release
) -> Callable[[], Application]:
    def write() -> Application:
        return write_root_variant(built, variant, children, release)

    return write
