"""The classical floor's filter bank: shells find hollow particles at their centre, LoG finds solid blobs."""

from __future__ import annotations

import numpy as np

from architectures.matched_filter import MatchedFilterDetector, _Spectrum
from benchmark.particles import ParticleTable


def sphere_volume(shape, centre, outer, inner=0.0) -> np.ndarray:
    """A dark (negative) ball or shell on a zero background, (z, y, x)."""
    grid = np.indices(shape).astype(float)
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    return -((distance <= outer) & (distance >= inner)).astype(np.float32)


def response(template, volume) -> np.ndarray:
    detector = MatchedFilterDetector({}, ParticleTable.czii(), "cpu", 0)
    return -detector.polarity * _Spectrum(volume).filtered(detector._transfer(template))


def test_shell_template_peaks_at_the_centre_of_a_hollow_particle():
    volume = sphere_volume((32, 32, 32), (16, 16, 16), outer=6, inner=4)
    shell = response({"radius": 6.0, "hollow": 0.6}, volume)
    assert np.unravel_index(np.argmax(shell), shell.shape) == (16, 16, 16)
    blob = response({"sigma": 6 / np.sqrt(3) * 0.5}, volume)
    assert blob[16, 16, 16] < blob.max() / 2  # a small blob detector sees the wall, not the centre


def test_log_peaks_at_the_centre_of_a_solid_particle():
    volume = sphere_volume((32, 32, 32), (12, 18, 15), outer=5)
    blob = response({"sigma": 5 / np.sqrt(3)}, volume)
    assert np.unravel_index(np.argmax(blob), blob.shape) == (12, 18, 15)
