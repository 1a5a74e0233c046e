"""Peak picking shared by plug-ins: local maxima of a score volume, as Å picks."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from benchmark.coords import XYZ, voxel_to_angstrom


def local_maxima(
    volume: np.ndarray, size: int, threshold: float, max_peaks: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(z, y, x) voxel indices and values of local maxima above `threshold`, strongest first."""
    peaks = (ndimage.maximum_filter(volume, size=size, mode="nearest") == volume) & (volume > threshold)
    zyx = np.argwhere(peaks)
    values = volume[tuple(zyx.T)]
    order = np.argsort(-values, kind="stable")[:max_peaks]
    return zyx[order], values[order]


def picks_from_voxels(
    zyx: np.ndarray,
    scores: np.ndarray,
    particle_type: str,
    voxel_size: float,
    level: int = 0,
    shape: tuple[int, int, int] | None = None,
) -> pd.DataFrame:
    """A picks table (particle_type, x, y, z in Å, score) from voxel positions of a pyramid level.

    Give the full-resolution `shape` when `level` > 0: it keeps picks in blocks cut by the volume's edge inside.
    """
    picks = pd.DataFrame(voxel_to_angstrom(zyx, voxel_size, level, shape), columns=XYZ)
    picks.insert(0, "particle_type", particle_type)
    picks["score"] = np.asarray(scores, dtype=float)
    return picks
