"""Work claiming: workers sharing a record store compute each cell once.

Before computing a cell, a worker creates ``<store>/claims/<key>.claim`` exclusively (``O_EXCL``, so
exactly one of several racing workers succeeds) holding its host, pid and start time, and removes
it once the cell's record is written. A worker that finds a cell claimed leaves it to its owner and
comes back for it after its own work: by then the owner has usually written the record. A claim
whose owner is gone (same host and the pid is dead, or older than ``stale_after`` seconds on
another host) is stale and may be taken over, so a killed worker never blocks a cell for good.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

#: a claim from another host is presumed abandoned after this many seconds
STALE_AFTER = 6 * 3600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class Claims:
    """Exclusive claims on cell keys under ``root``."""

    def __init__(self, root: Path | str, stale_after: float = STALE_AFTER):
        self.dir = Path(root) / "claims"
        self.stale_after = stale_after
        self.owner = {"host": socket.gethostname(), "pid": os.getpid()}

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.claim"

    def acquire(self, key: str) -> bool:
        """Claim ``key``; False when a live worker holds it (a stale claim is taken over)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path(key), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if not self.is_stale(key):
                    return False
                self.path(key).unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({**self.owner, "started": time.time()}, f)
            return True
        return False

    def release(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def holder(self, key: str) -> dict | None:
        """Who holds ``key`` (host, pid, started), or None when nobody does."""
        try:
            return json.loads(self.path(key).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # being written right now, or garbage: judge by the file's age
            try:
                return {"host": None, "pid": None, "started": self.path(key).stat().st_mtime}
            except FileNotFoundError:
                return None

    def is_stale(self, key: str) -> bool:
        """True when the claim on ``key`` is gone or its owner is."""
        held = self.holder(key)
        if held is None:
            return True
        if held.get("host") == self.owner["host"] and isinstance(held.get("pid"), int):
            return held["pid"] != self.owner["pid"] and not _pid_alive(held["pid"])
        return time.time() - float(held.get("started") or 0.0) > self.stale_after
