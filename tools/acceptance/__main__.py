"""``python -m tools.acceptance``: see ``tools.acceptance.cli``."""

import sys

from tools.acceptance.cli import main

sys.exit(main())
