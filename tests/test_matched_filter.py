"""The classical floor's filter bank: shells find hollow particles at their centre, LoG finds solid blobs."""

from __future__ import annotations

import numpy as np

from architectures.matched_filter import MatchedFilterDetector, _ball, _Spectrum
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


def test_the_ball_transform_is_one_at_zero_frequency_and_continuous_near_it():
    k = np.array([0.0, 1e-5, 1e-3, 0.02], dtype=np.float32)  # float32, as the spectra hold it
    values = _ball(k, 6.0)
    assert values[0] == 1.0
    x = 2 * np.pi * k.astype(np.float64) * 6.0
    exact = 3 * (np.sin(x[1:]) - x[1:] * np.cos(x[1:])) / x[1:] ** 3
    np.testing.assert_allclose(values[1:], exact, rtol=1e-6)
