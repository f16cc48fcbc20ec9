"""A plain-text progress bar on stderr for long runs (no dependency).

Nothing is shown for runs that finish within ``delay_s`` of wall time. On a terminal the bar
redraws in place; otherwise a line is written every ``step`` (10 %) of progress.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class ProgressBar:
    """Call with a fraction in [0, 1]; ``close()`` ends the line."""

    def __init__(
        self, label: str, stream: TextIO | None = None, delay_s: float = 1.0, step: float = 0.1
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay_s = delay_s
        self.step = step
        self._started = time.monotonic()
        self._last_drawn = -1.0
        self._shown = False
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if time.monotonic() - self._started < self.delay_s and not self._shown:
            return
        if self._tty:
            if fraction - self._last_drawn < 0.005 and fraction < 1.0:
                return
            filled = int(WIDTH * fraction)
            bar = "#" * filled + "." * (WIDTH - filled)
            self.stream.write(f"\r{self.label} [{bar}] {fraction * 100:5.1f}%")
        else:
            if fraction - self._last_drawn < self.step and fraction < 1.0:
                return
            self.stream.write(f"{self.label}: {fraction * 100:.0f}%\n")
        self._last_drawn = fraction
        self._shown = True
        self.stream.flush()

    def close(self) -> None:
        if self._shown and self._tty:
            self.stream.write("\n")
            self.stream.flush()
