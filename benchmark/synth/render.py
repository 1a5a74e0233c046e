"""Render a scene into a density volume: each body evaluated on its own rotated box of voxels."""

from __future__ import annotations

import math

import numpy as np

from benchmark.synth.scene import Placed
from benchmark.synth.shapes import Body


def render(scene: list[Placed], shape: tuple[int, int, int], voxel_size: float) -> np.ndarray:
    """Sum of the scene's body densities on a (z, y, x) float32 grid; bodies may be cut by the edges."""
    volume = np.zeros(shape, dtype=np.float32)
    for placed in scene:
        box, block = render_body(placed, voxel_size)
        inside = tuple(
            slice(max(lo, 0), min(lo + n, size)) for lo, n, size in zip(box, block.shape, shape, strict=True)
        )
        cut = tuple(slice(s.start - lo, s.stop - lo) for s, lo in zip(inside, box, strict=True))
        volume[inside] += block[cut]
    return volume


def render_body(placed: Placed, voxel_size: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """A body's density on the whole voxel box around its centre: (box origin (z, y, x), block)."""
    half = _half_box(placed.body, voxel_size)
    origin = tuple(int(c) - half for c in np.floor(placed.centre))
    # Å offsets of the box's voxels from the centre, per volume axis z, y, x, shaped to broadcast
    z, y, x = (
        ((np.arange(2 * half + 2) + lo - c) * voxel_size).astype(np.float32).reshape(shape)
        for lo, c, shape in zip(origin, placed.centre, ((-1, 1, 1), (1, -1, 1), (1, 1, -1)), strict=True)
    )
    # body frame = rotation^T (volume offset): body axis j is column j of the rotation dotted with (x, y, z)
    columns = placed.rotation.T.astype(np.float32)
    local = [a * x + b * y + c * z for a, b, c in columns]
    return origin, placed.body.density(*local, voxel_size)


def centred(body: Body, voxel_size: float) -> np.ndarray:
    """A body's density, unrotated, with its origin exactly at the middle of an even-sided box."""
    centre = np.full(3, _half_box(body, voxel_size) + 0.5)
    return render_body(Placed("reference", body, centre, np.eye(3)), voxel_size)[1]


def _half_box(body: Body, voxel_size: float) -> int:
    """Half the side, in voxels, of a box that holds all of a body's density whatever its rotation."""
    return math.ceil(body.radius / voxel_size) + 1
