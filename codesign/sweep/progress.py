"""Progress of a sweep: design points done, ETA and the current best.

A tqdm bar on a terminal, plain lines otherwise. Created by the CLI (libraries do not print);
the sweep only calls it.
"""
from __future__ import annotations

import math
import sys
import time


class Progress:
    """Design points done, ETA and the current best: a tqdm bar on a terminal, plain lines
    (every `every_s` seconds and at the end) otherwise. Created by the CLI (libraries do not
    print); `run_sweep` only calls it."""

    def __init__(self, stream=None, every_s: float = 10.0, force_plain: bool = False):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) and not force_plain
        self.every_s = every_s
        self._bar = None
        self._t0 = time.monotonic()
        self._last = 0.0
        self.total = 0
        self.done = 0
        self.best = ""

    def start(self, total: int, initial: int = 0, desc: str = "points") -> None:
        self.total, self.done = total, initial
        self._t0 = time.monotonic()
        self._initial = initial
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="pt",
                             file=self.stream, dynamic_ncols=True)
        else:
            self.stream.write(f"{desc}: {initial}/{total} already stored\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def advance(self, n: int = 1, best: str = "") -> None:
        self.done += n
        self.best = best or self.best
        if self._bar is not None:
            self._bar.update(n)
            if self.best:
                self._bar.set_postfix_str("best " + self.best, refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            rate = (self.done - self._initial) / max(now - self._t0, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else math.nan
            # points arrive in bursts after each accuracy measurement: no ETA from the first few
            enough = (self.done - self._initial >= max(3, 0.05 * (self.total - self._initial))
                      or self.done >= self.total)
            eta = f"{left:.0f}s" if math.isfinite(left) and enough else "?"
            self.stream.write(f"{self.done}/{self.total} points, ETA {eta}"
                              f"{', best ' + self.best if self.best else ''}\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
