"""The one place where Å (x, y, z) picks and (z, y, x) voxel indices are converted."""

from __future__ import annotations

import numpy as np

XYZ = ["x", "y", "z"]


def angstrom_to_voxel(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """Å (x, y, z) rows to fractional voxel (z, y, x) rows; voxel centres sit at integer indices."""
    return np.asarray(xyz, dtype=float).reshape(-1, 3)[:, ::-1] / voxel_size


def voxel_to_angstrom(zyx: np.ndarray, voxel_size: float) -> np.ndarray:
    """Voxel (z, y, x) rows to Å (x, y, z) rows."""
    return np.asarray(zyx, dtype=float).reshape(-1, 3)[:, ::-1] * voxel_size


def inside_volume(xyz: np.ndarray, shape: tuple[int, int, int], voxel_size: float) -> np.ndarray:
    """Boolean mask of the Å (x, y, z) rows that fall inside a (z, y, x) volume of the given shape."""
    zyx = angstrom_to_voxel(xyz, voxel_size)
    upper = np.asarray(shape, dtype=float) - 0.5
    return np.all((zyx >= -0.5) & (zyx < upper), axis=1)
