"""``python -m tools.demo``: see ``tools.demo.cli``."""

import sys

from tools.demo.cli import main

sys.exit(main())
