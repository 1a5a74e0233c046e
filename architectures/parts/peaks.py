"""Peak picking shared by plug-ins: local maxima of a score volume, as Å picks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from scipy.spatial import cKDTree
from torch.nn import functional

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


def pooled_maxima(
    volume: torch.Tensor, size: int, threshold: float, max_peaks: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`local_maxima` on the volume's device: a voxel equal to the maximum of its `size`-wide cube (an odd `size`,
    centred; separable sliding maxima, the cube cut at the edges) and above `threshold`; (z, y, x) indices and values,
    strongest first."""
    pooled = volume
    for axis in range(3):
        pooled = sliding_maximum(pooled, axis, size)
    peaks = (volume == pooled) & (volume > threshold)
    zyx, values = peaks.nonzero(), volume[peaks]  # both in row-major order
    order = torch.argsort(values, descending=True, stable=True)[:max_peaks]
    return zyx[order].cpu().numpy(), values[order].float().cpu().numpy()


def break_ties(zyx: np.ndarray, values: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """The peaks (strongest first) less any within `half` voxels on every axis of one kept before it.

    Maxima of `half`-wide cubes clash only where they tie (a plateau, or equal values a cube apart): the first of
    each tie, in the given order, is kept.
    """
    if len(zyx) < 2:
        return zyx, values
    tree = cKDTree(zyx)
    kept = np.ones(len(zyx), dtype=bool)
    for index, near in enumerate(tree.query_ball_point(zyx, r=half, p=np.inf)):
        if kept[index]:
            kept[[n for n in near if n > index]] = False
    return zyx[kept], values[kept]


def sliding_maximum(volume: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    """The maximum over the centred `size`-wide window (odd `size`, cut at the edges) along one axis, by doubling
    widths (van Herk / Gil-Werman): about log2(size) passes, where a window view reduced by amax costs `size`."""
    half = size // 2
    line = functional.pad(volume.movedim(axis, -1), (half, half), value=float("-inf"))
    best, width = line, 1  # best[..., i]: the maximum of line[..., i : i + width]
    while 2 * width <= size:
        best = torch.maximum(best[..., :-width], best[..., width:])
        width *= 2
    if width < size:  # two overlapping windows of `width` cover one of `size`
        best = torch.maximum(best[..., : best.shape[-1] - (size - width)], best[..., size - width :])
    return best[..., : volume.shape[axis]].movedim(-1, axis)


def refined_centres(volume: torch.Tensor, zyx: np.ndarray, half: int) -> np.ndarray:
    """Sub-voxel (z, y, x) centres of peaks: the value-weighted mean position over each peak's cube of half-width
    `half` (cut at the volume's edges), which averages out the noise of a single maximum voxel."""
    if not len(zyx):
        return np.empty((0, 3))
    reach = torch.arange(-half, half + 1, device=volume.device)
    offsets = torch.stack(torch.meshgrid(reach, reach, reach, indexing="ij"), dim=-1).reshape(-1, 3)
    points = torch.as_tensor(zyx, device=volume.device)[:, None, :] + offsets  # (peaks, cube, 3)
    upper = torch.tensor(volume.shape, device=volume.device) - 1
    inside = ((points >= 0) & (points <= upper)).all(dim=-1)
    weights = volume[tuple(points.clamp(min=0).minimum(upper).unbind(-1))].float().clamp(min=0) * inside
    centres = (weights[..., None] * points).sum(dim=1) / weights.sum(dim=1, keepdim=True)
    return centres.cpu().numpy()


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
