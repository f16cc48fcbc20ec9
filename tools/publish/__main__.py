"""Entry point of `python -m tools.publish` (see tools.publish.cli)."""

import sys

from tools.publish.cli import main

if __name__ == "__main__":
    sys.exit(main())
