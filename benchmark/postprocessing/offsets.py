"""Hard-particle enhancement: extra candidates at offsets around the kept candidates of the hard types.

With beta = 4 a missed particle costs 16 times a false positive: one more candidate raises a type's F4 whenever its
chance of finding a particle otherwise missed exceeds F / 17. Offsets go where a centre is least certain (z first,
where the missing wedge elongates particles and slice-merged centres drift), never outside the volume, and not
where a better candidate (or a better offset) already covers the spot.
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
from benchmark.postprocessing import Step, StepData
from benchmark.postprocessing.nms import nms
from benchmark.registry import register_postprocess

AXES = {"x": 0, "y": 1, "z": 2}  # columns of XYZ
PARENTS = ("kept", "all")


@register_postprocess("hard-particle-offsets")
class HardParticleOffsets(Step):
    """Add `count` candidates around each parent of `types` (default: the particle table's hard types; none: the step
    adds nothing): along `directions` in order, + then -, at `distance` x radius, scored `score_factor` x the parent's
    score (lower for negative scores). Parents are the candidates the thresholds tuned on the val candidates would
    keep (`kept`, as the study offset its final picks; a type val cannot tune keeps every candidate, as the final
    thresholds do) or every candidate (`all`). An offset outside the volume, or within `clearance` x radius of another
    candidate of its type (not its parent) or another offset that scores at least as well, is not added (keep
    `clearance` below `distance`, or a parent's own offsets cover one another)."""

    def __init__(
        self,
        particles: ParticleTable,
        types: Sequence[str] | None = None,
        directions: Sequence[str] = ("z", "y", "x"),
        distance: float = 0.8,
        count: int = 2,
        score_factor: float = 0.5,
        clearance: float = 0.5,
        parents: str = "kept",
    ) -> None:
        super().__init__(particles)
        if set(directions) - set(AXES) or not 0 < count <= 2 * len(directions) or parents not in PARENTS:
            raise BenchError(
                f"hard-particle-offsets: directions are among x, y, z, count is 1 to twice their number and parents "
                f"is kept or all, not directions={list(directions)}, count={count}, parents={parents!r}; fix the "
                "suite file"
            )
        types = particles.hard if types is None else types
        particles.check_names(types, "hard-particle-offsets 'types'")
        self.types, self.distance, self.score_factor = list(types), distance, score_factor
        self.clearance, self.parents = clearance, parents
        self.units = np.array([sign * np.eye(3)[AXES[axis]] for axis in directions for sign in (1, -1)])[:count]
        self.floor: dict[str, float] | None = None if parents == "kept" else {name: -np.inf for name in self.types}

    def fit(self, data: StepData) -> None:
        """For `kept` parents: each type's score threshold tuned on the val candidates as they reach the step."""
        if self.parents == "kept":
            tuned = data.tuned(data.val_candidates, self.particles).set_index("particle_type")["threshold"]
            self.floor = {name: float(tuned[name]) for name in self.types}

    def fitted(self) -> dict:
        """The score a parent needs, per type (None: every candidate is a parent)."""
        return {"floor": {name: floor if np.isfinite(floor) else None for name, floor in (self.floor or {}).items()}}

    def restore(self, fitted: dict) -> None:
        """Take back the floors of `fitted` (None: every candidate is a parent)."""
        self.floor = {name: -np.inf if floor is None else float(floor) for name, floor in fitted["floor"].items()}

    def __call__(self, picks: pd.DataFrame, tomogram: Tomogram) -> pd.DataFrame:
        if self.floor is None:
            raise BenchError("hard-particle-offsets with parents: kept must be fitted on the val candidates first")
        if not self.types:
            return picks
        radius = {p.name: p.radius for p in self.particles}
        added = [self._offsets(picks[picks["particle_type"] == name].reset_index(drop=True), radius[name], name,
                               tomogram) for name in self.types]  # fmt: skip
        added = nms(pd.concat(added, ignore_index=True), tomogram, self.particles, distance=self.clearance)
        return pd.concat([picks, added], ignore_index=True)

    def _offsets(self, candidates: pd.DataFrame, radius: float, name: str, tomogram: Tomogram) -> pd.DataFrame:
        """Offsets of one type's parents, except those outside the volume or covered by another candidate."""
        parents = np.flatnonzero(candidates["score"].to_numpy(float) >= self.floor[name])
        origin = np.repeat(parents, len(self.units))
        children = candidates.iloc[origin].reset_index(drop=True)
        points = children[XYZ].to_numpy(float) + np.tile(self.units * self.distance * radius, (len(parents), 1))
        children[XYZ] = points
        scores = children["score"].to_numpy(float)
        children["score"] = scores - (1 - self.score_factor) * np.abs(scores)
        keep = inside_volume(points, tomogram.shape, tomogram.voxel_size)
        if self.clearance > 0 and len(children):
            near = cKDTree(candidates[XYZ].to_numpy(float)).query_ball_point(points, r=self.clearance * radius)
            best, mine = candidates["score"].to_numpy(float), children["score"].to_numpy(float)
            covered = [any(j != p and best[j] >= s for j in n) for n, p, s in zip(near, origin, mine, strict=True)]
            keep &= ~np.asarray(covered, dtype=bool)
        return children[keep]
