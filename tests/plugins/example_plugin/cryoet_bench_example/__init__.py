"""Example plug-in: dark local minima of a Gaussian-smoothed tomogram, one scale per particle type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pandas as pd
from scipy import ndimage

from architectures.parts.peaks import local_maxima, picks_from_voxels
from benchmark.interface import Architecture
from benchmark.registry import register


@register("example-smooth-minima")
class SmoothMinima(Architecture):
    """Scores each voxel by how dark it is after smoothing at a fraction of each particle's radius."""

    kind = "classical"
    #: what `bench tune` searches (settings a step's cost does not depend on); a suite's `tune:` may replace it
    search_space: ClassVar[dict] = {"smoothing": {"low": 0.2, "high": 0.8}}

    def fit(self, train, val, budget, tracker) -> None:
        """Nothing to learn; the one epoch records the fixed smoothing fraction."""
        for _ in tracker.epochs():
            tracker.log(smoothing=self.config.get("smoothing", 0.4))
            break

    def predict(self, tomogram) -> pd.DataFrame:
        """Local minima of the smoothed volume at level 1, scored by their darkness."""
        volume = tomogram.read(level=1)
        picks = []
        for particle in self.particles:
            sigma = self.config.get("smoothing", 0.4) * particle.radius / tomogram.level_voxel_size(1)
            darkness = -ndimage.gaussian_filter(volume, sigma)
            zyx, values = local_maxima(darkness, size=3, threshold=float(darkness.mean()), max_peaks=50)
            picks.append(picks_from_voxels(zyx, values, particle.name, tomogram.voxel_size, 1, tomogram.shape))
        return pd.concat(picks, ignore_index=True)

    def save(self, directory: Path) -> None:
        """The config is the whole model."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.config))

    def load(self, directory: Path) -> None:
        """Read the config back."""
        self.config = json.loads((directory / "config.json").read_text())
