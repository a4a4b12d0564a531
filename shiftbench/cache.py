"""Content-addressed on-disk cache and atomic file writes.

Keys are hashes of a canonical JSON of what determines the value (data fingerprint, model
fingerprint, config, code version). ``SHIFTBENCH_CACHE_DIR`` moves the cache (default
``~/.cache/shiftbench``).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import secrets
import time
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from shiftbench.errors import ShiftbenchError


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


class FileWriteError(ShiftbenchError, OSError):
    """A file could not be written; the message names it (``errno`` is the underlying error's)."""

    def __init__(self, path: Path, cause: OSError):
        super().__init__(f"cannot write {path}: {cause.strerror or cause} (a read-only or full cache? point "
                         "SHIFTBENCH_CACHE_DIR or cache_dir=... at a writable folder)")
        self.errno, self.filename = cause.errno, str(path)

    def __str__(self) -> str:
        return self.args[0]


class CacheWarning(UserWarning):
    """A cached file was unreadable and is being rebuilt."""


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """A new, exclusively created file next to ``name``, with the mode ``open(path, "w")`` would give
    (0o666 less the umask: unlike ``mkstemp``'s 0o600, other users sharing the folder can read it)."""
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The file gets the permissions of a plain ``open(path, "w")`` under the current umask. A failure
    (read-only folder, full disk) raises :class:`FileWriteError` naming ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path.parent, path.name)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, FileWriteError):
            raise FileWriteError(path, exc) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode())


def error_line(exc: BaseException) -> str:
    """``"Type: first line of the message"`` (just the type when the message is empty)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def set_aside(path: Path, error: BaseException | str) -> None:
    """Warn that the cached file ``path`` is unreadable (naming it and why: an exception or a reason) and
    move it to ``<path>.corrupt`` for inspection, so that it is rebuilt; if it cannot be moved, it stays."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
        where = f"moved to {aside}"
    except OSError:
        where = "left in place"
    reason = error if isinstance(error, str) else error_line(error)
    warnings.warn(f"unreadable cache file {path} ({reason}); {where}, rebuilding it",
                  CacheWarning, stacklevel=3)


class ArrayCache:
    """Named numpy arrays stored as ``<root>/<namespace>/<key>.npz``."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0
        #: seconds spent computing missing entries, by namespace (how a run's time divides: corrupting, ...)
        self.compute_seconds: dict[str, float] = {}

    def path(self, namespace: str, key: str) -> Path:
        return self.root / namespace / f"{key}.npz"

    def get_or_compute(self, namespace: str, key_parts: Any, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Load the arrays stored under ``key_parts`` or compute, store and return them. An entry that
        cannot be read (truncated, corrupt, not an ``.npz``) is set aside with a warning and recomputed."""
        path = self.path(namespace, stable_hash(key_parts))
        if path.exists():
            try:
                with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                self.hits += 1
                return arrays
            except Exception as exc:  # noqa: BLE001 - whatever makes an entry unreadable, it is rebuilt
                set_aside(path, exc)
        began = time.perf_counter()
        arrays = compute()
        self.compute_seconds[namespace] = self.compute_seconds.get(namespace, 0.0) + time.perf_counter() - began
        self.misses += 1
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return arrays
