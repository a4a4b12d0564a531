"""Progress of a run: a tqdm bar on a terminal; off a terminal (CI logs, cluster jobs), one line every
``every`` cells or ``interval`` seconds with done/total, elapsed time and ETA."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm


def duration(seconds: float) -> str:
    """``95`` -> ``1 min 35 s``; ``4000`` -> ``1 h 6 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class LogProgress:
    """The part of tqdm's interface the runner uses, writing plain log lines."""

    def __init__(self, total: int, stream: TextIO | None = None, every: int = 100, interval: float = 30.0):
        self.total, self.n, self.every, self.interval = total, 0, every, interval
        self.stream = stream or sys.stderr
        self.started = self.last = time.monotonic()
        self.postfix = ""
        self._n_logged = 0

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.n != self._n_logged:
            self.log()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n - self._n_logged >= self.every or now - self.last >= self.interval or self.n == self.total:
            self.log()

    def line(self) -> str:
        """``cells 120/1470 (8%), 35 s elapsed, ETA 6 min 34 s (tent on ...)``."""
        elapsed = time.monotonic() - self.started
        text = f"cells {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%), {duration(elapsed)} elapsed"
        if 0 < self.n < self.total:
            text += f", ETA {duration(elapsed / self.n * (self.total - self.n))}"
        return text + (f" ({self.postfix})" if self.postfix else "")

    def log(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.last, self._n_logged = time.monotonic(), self.n


def progress_bar(total: int, enabled: bool = True) -> tqdm | LogProgress:
    """A tqdm bar on a terminal, :class:`LogProgress` lines elsewhere, nothing when not ``enabled``."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, desc="cells", unit="cell")
    return LogProgress(total)
