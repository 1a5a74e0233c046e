"""The one place where Å (x, y, z) picks and (z, y, x) voxel indices are converted.

Voxel centres of the full-resolution level sit at index x voxel_size. Pyramid level L averages blocks of
2**L voxels, so its voxel j is centred on full-resolution index j * 2**L + (2**L - 1) / 2; a block cut by the
volume's edge (an odd size: 630 -> 315 -> 158) has that centre outside, so give the full-resolution shape to keep it in.
"""

from __future__ import annotations

import numpy as np

XYZ = ["x", "y", "z"]


def angstrom_to_voxel(xyz: np.ndarray, voxel_size: float, level: int = 0) -> np.ndarray:
    """Å (x, y, z) rows to fractional (z, y, x) voxel indices of a pyramid level (voxel_size: level 0's)."""
    factor = 2**level
    full = np.asarray(xyz, dtype=float).reshape(-1, 3)[:, ::-1] / voxel_size
    return (full - (factor - 1) / 2) / factor


def voxel_to_angstrom(
    zyx: np.ndarray, voxel_size: float, level: int = 0, shape: tuple[int, int, int] | None = None
) -> np.ndarray:
    """(z, y, x) voxel indices of a pyramid level to Å (x, y, z) rows (voxel_size: level 0's).

    With the full-resolution `shape`, positions are clipped to its first and last voxel centres.
    """
    factor = 2**level
    full = np.asarray(zyx, dtype=float).reshape(-1, 3) * factor + (factor - 1) / 2
    if shape is not None:
        full = np.clip(full, 0, np.asarray(shape) - 1)
    return full[:, ::-1] * voxel_size


def inside_volume(xyz: np.ndarray, shape: tuple[int, int, int], voxel_size: float) -> np.ndarray:
    """Boolean mask of the Å (x, y, z) rows that fall inside a full-resolution (z, y, x) volume."""
    zyx = angstrom_to_voxel(xyz, voxel_size)
    upper = np.asarray(shape, dtype=float) - 0.5
    return np.all((zyx >= -0.5) & (zyx < upper), axis=1)
