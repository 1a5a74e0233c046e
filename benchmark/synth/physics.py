"""Cryo-ET image formation in one Fourier pass: CTF, missing wedge, noise and the denoising filter.

Frequencies are in cycles/Å on the rfft grid of a (z, y, x) volume; the tilt axis is y, so the missing
wedge depends on k_z and k_x only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

WAVELENGTH = 0.0197  # Å, electrons at 300 kV
SPHERICAL_ABERRATION_MM = 2.7
AMPLITUDE_CONTRAST = 0.07


@dataclass(frozen=True)
class Imaging:
    """The acquisition and processing of one tomogram."""

    voxel_size: float  # Å
    defocus_um: float  # under-focus, positive
    noise_std: float = 0.0  # std of the raw reconstruction's (wedge-limited) noise, solid-protein units
    bfactor: float = 150.0  # Å²
    tilt_max_deg: float = 45.0
    denoise_sigma: float = 1.25  # voxels; 0 leaves the raw reconstruction


def ctf(k2: np.ndarray, defocus_um: float, wavelength: float = WAVELENGTH) -> np.ndarray:
    """Phase-contrast transfer function at squared frequency k2 (1/Å²), negative at low frequency.

    T(k) = -sin(chi(k) + asin(A)) with chi = pi lambda df k² - pi/2 Cs lambda³ k⁴ for under-focus df:
    T(0) = -A, so dense protein comes out dark, as in real tomograms. The first zero sits where
    chi = pi - asin(A): about 22 Å at 2.5 µm and 32 Å at 5 µm.
    """
    df = defocus_um * 1e4
    cs = SPHERICAL_ABERRATION_MM * 1e7
    chi = (math.pi * wavelength * df) * k2 - (math.pi / 2 * cs * wavelength**3) * k2**2
    chi += math.asin(AMPLITUDE_CONTRAST)
    return -np.sin(chi, out=chi)


def wedge(shape: tuple[int, int, int], tilt_max_deg: float) -> np.ndarray:
    """Boolean (nz, 1, nx//2+1) mask of the rfft grid sampled by a ±tilt_max tilt series about y.

    A tilt by theta samples the central plane k_x sin(theta) + k_z cos(theta) = 0, so the series covers
    |k_z| <= tan(tilt_max) |k_x|; the rest (around the k_z axis) is the missing wedge.
    """
    kz = np.abs(scipy.fft.fftfreq(shape[0]))[:, None, None]  # cycles/voxel: voxels are cubic
    kx = scipy.fft.rfftfreq(shape[2])[None, None, :]
    return kz <= math.tan(math.radians(tilt_max_deg)) * kx + 1e-12


@lru_cache(maxsize=2)
def squared_frequency(shape: tuple[int, int, int], voxel_size: float) -> np.ndarray:
    """|k|² (1/Å², float32) on the rfft grid of a (z, y, x) volume; cached, treat as read-only."""
    kz, ky = (scipy.fft.fftfreq(n, voxel_size).astype(np.float32) ** 2 for n in shape[:2])
    kx = scipy.fft.rfftfreq(shape[2], voxel_size).astype(np.float32) ** 2
    return kz[:, None, None] + ky[None, :, None] + kx[None, None, :]


def raw_spectrum(density: np.ndarray, imaging: Imaging, workers: int = -1) -> np.ndarray:
    """rfft of the noise-free raw reconstruction: density x CTF x B-factor envelope x wedge, mean removed."""
    k2 = squared_frequency(density.shape, imaging.voxel_size)
    spectrum = scipy.fft.rfftn(density, workers=workers)
    transfer = ctf(k2, imaging.defocus_um)
    transfer *= np.exp(-imaging.bfactor / 4 * k2)
    spectrum *= transfer
    del transfer
    spectrum *= wedge(density.shape, imaging.tilt_max_deg)
    spectrum[0, 0, 0] = 0
    return spectrum


def noise_for_snr(snr: float, reference: np.ndarray, radius: float, imaging: Imaging) -> float:
    """The raw noise std giving a reference particle the SNR `snr`.

    SNR = mean square of the noise-free raw reconstruction (CTF, envelope, wedge; no denoising) over the
    voxels within `radius` Å of the centre of `reference` (a density box holding one particle) divided
    by the noise variance. It does not depend on how crowded a run is: like a fixed electron dose, the
    noise is the same for every particle whatever else the tomogram holds.
    """
    padded = np.pad(reference, [(n // 2, n // 2) for n in reference.shape])
    raw = scipy.fft.irfftn(raw_spectrum(padded, imaging), s=padded.shape)
    grid = np.ogrid[tuple(slice(0, n) for n in raw.shape)]
    distance = np.sqrt(sum((g - (n - 1) / 2) ** 2 for g, n in zip(grid, raw.shape, strict=True)))
    inside = raw[distance * imaging.voxel_size <= radius]
    return math.sqrt(float(np.mean(np.square(inside, dtype=np.float64))) / snr)


def reconstruct(density: np.ndarray, imaging: Imaging, rng: np.random.Generator, workers: int = -1) -> np.ndarray:
    """The released, denoised tomogram of a density volume: float32, standardised to mean 0 and std 1.

    Raw reconstruction = the noise-free one (`raw_spectrum`) plus white noise of `noise_std` restricted
    to the same wedge (the noise comes from the tilt images, so it shares their Fourier coverage). The
    denoised volume is the raw one times a Gaussian of `denoise_sigma` voxels. The noise is drawn in
    Fourier space, one complex normal per rfft coefficient, so the pass costs one forward and one inverse FFT.
    """
    shape = density.shape
    spectrum = raw_spectrum(density, imaging, workers)
    if imaging.noise_std:
        # white noise of variance s² has E|coefficient|² = N s² (N s² / 2 per part); the wedge keeps a share
        sampled = wedge(shape, imaging.tilt_max_deg)
        scale = np.float32(imaging.noise_std * math.sqrt(density.size / 2 / sampled.mean()))
        noise = rng.standard_normal((*spectrum.shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
        noise *= sampled * scale
        spectrum += noise
        del noise
        spectrum[0, 0, 0] = 0
    if imaging.denoise_sigma:
        k2 = squared_frequency(shape, imaging.voxel_size)
        spectrum *= np.exp(-2 * (math.pi * imaging.denoise_sigma * imaging.voxel_size) ** 2 * k2)
    volume = scipy.fft.irfftn(spectrum, s=shape, workers=workers)
    volume -= volume.mean(dtype=np.float64)
    volume /= volume.std(dtype=np.float64)
    return volume
