"""Hard-particle enhancement: extra candidates at offsets around the candidates of the hard types.

With beta = 4 a missed particle costs 16 times a false positive: one more candidate raises a type's F4 whenever its
chance of finding a particle otherwise missed exceeds F / 17. Offsets go where a centre is least certain (z first,
where the missing wedge elongates particles and slice-merged centres drift), never outside the volume, and not
where a better candidate already covers the spot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from benchmark.coords import XYZ, inside_volume
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable
from benchmark.registry import register_postprocess

HARD_TYPES = ("thyroglobulin", "beta-galactosidase")
AXES = {"x": 0, "y": 1, "z": 2}  # columns of XYZ


@register_postprocess("hard-particle-offsets")
def hard_particle_offsets(
    picks: pd.DataFrame,
    tomogram: Tomogram,
    particles: ParticleTable,
    types: Sequence[str] = HARD_TYPES,
    directions: Sequence[str] = ("z", "y", "x"),
    distance: float = 0.8,
    count: int = 2,
    score_factor: float = 0.5,
    clearance: float = 0.5,
) -> pd.DataFrame:
    """Add `count` candidates around each candidate of `types`: along `directions` in order, + then -, at
    `distance` x radius, scored `score_factor` x the parent's score (lower for negative scores). An offset outside
    the volume, or within `clearance` x radius of another candidate of its type (not its parent) that scores at least
    as well as the offset, is not added."""
    unknown = sorted(set(directions) - set(AXES))
    if unknown or not 0 < count <= 2 * len(directions):
        raise BenchError(
            f"hard-particle-offsets: directions are among x, y, z and count is 1 to twice their number, not "
            f"directions={list(directions)}, count={count}; fix the suite file"
        )
    particles.check_names(types, "hard-particle-offsets 'types'")
    units = np.array([sign * np.eye(3)[AXES[axis]] for axis in directions for sign in (1, -1)])[:count]
    radius = {p.name: p.radius for p in particles}
    added = [
        _offsets(picks[picks["particle_type"] == name].reset_index(drop=True), units, radius[name], tomogram,
                 distance, score_factor, clearance)
        for name in types
    ]  # fmt: skip
    return pd.concat([picks, *added], ignore_index=True)


def _offsets(
    parents: pd.DataFrame,
    units: np.ndarray,
    radius: float,
    tomogram: Tomogram,
    distance: float,
    score_factor: float,
    clearance: float,
) -> pd.DataFrame:
    """Copies of each parent moved by `distance` x `radius` Å along each unit vector and scored lower, except those
    outside the volume or covered by another parent (not their own) within `clearance` x `radius`."""
    origin = np.repeat(np.arange(len(parents)), len(units))
    children = parents.iloc[origin].reset_index(drop=True)
    points = children[XYZ].to_numpy(float) + np.tile(units * distance * radius, (len(parents), 1))
    children[XYZ] = points
    scores = children["score"].to_numpy(float)
    children["score"] = scores - (1 - score_factor) * np.abs(scores)
    keep = inside_volume(points, tomogram.shape, tomogram.voxel_size)
    if clearance > 0 and len(children):
        near = cKDTree(parents[XYZ].to_numpy(float)).query_ball_point(points, r=clearance * radius)
        best = parents["score"].to_numpy(float)
        mine = children["score"].to_numpy(float)
        covered = [any(j != p and best[j] >= s for j in n) for n, p, s in zip(near, origin, mine, strict=True)]
        keep &= ~np.asarray(covered, dtype=bool)
    return children[keep]
