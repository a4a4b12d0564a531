"""Progress of a run: a tqdm bar on a terminal; off a terminal (CI logs, cluster jobs), one line every
``every`` cells or ``interval`` seconds with done/total, elapsed time and ETA.

A run with worker processes (``jobs=N``) keeps one display: each worker reports through a
:class:`RelayProgress` and writes its output through a :class:`RelayStream`, and the run's own process
applies both to its one bar or log (:func:`write_above`), so the count and the ETA cover the whole run."""

from __future__ import annotations

import sys
import time
from multiprocessing.connection import Connection
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


class RelayProgress:
    """The part of tqdm's interface the runner uses, in a worker process: sends each update to the run's
    process over ``conn`` (``("progress", n)``, ``("postfix", text)``), which updates the run's one bar."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.conn.send(("postfix", text))

    def update(self, n: int = 1) -> None:
        if n:
            self.conn.send(("progress", n))


class RelayStream:
    """A worker's ``sys.stdout`` / ``sys.stderr``: sends whole lines to the run's process
    (``("output", name, text)``), which writes them above its bar. Not a terminal, so that progress bars
    inside a cell (a model's training bar) stay off instead of drawing over the run's bar."""

    def __init__(self, conn: Connection, name: str):
        self.conn, self.name, self._pending = conn, name, ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self._send(lines + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._send(self._pending)
            self._pending = ""

    def _send(self, text: str) -> None:
        try:
            self.conn.send(("output", self.name, text))
        except OSError:
            pass  # the run's process is gone; the worker stops at its next progress update

    def isatty(self) -> bool:
        return False


def write_above(bar: tqdm | LogProgress, text: str, stream: TextIO) -> None:
    """Write ``text`` (a worker's output) to ``stream`` without breaking the run's bar."""
    if isinstance(bar, tqdm) and not bar.disable:
        tqdm.write(text, file=stream, end="")
    else:
        stream.write(text)
        stream.flush()


def progress_bar(total: int, enabled: bool = True) -> tqdm | LogProgress:
    """A tqdm bar on a terminal, :class:`LogProgress` lines elsewhere, nothing when not ``enabled``."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, desc="cells", unit="cell")
    return LogProgress(total)
