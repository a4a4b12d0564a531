"""Shared fixtures: one model/forward-pass cache for the whole test session (shared by xdist workers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
TEST_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "test-cache"
os.environ.setdefault("SHIFTBENCH_CACHE_DIR", str(TEST_CACHE))


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The cache shared by tests: trained test models and forward passes are paid once per machine."""
    path = Path(os.environ["SHIFTBENCH_CACHE_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def digits_small():
    """A small digits dataset (1000 train images) for fast end-to-end tests."""
    from shiftbench import datasets

    return datasets.load("digits", n_train=1000, n_val=300, n_test=300)
