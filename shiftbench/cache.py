"""Content-addressed on-disk cache and atomic file writes.

Keys are hashes of a canonical JSON of what determines the value (data fingerprint, model
fingerprint, config, code version). ``SHIFTBENCH_CACHE_DIR`` moves the cache (default
``~/.cache/shiftbench``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np


def default_cache_dir() -> Path:
    return Path(os.environ.get("SHIFTBENCH_CACHE_DIR", Path.home() / ".cache" / "shiftbench"))


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable object, independent of dict order."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@lru_cache(maxsize=None)
def code_version(obj: Any) -> str:
    """Hash of the source file that defines ``obj``: a changed plugin invalidates its cached cells."""
    try:
        source = inspect.getsource(inspect.getmodule(obj))
    except (OSError, TypeError):
        source = getattr(obj, "__qualname__", repr(obj))
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class ArrayCache:
    """Named numpy arrays stored as ``<root>/<namespace>/<key>.npz``."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def path(self, namespace: str, key: str) -> Path:
        return self.root / namespace / f"{key}.npz"

    def get_or_compute(self, namespace: str, key_parts: Any, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Load the arrays stored under ``key_parts`` or compute, store and return them."""
        path = self.path(namespace, stable_hash(key_parts))
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                self.hits += 1
                return arrays
            except (OSError, ValueError, EOFError):
                path.unlink(missing_ok=True)  # a corrupt entry is recomputed
        arrays = compute()
        self.misses += 1
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return arrays
