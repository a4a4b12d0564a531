"""``shiftbench.datasets.corruptions``: the documented name of the corruption API, an alias.

The corruptions are a core transform package, :mod:`shiftbench.corruptions`, that the scenarios
and the ``<base>-c`` datasets both use; this module re-exports its public names, so that
``shiftbench.datasets.corruptions.corrupt(images, name, severity, preset="imagenet", seed=0)``
keeps working. It defines no dataset.
"""

from shiftbench.corruptions import (BENCHMARK_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS, MIN_SIZE, PRESETS,
                                    SEVERITIES, code_fingerprint, corrupt, pad_to_min_size)

__all__ = ["BENCHMARK_CORRUPTIONS", "CORRUPTIONS", "EXTRA_CORRUPTIONS", "MIN_SIZE", "PRESETS", "SEVERITIES",
           "code_fingerprint", "corrupt", "pad_to_min_size"]
