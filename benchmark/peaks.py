"""Deprecated home of the peak-finding parts: import them from `architectures.parts.peaks`."""

import warnings

from architectures.parts.peaks import local_maxima, picks_from_voxels

__all__ = ["local_maxima", "picks_from_voxels"]

warnings.warn(
    "benchmark.peaks moved to architectures.parts.peaks; import local_maxima and picks_from_voxels from there "
    "(benchmark.peaks will be removed in a later release)",
    DeprecationWarning,
    stacklevel=2,
)
