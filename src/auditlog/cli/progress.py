"""A progress bar on standard error for long runs (``auditlog verify``).

It shows only on a terminal (or when forced), and only once a run has lasted ``DELAY``
seconds, so short runs and scripts see nothing. It redraws at most ``RATE`` times a second
and erases itself when done.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

DELAY = 1.0
RATE = 10
WIDTH = 30


class Progress:
    """Counts work done out of ``total`` units (``total`` may grow as more is found)."""

    def __init__(
        self,
        total: int,
        label: str = "verifying",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        delay: float = DELAY,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.done = 0
        self.label = label
        self._started = time.monotonic()
        self._delay = delay
        self._drawn_at = 0.0
        self._shown = False

    def advance(self, n: int, label: str | None = None) -> None:
        """Record ``n`` more units done (under a new ``label``, if given)."""
        self.done += n
        if label is not None:
            self.label = label
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._started < self._delay or now - self._drawn_at < 1 / RATE:
            return
        self._drawn_at = now
        self._draw(now)

    def _draw(self, now: float) -> None:
        total = max(self.total, self.done, 1)
        filled = WIDTH * self.done // total
        bar = "#" * filled + "-" * (WIDTH - filled)
        line = (
            f"\r{self.label} [{bar}] {100 * self.done // total:3d}% "
            f"{self.done:,}/{total:,} events {now - self._started:.0f} s"
        )
        self.stream.write(line)
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Erase the bar, if it was drawn."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
