"""The classical floor: per-particle blob and shell detection with the filter fitted on the train runs.

No learning beyond a grid search: for each particle type, every filter of a small bank is applied to the train
tomograms in Fourier space, its local maxima are scored against the ground truth with the competition's F4 at
the best threshold, and the filter with the best train F4 is kept. The bank holds scale-normalised
Laplacian-of-Gaussian blob detectors (scales around radius / sqrt(3)) for solid particles and zero-mean hollow
shell templates (a shell minus a surrounding ball of equal integral) for hollow ones such as apo-ferritin and
virus-like particles, which a blob detector centred on their bright lumen misses. The contrast polarity (dark or
bright particles) is fitted too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import fft

from architectures.parts.peaks import local_maxima, picks_from_voxels
from benchmark.coords import XYZ, angstrom_to_voxel
from benchmark.data import Tomogram
from benchmark.interface import Architecture, Budget, Sample, Tracker
from benchmark.registry import register
from metrics.thresholds import tune_thresholds

DEFAULTS = {
    "level": 1,  # pyramid level the filters run on (1 = half resolution)
    "sigma_factors": [0.5, 0.7, 0.9, 1.1, 1.3],  # LoG scales, x the particle radius / sqrt(3)
    "shell_sizes": [0.6, 0.8, 1.0],  # shell template outer radius, x the particle radius
    "shell_hollow": 0.6,  # shell inner radius / outer radius
    "surround": 1.5,  # radius of a shell's zero-mean surround, x its outer radius
    "smoothing": 0.5,  # Gaussian sigma in working-level voxels applied with every shell template
    "peak_spacing": 0.5,  # local-maximum footprint, x the particle radius
    "max_candidates": 400,  # per particle type and tomogram
}


@register("matched-filter")
class MatchedFilterDetector(Architecture):
    """Per particle type, the LoG scale or shell template whose maxima give the best train F4."""

    kind = "classical"
    defaults = DEFAULTS

    def __init__(self, config, particles, device, seed):
        super().__init__(config, particles, device, seed)
        self.templates: dict[str, dict[str, float]] = {}  # per type: {"sigma"} or {"radius", "hollow"}, in voxels
        self.polarity = 1.0  # +1: particles darker than the background

    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Grid-search the template of each type on the train runs (one epoch: there is nothing iterative)."""
        self.precision = "fp32"  # numpy on the host, whatever the suite's precision
        for _ in tracker.epochs(samples=len(train), unit="train tomograms"):
            volumes = [self._spectrum(sample.tomogram) for sample in train]
            self.polarity = self._fit_polarity(train, volumes)
            truth = pd.concat([sample.picks for sample in train], ignore_index=True)
            train_f4 = {}
            for particle in self.particles:
                scored = []
                for template in self._template_grid(particle.radius, train[0].tomogram):
                    picks = pd.concat(
                        [
                            self._detect(volume, sample.tomogram, particle.name, template).assign(experiment=sample.run)
                            for volume, sample in zip(volumes, train, strict=True)
                        ],
                        ignore_index=True,
                    )
                    tuned = tune_thresholds(truth, picks, self.particles).set_index("particle_type")
                    scored.append((tuned.at[particle.name, "f4"], template))
                train_f4[particle.name], self.templates[particle.name] = max(scored, key=lambda item: item[0])
            tracker.log(**{f"train_f4_{name}": f4 for name, f4 in train_f4.items()})
            break

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """All local maxima of each type's template response, scored by the response."""
        volume = self._spectrum(tomogram)
        return pd.concat(
            [self._detect(volume, tomogram, name, template) for name, template in self.templates.items()],
            ignore_index=True,
        )

    def save(self, directory: Path) -> None:
        """Write the fitted templates and polarity as JSON."""
        directory.mkdir(parents=True, exist_ok=True)
        state = {"config": self.config, "templates": self.templates, "polarity": self.polarity}
        (directory / "matched_filter.json").write_text(json.dumps(state, indent=2))

    def load(self, directory: Path) -> None:
        """Read what save wrote."""
        state = json.loads((directory / "matched_filter.json").read_text())
        self.config, self.templates, self.polarity = state["config"], state["templates"], state["polarity"]

    def _spectrum(self, tomogram: Tomogram) -> _Spectrum:
        """The working level of a tomogram, standardised, as a spectrum ready for filtering."""
        volume = tomogram.read(self.config["level"])
        return _Spectrum((volume - volume.mean()) / (volume.std() + 1e-12))

    def _template_grid(self, radius: float, tomogram: Tomogram) -> list[dict[str, float]]:
        """The candidate filters of a particle of `radius` Å, in working-level voxels."""
        voxels = radius / tomogram.level_voxel_size(self.config["level"])
        blobs = [{"sigma": voxels / np.sqrt(3) * f} for f in self.config["sigma_factors"]]
        shells = [{"radius": voxels * f, "hollow": self.config["shell_hollow"]} for f in self.config["shell_sizes"]]
        return blobs + shells

    def _fit_polarity(self, train: Sequence[Sample], volumes: list[_Spectrum]) -> float:
        """+1 when the picked particles' centres are darker than the mean, else -1."""
        level = self.config["level"]
        values = []
        for sample, volume in zip(train, volumes, strict=True):
            zyx = np.rint(angstrom_to_voxel(sample.picks[XYZ].to_numpy(), sample.tomogram.voxel_size, level))
            zyx = np.clip(zyx.astype(int), 0, np.array(volume.shape) - 1)
            smoothed = volume.filtered(lambda k: np.exp(-2 * np.pi**2 * 4 * k**2))  # sigma 2 voxels
            values.append(smoothed[tuple(zyx.T)])
        return 1.0 if np.concatenate(values).mean() < 0 else -1.0

    def _detect(self, volume: _Spectrum, tomogram: Tomogram, particle_type: str, template: dict) -> pd.DataFrame:
        """Local maxima of the polarity-corrected template response."""
        response = -self.polarity * volume.filtered(self._transfer(template))
        radius = self.particles[particle_type].radius / tomogram.level_voxel_size(self.config["level"])
        size = max(3, 2 * int(self.config["peak_spacing"] * radius) + 1)
        zyx, values = local_maxima(response, size, 0.0, self.config["max_candidates"])
        return picks_from_voxels(zyx, values, particle_type, tomogram.voxel_size, self.config["level"], tomogram.shape)

    def _transfer(self, template: dict[str, float]):
        """Fourier transfer function (of |k| in cycles/voxel) of a LoG or a zero-mean smoothed shell template.

        Both respond positively to a bright particle; the polarity turns dark particles positive.
        """
        if "sigma" in template:
            sigma = template["sigma"]
            return lambda k: 4 * np.pi**2 * sigma**2 * k**2 * np.exp(-2 * np.pi**2 * sigma**2 * k**2)
        outer, inner = template["radius"], template["hollow"] * template["radius"]
        surround, sigma = self.config["surround"] * outer, self.config["smoothing"]
        return lambda k: (_shell(k, outer, inner) - _ball(k, surround)) * np.exp(-2 * np.pi**2 * sigma**2 * k**2)


def _ball(k: np.ndarray, radius: float) -> np.ndarray:
    """Fourier transform of a solid ball of unit integral (k in cycles/voxel, radius in voxels).

    In float64 with its Taylor series near k = 0, where sin(x) - x cos(x) cancels.
    """
    x = 2 * np.pi * np.asarray(k, dtype=np.float64) * radius
    small = x < 1e-2
    safe = np.where(small, 1.0, x)
    return np.where(small, 1 - x**2 / 10, 3 * (np.sin(safe) - safe * np.cos(safe)) / safe**3)


def _shell(k: np.ndarray, outer: float, inner: float) -> np.ndarray:
    """Fourier transform of a hollow shell of unit integral."""
    return (outer**3 * _ball(k, outer) - inner**3 * _ball(k, inner)) / (outer**3 - inner**3)


class _Spectrum:
    """A volume with its real FFT, for fast isotropic filtering with many transfer functions."""

    def __init__(self, volume: np.ndarray):
        self.shape = volume.shape
        self.spectrum = fft.rfftn(volume, workers=-1)
        axes = [fft.fftfreq(n) for n in volume.shape[:-1]] + [fft.rfftfreq(volume.shape[-1])]
        kz, ky, kx = np.meshgrid(*axes, indexing="ij", sparse=True)
        self.k = np.sqrt(kz**2 + ky**2 + kx**2).astype(np.float32)

    def filtered(self, transfer) -> np.ndarray:
        """The volume filtered by an isotropic transfer function of |k| (cycles/voxel)."""
        return fft.irfftn(self.spectrum * transfer(self.k), s=self.shape, workers=-1).astype(np.float32)
