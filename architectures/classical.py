"""The classical floor: per-particle Laplacian-of-Gaussian blob detection with scales fitted on the train runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import fft

from benchmark.coords import XYZ, angstrom_to_voxel
from benchmark.data import Tomogram
from benchmark.interface import Architecture, Budget, Sample, Tracker
from benchmark.peaks import local_maxima, picks_from_voxels
from benchmark.registry import register
from metrics.thresholds import tune_thresholds

DEFAULTS = {
    "level": 1,  # pyramid level the filter runs on (1 = half resolution)
    "sigma_factors": [0.5, 0.7, 0.9, 1.1, 1.3],  # candidate LoG scales, x the particle radius / sqrt(3)
    "peak_spacing": 0.5,  # local-maximum footprint, x the particle radius
    "max_candidates": 400,  # per particle type and tomogram
}


@register("classical-log")
class LoGBlobDetector(Architecture):
    """Scale-normalised LoG per particle type; its scale and the contrast polarity are fitted on train runs."""

    kind = "classical"

    def __init__(self, config, particles, device, seed):
        super().__init__({**DEFAULTS, **config}, particles, device, seed)
        self.sigmas: dict[str, float] = {}  # in voxels of the working level
        self.polarity = 1.0  # +1: particles darker than the background

    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Pick, per type, the LoG scale whose detections give the best F4 on the train runs."""
        for _ in tracker.epochs():
            volumes = [self._volume(sample.tomogram) for sample in train]
            self.polarity = self._fit_polarity(train, volumes)
            truth = pd.concat([sample.picks for sample in train], ignore_index=True)
            best_f4 = {}
            for particle in self.particles:
                results = []
                for sigma in self._sigma_grid(particle.radius, train[0].tomogram):
                    picks = pd.concat(
                        [
                            self._detect(volume, sample.tomogram, particle.name, sigma).assign(experiment=sample.run)
                            for volume, sample in zip(volumes, train, strict=True)
                        ],
                        ignore_index=True,
                    )
                    tuned = tune_thresholds(truth, picks, self.particles).set_index("particle_type")
                    results.append((tuned.at[particle.name, "f4"], sigma))
                best_f4[particle.name], self.sigmas[particle.name] = max(results, key=lambda r: r[0])
            tracker.log(**{f"train_f4_{name}": f4 for name, f4 in best_f4.items()})
            break

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """All LoG maxima of each type's fitted scale, scored by their response."""
        volume = self._volume(tomogram)
        return pd.concat(
            [self._detect(volume, tomogram, name, sigma) for name, sigma in self.sigmas.items()], ignore_index=True
        )

    def save(self, directory: Path) -> None:
        """Write the fitted scales and polarity as JSON."""
        directory.mkdir(parents=True, exist_ok=True)
        state = {"config": self.config, "sigmas": self.sigmas, "polarity": self.polarity}
        (directory / "log_detector.json").write_text(json.dumps(state, indent=2))

    def load(self, directory: Path) -> None:
        """Read what save wrote."""
        state = json.loads((directory / "log_detector.json").read_text())
        self.config, self.sigmas, self.polarity = state["config"], state["sigmas"], state["polarity"]

    def _volume(self, tomogram: Tomogram) -> _Spectrum:
        """The working level of a tomogram, standardised, kept as its spectrum for repeated filtering."""
        volume = tomogram.read(self.config["level"])
        return _Spectrum((volume - volume.mean()) / (volume.std() + 1e-12))

    def _sigma_grid(self, radius: float, tomogram: Tomogram) -> list[float]:
        """Candidate LoG scales in working-level voxels for a particle radius in Å."""
        base = radius / tomogram.level_voxel_size(self.config["level"]) / np.sqrt(3)
        return [base * f for f in self.config["sigma_factors"]]

    def _fit_polarity(self, train: Sequence[Sample], volumes: list[_Spectrum]) -> float:
        """+1 when the picked particles are darker than the mean background, else -1."""
        level = self.config["level"]
        values = []
        for sample, volume in zip(train, volumes, strict=True):
            zyx = np.rint(angstrom_to_voxel(sample.picks[XYZ].to_numpy(), sample.tomogram.voxel_size, level))
            zyx = np.clip(zyx.astype(int), 0, np.array(volume.shape) - 1)
            values.append(volume.spatial[tuple(zyx.T)])
        return 1.0 if np.concatenate(values).mean() < 0 else -1.0

    def _detect(self, volume: _Spectrum, tomogram: Tomogram, particle_type: str, sigma: float) -> pd.DataFrame:
        """Local maxima of the polarity-corrected LoG response at one scale."""
        response = self.polarity * volume.laplacian_of_gaussian(sigma)
        radius = self.particles[particle_type].radius / tomogram.level_voxel_size(self.config["level"])
        size = max(3, 2 * int(self.config["peak_spacing"] * radius) + 1)
        zyx, values = local_maxima(response, size, 0.0, self.config["max_candidates"])
        return picks_from_voxels(zyx, values, particle_type, tomogram.voxel_size, self.config["level"])


class _Spectrum:
    """A volume with its real FFT, for fast Fourier-space filtering at several scales."""

    def __init__(self, volume: np.ndarray):
        self.spatial = volume
        self.shape = volume.shape
        self.spectrum = fft.rfftn(volume, workers=-1)
        axes = [fft.fftfreq(n) for n in volume.shape[:-1]] + [fft.rfftfreq(volume.shape[-1])]
        kz, ky, kx = np.meshgrid(*axes, indexing="ij", sparse=True)
        self.k2 = (kz**2 + ky**2 + kx**2).astype(np.float32)

    def laplacian_of_gaussian(self, sigma: float) -> np.ndarray:
        """Scale-normalised sigma^2 * Laplacian of the Gaussian-smoothed volume (positive in dark blobs)."""
        kernel = -(4 * np.pi**2 * sigma**2) * self.k2 * np.exp(-2 * np.pi**2 * sigma**2 * self.k2)
        return fft.irfftn(self.spectrum * kernel, s=self.shape, workers=-1).astype(np.float32)
