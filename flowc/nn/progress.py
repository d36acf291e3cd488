"""A one-line progress bar, drawn only when the stream is a terminal."""
from __future__ import annotations

import sys
import time


class Progress:
    """`with Progress(total, "epoch 1/5") as bar: bar.update(1, loss=0.3)`; silent unless
    `enabled` (default: the stream is a terminal). Redraws at most ten times a second."""

    def __init__(self, total, desc="", stream=None, enabled=None, width=30, columns=100):
        self.total, self.desc, self.width, self.columns = max(int(total), 1), desc, width, columns
        self.stream = stream if stream is not None else sys.stdout
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.n, self.info, self.start, self._drawn = 0, {}, time.perf_counter(), 0.0

    def update(self, n=1, **info):
        """Advance by n and show `info` (name=value) after the bar."""
        self.n += n
        self.info.update(info)
        now = time.perf_counter()
        if self.enabled and (now - self._drawn > 0.1 or self.n >= self.total):
            self._drawn = now
            self._draw(now)

    def _draw(self, now):
        done = min(self.n / self.total, 1.0)
        filled = int(round(done * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        extra = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in self.info.items())
        line = f"{self.desc} [{bar}] {self.n}/{self.total} {now - self.start:.1f}s {extra}"
        self.stream.write("\r" + line[:self.columns - 1].ljust(self.columns - 1))
        self.stream.flush()

    def close(self):
        """Erase the bar, so the next line starts clean."""
        if self.enabled and self._drawn:
            self.stream.write("\r" + " " * (self.columns - 1) + "\r")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
