"""Parsing of dataset options that arrive as text (``shiftbench data info NAME -o key=value``)."""

from __future__ import annotations

from typing import Any


def as_flag(value: Any) -> bool:
    """A boolean option given as a bool or as text (``true``/``false``, ``1``/``0``, ``yes``/``no``)."""
    return str(value).strip().lower() in ("true", "1", "yes", "y")
