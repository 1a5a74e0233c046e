"""2D slices of a tomogram for slice detectors, and their box targets from the 3D ground truth.

Arrays are (z, y, x) at a pyramid level; boxes are (x1, y1, x2, y2) in that level's pixels, edges on pixel borders
(a pixel i spans [i, i + 1)), as torchvision and ultralytics expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.coords import XYZ, angstrom_to_voxel
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable

BOX_COLUMNS = ["z", "x1", "y1", "x2", "y2", "label"]


@dataclass(frozen=True)
class SliceSpec:
    """How a tomogram becomes images: the pyramid level, a percentile clip to [0, 1], and channels.

    `neighbours` k > 0 stacks the slices z-k..z+k as 2k + 1 channels (2.5D); with k = 0, `channels` 3 repeats the
    slice (for backbones built for RGB), 1 keeps it single.
    """

    level: int = 0
    percentiles: tuple[float, float] = (1.0, 99.0)
    neighbours: int = 0
    channels: int = 1

    def __post_init__(self) -> None:
        if self.neighbours < 0 or (self.neighbours == 0 and self.channels not in (1, 3)):
            raise BenchError(f"slices: neighbours {self.neighbours} must be >= 0 and channels 1 or 3")
        if self.neighbours and self.channels != 2 * self.neighbours + 1:
            raise BenchError(f"slices: {self.neighbours} neighbours each side make {2 * self.neighbours + 1} channels")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise BenchError(f"slices: percentiles {list(self.percentiles)} must rise within 0-100")


def normalised_volume(tomogram: Tomogram, spec: SliceSpec) -> np.ndarray:
    """The level as float32 in [0, 1]: clipped at the spec's percentiles of the whole volume, then scaled."""
    volume = tomogram.read(spec.level).copy()  # scaled in place: read() may return a view of an in-memory level
    low, high = (float(v) for v in np.percentile(volume, spec.percentiles))
    np.clip(volume, low, high, out=volume)
    volume -= low
    volume /= max(high - low, 1e-12)
    return volume


def slice_images(volume: np.ndarray, z: np.ndarray, spec: SliceSpec) -> np.ndarray:
    """Images (n, channels, y, x) of the slices `z` of a normalised volume; neighbours past an edge repeat it."""
    z = np.asarray(z, dtype=int)
    if spec.neighbours:
        offsets = np.arange(-spec.neighbours, spec.neighbours + 1)
        return volume[np.clip(z[:, None] + offsets, 0, volume.shape[0] - 1)]
    return np.repeat(volume[z][:, None], spec.channels, axis=1)


def box_targets(
    picks: pd.DataFrame,
    particles: ParticleTable,
    tomogram: Tomogram,
    level: int,
    z_fraction: float = 0.5,
    box: str = "section",
) -> pd.DataFrame:
    """One box per (particle, slice) for the slices whose plane cuts the particle's sphere within `z_fraction` of
    its radius from the centre; columns z, x1, y1, x2, y2 (level pixels) and label (the copick label).

    `box` "section" draws the square around the sphere's cross-section in that slice (side 2 sqrt(r^2 - dz^2)),
    "square" the full 2r square on every slice. The default, sections within half the radius, keeps every box at
    least 87% of the diameter: farther out the cap is a faint sliver (and the missing wedge smears it along z),
    which would teach a detector to fire on noise, while the merge needs the central slices only.
    """
    if box not in ("section", "square"):
        raise BenchError(f"slices: box '{box}' is 'section' or 'square'")
    voxel = tomogram.level_voxel_size(level)
    depth, height, width = (int(n) for n in tomogram.levels[level].shape)
    centres = angstrom_to_voxel(picks[XYZ].to_numpy(float), tomogram.voxel_size, level)  # (z, y, x)
    radius = picks["particle_type"].map({p.name: p.radius for p in particles}).to_numpy(float) / voxel
    label = picks["particle_type"].map({p.name: p.label for p in particles}).to_numpy(int)
    reach = np.ceil(z_fraction * radius).astype(int) + 1  # slices to consider each side of the nearest one
    count = 2 * reach + 1
    owner = np.repeat(np.arange(len(picks)), count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) - np.repeat(reach, count)
    z = np.rint(centres[owner, 0]).astype(int) + offset
    dz = z - centres[owner, 0]
    half = radius[owner] if box == "square" else np.sqrt(np.maximum(radius[owner] ** 2 - dz**2, 0.0))
    x, y = centres[owner, 2] + 0.5, centres[owner, 1] + 0.5  # voxel centres sit mid-pixel
    boxes = pd.DataFrame(
        {
            "z": z,
            "x1": np.clip(x - half, 0, width),
            "y1": np.clip(y - half, 0, height),
            "x2": np.clip(x + half, 0, width),
            "y2": np.clip(y + half, 0, height),
            "label": label[owner],
        }
    )
    cut = np.abs(dz) <= z_fraction * radius[owner]
    keep = cut & (boxes["z"] >= 0) & (boxes["z"] < depth) & (boxes["x2"] > boxes["x1"]) & (boxes["y2"] > boxes["y1"])
    return boxes[keep].reset_index(drop=True)


def augment_slice(image: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flips of y and of x of an image (c, y, x) and its boxes (n, 4): flips keep a missing wedge about y
    (`architectures.parts.augmentation`); a 90-degree turn of the slice plane would move it about x."""
    flip_y, flip_x = (bool(b) for b in rng.integers(2, size=2))
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    height, width = image.shape[1:]
    if flip_y:
        image = image[:, ::-1]
        boxes = np.stack([boxes[:, 0], height - boxes[:, 3], boxes[:, 2], height - boxes[:, 1]], axis=1)
    if flip_x:
        image = image[:, :, ::-1]
        boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
    return np.array(image), boxes  # a writable, contiguous copy whether flipped or not
