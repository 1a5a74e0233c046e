"""Generator presets: volume size plus the difficulty knobs (SNR, crowding, decoys, optics, denoising)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Particles per tomogram in the CZII hidden test set (medians) over the real 630 x 630 field of view.
REAL_MEDIANS: dict[str, float] = {
    "apo-ferritin": 27,
    "beta-amylase": 5,
    "beta-galactosidase": 5,
    "ribosome": 51,
    "thyroglobulin": 9,
    "virus-like-particle": 3,
}
# Unlabelled objects per real-sized tomogram, at decoys = 1.
DECOY_COUNTS: dict[str, float] = {"vesicle": 2, "filament": 8, "disc": 15, "complex": 150, "albumin": 300}
REAL_FIELD = (630, 630)  # (y, x) voxels of a CZII tomogram: counts scale with the field of view


@dataclass(frozen=True)
class Preset:
    """Everything that shapes a synthetic project; `dataclasses.replace` one to calibrate difficulty."""

    name: str
    shape: tuple[int, int, int]  # (z, y, x) voxels of every run
    crowding: float = 1.0  # multiplies particle and decoy counts beyond the field-of-view scaling
    min_count: int = 1  # floor on the particles of each type per run
    run_spread: float = 0.4  # log-normal sigma of a run's overall abundance
    type_spread: float = 0.6  # log-normal sigma of each type's abundance within a run
    decoys: float = 1.0  # multiplies DECOY_COUNTS
    decoy_counts: dict[str, float] = field(default_factory=lambda: dict(DECOY_COUNTS))
    snr: tuple[float, float] = (0.07, 0.15)  # a ribosome's raw-reconstruction SNR, log-uniform per run
    defocus_um: tuple[float, float] = (2.5, 5.0)  # under-focus, drawn uniformly per run
    bfactor: float = 150.0  # Å², the CTF envelope exp(-B k² / 4)
    tilt_max_deg: float = 45.0  # tilt range ±; the rest of Fourier space is the missing wedge
    denoise_sigma: float = 1.25  # voxels, the Gaussian standing in for the released denoising
    slab_fraction: float = 0.8  # share of z filled by the ice slab that holds every object

    def __post_init__(self) -> None:
        """Check the ranges early, with the field's name in the message."""
        if min(self.shape) < 8:
            raise ValueError(f"preset {self.name}: shape {self.shape} is too small")
        if not 0 < self.snr[0] <= self.snr[1]:
            raise ValueError(f"preset {self.name}: snr range {self.snr} must be positive and ordered")
        if not 0 < self.slab_fraction <= 1:
            raise ValueError(f"preset {self.name}: slab_fraction {self.slab_fraction} must be in (0, 1]")


PRESETS: dict[str, Preset] = {
    # tiny, for tests: a handful of particles of every type in a thin slab
    "smoke": Preset("smoke", (48, 128, 128), crowding=2.0, min_count=2, decoys=0.5, slab_fraction=0.9),
    # the half-resolution field of view, crowded so that each split holds every class several times
    "demo": Preset("demo", (92, 315, 315), crowding=2.5, min_count=4),
    # the real tomograms' size and the real median counts
    "full": Preset("full", (184, 630, 630), min_count=2),
}
