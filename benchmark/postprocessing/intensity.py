"""Intensity-based validation: drop candidates whose local density contrast is implausible for their type."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmark.coords import XYZ, angstrom_to_voxel
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable
from benchmark.postprocessing import Step, StepData
from benchmark.registry import register_postprocess

MIN_REFERENCES = 5  # a type with fewer train references keeps every candidate: too few to tell plausible
MAD_TO_STD = 1.4826  # a normal distribution's std per median absolute deviation
CHUNK = 64  # candidates gathered at once (bounds the index arrays)


@register_postprocess("intensity-validation")
class IntensityValidation(Step):
    """Contrast = mean density inside the particle's radius minus the mean of a shell out to `shell` x radius, in
    units of the tomogram's background spread (robust: from the median absolute deviation, so that crowded and sparse
    tomograms compare), read at pyramid `level`. Per type, the plausible range is the train
    references' contrasts between the `quantiles`, widened by `margin` x their standard deviation; a list of margins
    is tuned on the val candidates (the best val score, ties to the widest)."""

    def __init__(
        self,
        particles: ParticleTable,
        level: int = 0,
        shell: float = 1.5,
        quantiles: Sequence[float] = (0.02, 0.98),
        margin: float | Sequence[float] = 0.0,
        types: Sequence[str] | None = None,
    ) -> None:
        super().__init__(particles)
        if not (shell > 1 and 0 <= quantiles[0] < quantiles[1] <= 1):
            raise BenchError(
                f"intensity-validation needs shell > 1 and 0 <= quantiles[0] < quantiles[1] <= 1, not shell={shell}, "
                f"quantiles={list(quantiles)}; fix the suite file"
            )
        self.level, self.shell, self.quantiles = level, shell, tuple(quantiles)
        self.margins = sorted(margin if isinstance(margin, Sequence) else [margin], reverse=True)
        self.types = list(types) if types is not None else particles.names
        particles.check_names(self.types, "intensity-validation 'types'")
        self.ranges: dict[str, tuple[float, float]] | None = None
        self.spread: dict[str, float] = {}
        self.margin = self.margins[0]

    def fit(self, data: StepData) -> None:
        """Per type, the train references' contrast quantiles and spread; then the margin with the best val score."""
        self.ranges = {}
        types = np.concatenate([s.picks["particle_type"].to_numpy(str) for s in data.train] or [[]])
        found = np.concatenate([self.contrast(s.picks, s.tomogram, self.types) for s in data.train] or [[]])
        for name in self.types:
            contrasts = found[(types == name) & np.isfinite(found)]  # a reference outside the volume has none
            if len(contrasts) >= MIN_REFERENCES:
                self.ranges[name] = tuple(np.quantile(contrasts, self.quantiles))
                self.spread[name] = float(contrasts.std(ddof=1))
        if len(self.margins) > 1 and data.val:
            runs = [data.val_candidates[data.val_candidates["experiment"] == s.run] for s in data.val]
            contrasts = [
                self.contrast(run, s.tomogram, list(self.ranges)) for run, s in zip(runs, data.val, strict=True)
            ]
            scores = {}
            for margin in self.margins:  # widest first: ties keep the widest; contrasts are computed once
                kept = [run[self._keep(run, c, margin)] for run, c in zip(runs, contrasts, strict=True)]
                scores[margin] = data.val_score(pd.concat(kept, ignore_index=True), self.particles)
            self.margin = max(scores, key=scores.get)

    def fitted(self) -> dict:
        """The ranges, spreads and margin the fit chose, unrounded so that `restore` applies them exactly."""
        ranges = {name: [float(low), float(high)] for name, (low, high) in (self.ranges or {}).items()}
        return {"margin": self.margin, "ranges": ranges, "spread": dict(self.spread)}

    def restore(self, fitted: dict) -> None:
        """Take back the ranges, spreads and margin of `fitted`."""
        self.margin = fitted["margin"]
        self.ranges = {name: (low, high) for name, (low, high) in fitted["ranges"].items()}
        self.spread = dict(fitted["spread"])

    def __call__(self, picks: pd.DataFrame, tomogram: Tomogram) -> pd.DataFrame:
        if self.ranges is None:
            raise BenchError("intensity-validation must be fitted on train runs before it is applied")
        contrast = self.contrast(picks, tomogram, list(self.ranges))
        return picks[self._keep(picks, contrast, self.margin)].reset_index(drop=True)

    def _keep(self, picks: pd.DataFrame, contrast: np.ndarray, margin: float) -> np.ndarray:
        """Which picks have a plausible contrast for their type (a type without a range, or a pick without a
        contrast, is kept)."""
        keep = np.ones(len(picks), dtype=bool)
        types = picks["particle_type"].to_numpy()
        for name, (low, high) in self.ranges.items():
            mine = (types == name) & np.isfinite(contrast)
            widen = margin * self.spread[name]
            keep[mine] = (contrast[mine] >= low - widen) & (contrast[mine] <= high + widen)
        return keep

    def contrast(self, picks: pd.DataFrame, tomogram: Tomogram, types: Sequence[str]) -> np.ndarray:
        """The inside-minus-shell mean density of each pick of `types`, in units of the tomogram's robust spread
        (read at `level`); NaN for other picks."""
        result = np.full(len(picks), np.nan)
        rows = {name: np.flatnonzero(picks["particle_type"].to_numpy() == name) for name in types}
        if not any(len(r) for r in rows.values()):
            return result
        volume = tomogram.read(self.level)
        median = np.median(volume)
        volume = (volume - median) / (MAD_TO_STD * np.median(np.abs(volume - median)) or 1.0)
        centres = np.rint(angstrom_to_voxel(picks[XYZ].to_numpy(float), tomogram.voxel_size, self.level)).astype(int)
        voxel = tomogram.level_voxel_size(self.level)
        for name, mine in rows.items():
            if len(mine):
                result[mine] = _contrast(volume, centres[mine], self.particles[name].radius / voxel, self.shell)
        return result


def _contrast(volume: np.ndarray, centres: np.ndarray, radius: float, shell: float) -> np.ndarray:
    """Mean of the ball of `radius` voxels minus the mean of the shell out to `shell` x radius, around each (z, y, x)
    centre; voxels outside the volume do not count."""
    reach = int(np.ceil(shell * radius))
    grid = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    distance = np.linalg.norm(grid, axis=1)
    inner, outer = distance <= radius, (distance > radius) & (distance <= shell * radius)
    grid = grid[inner | outer]
    inner = inner[inner | outer]
    result = np.empty(len(centres))
    for start in range(0, len(centres), CHUNK):
        points = centres[start : start + CHUNK, None, :] + grid[None]
        valid = np.all((points >= 0) & (points < np.asarray(volume.shape)), axis=2)
        values = volume[tuple(np.clip(points, 0, np.asarray(volume.shape) - 1).transpose(2, 0, 1))]
        means = []
        for part in (valid & inner, valid & ~inner):
            with np.errstate(invalid="ignore", divide="ignore"):  # no voxel inside the volume: NaN
                means.append(np.where(part, values, 0.0).sum(axis=1) / part.sum(axis=1))
        result[start : start + CHUNK] = means[0] - means[1]
    return result
