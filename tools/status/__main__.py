"""``python -m tools.status``: see ``tools.status.cli``."""

import sys

from tools.status.cli import main

sys.exit(main())
