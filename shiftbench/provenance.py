"""Where a result came from: git commit, package versions, host."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from functools import lru_cache

PACKAGES = ("shiftbench", "torch", "torchvision", "numpy", "scikit-learn", "pandas", "wilds", "timm")


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the working directory's git checkout, or "unknown"; "+dirty" if tracked files other than
    the published ``results/`` have changes (publishing writes there, so it must not mark the next records)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)results"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def provenance() -> dict[str, object]:
    """Commit, package versions and platform, recorded with every result."""
    return {"git_commit": git_commit(), "packages": package_versions(), "python": platform.python_version(),
            "platform": platform.platform()}
