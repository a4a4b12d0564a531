"""shiftbench: evaluate machine-learning methods under distribution shift."""

__version__ = "0.1.0"
