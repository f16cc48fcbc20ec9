"""Run the Buildkite agent API emulator: ``python -m tools.buildkite_emulator --port 0``.

Prints the agent API URL (``http://127.0.0.1:<port>/v3``) as the only line on stdout, then
serves until Ctrl-C or SIGTERM. The agent token never appears on the command line or in the
output: it is read from ``$BUILDKITE_EMULATOR_TOKEN``, or from ``--token-file`` (created with
a random token, mode 0600, if it does not exist), or else generated into a new private
temporary file whose path is printed on stderr (and removed on exit).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tools.buildkite_emulator.server import (
    DEFAULT_ORGANIZATION_SLUG,
    DEFAULT_POLL_DURATION_S,
    BuildkiteEmulator,
)

TOKEN_ENVIRONMENT_VARIABLE = "BUILDKITE_EMULATOR_TOKEN"  # noqa: S105 (a variable name)


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    token, generated_file = _token(arguments.token_file)
    stop = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop.set())
    try:
        with BuildkiteEmulator(
            token,
            port=arguments.port,
            poll_duration_s=arguments.poll_duration,
            organization_slug=arguments.organization,
            cluster_name=arguments.cluster,
        ) as emulator:
            print(emulator.url, flush=True)
            print(f"control API: {emulator.control_url}", file=sys.stderr, flush=True)
            if generated_file is not None:
                print(f"agent token file: {generated_file}", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        if generated_file is not None:
            generated_file.unlink(missing_ok=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.buildkite_emulator",
        description="Serve an emulated Buildkite agent API on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default 0: a free one)")
    parser.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding the agent token (created if missing; ${TOKEN_ENVIRONMENT_VARIABLE} "
        "takes precedence)",
    )
    parser.add_argument(
        "--poll-duration",
        type=int,
        default=DEFAULT_POLL_DURATION_S,
        help="seconds in the Buildkite-Agent-Metrics-Poll-Duration header (default 10)",
    )
    parser.add_argument("--organization", default=DEFAULT_ORGANIZATION_SLUG)
    parser.add_argument("--cluster", default=None, help="cluster name (default: none)")
    return parser


def _token(token_file: Path | None) -> tuple[str, Path | None]:
    """The token, and the temporary file this run generated it into (if it did)."""
    from_environment = os.environ.get(TOKEN_ENVIRONMENT_VARIABLE, "").strip()
    if from_environment:
        return from_environment, None
    if token_file is not None:
        if token_file.exists():
            return token_file.read_text(encoding="utf-8").strip(), None
        token = secrets.token_hex(20)
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        return token, None
    token = secrets.token_hex(20)
    descriptor, name = tempfile.mkstemp(prefix="buildkite-emulator-token-")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, Path(name)


if __name__ == "__main__":
    sys.exit(main())
