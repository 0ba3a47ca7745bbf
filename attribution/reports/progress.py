"""Progress on stderr for long runs (a single rewritten line, throttled)."""

from __future__ import annotations

import os
import time
from typing import TextIO


class Progress:
    """Shows file n/m, % of bytes read, lines and rate; silent when disabled."""

    def __init__(self, stream: TextIO, enabled: bool, interval: float = 0.5) -> None:
        self.stream = stream
        self.enabled = enabled
        self.interval = interval
        self._last = 0.0
        self._t0 = time.monotonic()
        self._label = ""
        self._size = 0
        self._width = 0

    def start_file(self, index: int, count: int, path: str) -> None:
        self._label = f"[{index}/{count}] {os.path.basename(path)}"
        try:
            self._size = os.path.getsize(path) if path != "-" else 0
        except OSError:
            self._size = 0
        self._t0 = time.monotonic()
        self._last = 0.0

    def update(self, lines: int, position: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        rate = lines / max(now - self._t0, 1e-9)
        pct = f" {100 * position / self._size:5.1f}%" if self._size else ""
        self._write(f"{self._label}{pct} {lines:,} lines {rate / 1000:,.0f}k lines/s")

    def stage(self, text: str) -> None:
        if self.enabled:
            self._write(text)

    def _write(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def done(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
