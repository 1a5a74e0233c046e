"""Shared pieces of the patch networks: sphere and Gaussian targets, class-balanced patches cut on the device, tiled
sliding-window inference, picks from labels.

Class index = copick label, 0 is background. Volumes are (z, y, x) at pyramid level 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers import sliding_window_inference
from scipy import ndimage

from architectures.parts.augmentation import WEDGE_KEEPING, Augmentation
from architectures.parts.device import to_device
from architectures.parts.peaks import picks_from_voxels
from benchmark.coords import XYZ, angstrom_to_voxel
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.interface import Sample
from benchmark.particles import ParticleTable

Span = tuple[int, int, int, int]  # along one axis: read start, read stop, keep start, keep stop
Predictor = Callable[[torch.Tensor], torch.Tensor]  # (n, 1, *roi) image windows -> (n, classes, *roi) probabilities


def class_count(particles: ParticleTable) -> int:
    """Number of output classes: background plus labels 1..max (class index = copick label)."""
    labels = [p.label for p in particles]
    if min(labels) < 1 or len(set(labels)) != len(labels):
        raise BenchError(
            f"copick labels {labels} cannot serve as class indices; give each particle a distinct label >= 1"
        )
    return max(labels) + 1


def target_radius(particle_radius: float, voxel_size: float, fraction: float) -> float:
    """Radius in voxels of a particle's target sphere: `fraction` of its radius."""
    return fraction * particle_radius / voxel_size


def min_component_sizes(
    particles: ParticleTable, voxel_size: float, radius_fraction: float, size_fraction: float
) -> dict[str, float]:
    """Per particle, the fewest voxels a predicted component needs: `size_fraction` of its target sphere's volume."""
    return {
        p.name: size_fraction * 4 / 3 * math.pi * target_radius(p.radius, voxel_size, radius_fraction) ** 3
        for p in particles
    }


def paint_spheres(
    shape: tuple[int, int, int], picks: pd.DataFrame, particles: ParticleTable, voxel_size: float, fraction: float
) -> np.ndarray:
    """A uint8 label volume with a ball of `fraction` x radius per Å pick; larger particles first, smaller on top."""
    labels = np.zeros(shape, dtype=np.uint8)
    for particle in sorted(particles, key=lambda p: -p.radius):
        xyz = picks.loc[picks["particle_type"] == particle.name, XYZ].to_numpy(float)
        radius = target_radius(particle.radius, voxel_size, fraction)
        reach = np.arange(-math.ceil(radius), math.ceil(radius) + 2)
        offsets = np.stack(np.meshgrid(reach, reach, reach, indexing="ij"), axis=-1).reshape(-1, 3)
        centres = angstrom_to_voxel(xyz, voxel_size)
        voxels = np.floor(centres).astype(int)[:, None, :] + offsets  # (picks, box, 3): a box around each pick
        inside = (np.linalg.norm(voxels - centres[:, None, :], axis=-1) <= radius) & np.all(
            (voxels >= 0) & (voxels < shape), axis=-1
        )
        labels[tuple(voxels[inside].T)] = particle.label
    return labels


def paint_gaussians(
    shape: tuple[int, int, int], picks: pd.DataFrame, particles: ParticleTable, voxel_size: float, fraction: float
) -> np.ndarray:
    """Per-class heatmaps (labels 1..max as channels 0..max-1, float16): a Gaussian of sigma `fraction` x radius
    around each Å pick, peak 1 at its exact centre, overlapping Gaussians of a class combined by their maximum."""
    maps = np.zeros((class_count(particles) - 1, *shape), dtype=np.float32)
    for particle in particles:
        xyz = picks.loc[picks["particle_type"] == particle.name, XYZ].to_numpy(float)
        sigma = target_radius(particle.radius, voxel_size, fraction)
        reach = np.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 2)
        offsets = np.stack(np.meshgrid(reach, reach, reach, indexing="ij"), axis=-1).reshape(-1, 3)
        centres = angstrom_to_voxel(xyz, voxel_size)
        voxels = np.floor(centres).astype(int)[:, None, :] + offsets  # (picks, box, 3): a box around each pick
        values = np.exp(-np.square(voxels - centres[:, None, :]).sum(-1) / (2 * sigma**2))
        inside = np.all((voxels >= 0) & (voxels < shape), axis=-1)
        channel = maps[particle.label - 1]
        np.maximum.at(channel, tuple(voxels[inside].T), values[inside])
    return maps.astype(np.float16)


def paint_points(
    shape: tuple[int, int, int], picks: pd.DataFrame, particles: ParticleTable, voxel_size: float
) -> np.ndarray:
    """Per-class point maps (labels 1..max as channels 0..max-1, float16): 1 at the voxel nearest each Å pick."""
    maps = np.zeros((class_count(particles) - 1, *shape), dtype=np.float16)
    for particle in particles:
        xyz = picks.loc[picks["particle_type"] == particle.name, XYZ].to_numpy(float)
        voxels = np.rint(angstrom_to_voxel(xyz, voxel_size)).astype(int)  # the voxel whose centre is nearest
        voxels = voxels[np.all((voxels >= 0) & (voxels < shape), axis=1)]
        maps[(particle.label - 1, *voxels.T)] = 1
    return maps


def intensity_statistics(tomogram: Tomogram, slab: int = 16) -> tuple[float, float]:
    """Mean and standard deviation of level 0, accumulated over thin z-slabs so the volume is never held whole.

    Thinner than a zarr chunk (256 deep by default, more than a CZII tomogram): a chunk-deep slab would be the whole
    volume, in float64.
    """
    total = squares = 0.0
    for z in range(0, tomogram.shape[0], slab):
        block = tomogram.read(0, (slice(z, z + slab), slice(None), slice(None))).astype(np.float64)
        total += block.sum()
        squares += np.square(block).sum()
    count = math.prod(tomogram.shape)
    mean = float(total / count)
    return mean, math.sqrt(max(squares / count - mean**2, 0.0)) or 1.0


def standardised(
    tomogram: Tomogram,
    statistics: tuple[float, float] | None = None,
    region: tuple[slice, slice, slice] | None = None,
) -> np.ndarray:
    """A float32 region of level 0 (all of it by default) less the mean, over the standard deviation: the given
    statistics of the whole tomogram, else the region's own."""
    volume = tomogram.read(0, region)
    mean, std = statistics or (float(volume.mean(dtype=np.float64)), float(volume.std(dtype=np.float64)) or 1.0)
    volume = volume - mean  # a new array: read() may return a view of the level
    volume /= std
    return volume


def particle_sites(samples: Sequence[Sample], particles: ParticleTable) -> dict[int, np.ndarray]:
    """Per class, the (sample index, z, y, x) voxel rows of its ground-truth picks."""
    sites = {}
    for index, sample in enumerate(samples):
        for particle in particles:
            xyz = sample.picks.loc[sample.picks["particle_type"] == particle.name, XYZ].to_numpy(float)
            zyx = np.rint(angstrom_to_voxel(xyz, sample.tomogram.voxel_size)).astype(int)
            rows = np.column_stack([np.full(len(zyx), index), zyx])
            sites[particle.label] = np.concatenate([sites.get(particle.label, np.empty((0, 4), int)), rows])
    return {label: rows for label, rows in sites.items() if len(rows)}


class PatchSampler:
    """Cubic training patches cut on the device from volumes held there: a share centred near a particle of a
    uniformly drawn class, the rest anywhere.

    A target is a class-index volume (z, y, x), uint8, or per-class maps (channels, z, y, x), float; patches come
    as float32 images (n, 1, s, s, s) with int64 class targets (n, 1, s, s, s) or float32 maps (n, channels, s, s,
    s). Corners and augmentations are drawn on the host (a few numbers per patch), so on a GPU no step waits for the
    host to cut or copy a batch; `augment` names the augmentations (`architectures.parts.augmentation`).
    """

    def __init__(
        self,
        volumes: Sequence[np.ndarray | torch.Tensor],
        targets: Sequence[np.ndarray | torch.Tensor],
        sites: dict[int, np.ndarray],
        size: int,
        particle_share: float,
        jitter: int,
        seed: int,
        device: str = "cpu",
        augment: Sequence[str] = WEDGE_KEEPING,
    ):
        small = [tuple(v.shape) for v in volumes if min(v.shape) < size]
        if small:
            raise BenchError(f"patch size {size} exceeds the training volume {small[0]}; lower 'patch_size'")
        self.volumes = [torch.as_tensor(v).to(device) for v in volumes]
        self.targets = [torch.as_tensor(t).to(device) for t in targets]
        self.sites, self.size, self.particle_share, self.jitter = sites, size, particle_share, jitter
        self.rng = np.random.default_rng(seed)
        self.augmentation = Augmentation(augment, seed, maps=self.targets[0].dim() == 4)

    @classmethod
    def from_samples(
        cls,
        samples: Sequence[Sample],
        target: Callable[[Sample], np.ndarray],
        particles: ParticleTable,
        **options,
    ) -> PatchSampler:
        """Read (once) and standardise every sample, with its `target`, held on the device."""
        volumes = [standardised(s.tomogram) for s in samples]
        return cls(volumes, [target(s) for s in samples], particle_sites(samples, particles), **options)

    def origin(self) -> tuple[int, np.ndarray]:
        """A patch's volume index and corner: near a particle of a uniformly drawn class, or anywhere (background)."""
        if self.sites and self.rng.random() < self.particle_share:
            sites = self.sites[list(self.sites)[self.rng.integers(len(self.sites))]]
            index, *centre = sites[self.rng.integers(len(sites))]
            centre = np.asarray(centre) + self.rng.integers(-self.jitter, self.jitter + 1, size=3)
            upper = np.asarray(self.volumes[index].shape) - self.size
            return int(index), np.clip(centre - self.size // 2, 0, upper)
        index = int(self.rng.integers(len(self.volumes)))  # a uniform corner: no pile-up of patches at the faces
        return index, self.rng.integers(0, np.asarray(self.volumes[index].shape) - self.size + 1)

    def batch(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented images and their targets, on the device (see the class)."""
        images, targets = [], []
        for _ in range(count):
            index, corner = self.origin()
            box = tuple(slice(int(c), int(c) + self.size) for c in corner)
            image, target = self.augmentation(self.volumes[index][box], self.targets[index][(..., *box)])
            images.append(image)
            targets.append(target)
        images, targets = torch.stack(images)[:, None], torch.stack(targets)
        if targets.dim() == 4:  # class indices: one channel, int64 for the losses
            return images, targets[:, None].long()
        return images, targets.float()


@dataclass(frozen=True)
class SlidingWindow:
    """MONAI sliding-window settings, plus the largest tile (z, y, x voxels) held in memory at once."""

    roi_size: tuple[int, int, int]
    overlap: float
    sw_batch_size: int
    mode: str
    tile_size: tuple[int, int, int]

    def window_starts(self, length: int, axis: int) -> list[int]:
        """Starts of MONAI's windows along one axis (its scan interval and dense_patch_slices), before padding."""
        roi = self.roi_size[axis]
        if length <= roi:
            return [0]
        interval = max(int(roi * (1 - self.overlap)), 1)
        return [s[0].start for s in dense_patch_slices((length,), (roi,), (interval,))]

    def spans(self, length: int, axis: int) -> list[Span]:
        """Tiles along one axis, aligned on the global windows so each kept voxel sees exactly its untiled windows.

        A tile is a run of consecutive windows; it keeps the voxels that no window outside the run covers.
        Neighbouring tiles share the windows that straddle their border.
        """
        roi, starts = self.roi_size[axis], self.window_starts(length, axis)
        spans, first, keep = [], 0, 0
        while True:
            last = first
            while last + 1 < len(starts) and (
                starts[last + 1] + roi - starts[first] <= self.tile_size[axis] or starts[last + 1] < starts[first] + roi
            ):
                last += 1
            if last + 1 == len(starts):
                spans.append((starts[first], length, keep, length))
                return spans
            stop = starts[last + 1]
            spans.append((starts[first], starts[last] + roi, keep, stop))
            first = max(f for f in range(first + 1, last + 2) if starts[f - 1] + roi <= stop)
            keep = stop

    def tiles(self, shape: tuple[int, int, int]) -> list[tuple[Span, Span, Span]]:
        """(z, y, x) spans of every tile of a volume."""
        z, y, x = (self.spans(n, axis) for axis, n in enumerate(shape))
        return [(a, b, c) for a in z for b in y for c in x]


def window_outputs(
    tomogram: Tomogram, predictor: Predictor, window: SlidingWindow, device: str
) -> Iterator[tuple[tuple[slice, slice, slice], torch.Tensor]]:
    """Per tile of the lazy tomogram: the region of the volume it settles and the predictor's blended output
    (channels, *region) there, on the device.

    A tile is standardised with the whole volume's statistics, copied to the device from pinned memory (on a GPU),
    and MONAI's sliding window runs its batched windows and blends them there; a tile costs 4 bytes per voxel and
    channel (input, outputs and count map in float32).
    """
    statistics = intensity_statistics(tomogram)
    for spans in window.tiles(tomogram.shape):
        image = to_device(standardised(tomogram, statistics, tuple(slice(a, b) for a, b, _, _ in spans)), device)
        output = sliding_window_inference(
            image[None, None],
            window.roi_size,
            window.sw_batch_size,
            predictor,
            overlap=window.overlap,
            mode=window.mode,
            sw_device=device,
            device=device,
        )[0]
        del image
        keep = tuple(slice(c - a, d - a) for a, _, c, d in spans)
        yield tuple(slice(c, d) for _, _, c, d in spans), output[(slice(None), *keep)]
        del output


def segment(
    tomogram: Tomogram, predictor: Predictor, window: SlidingWindow, device: str, slab: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-volume argmax classes (uint8) and their probability (float16), one tile at a time (`window_outputs`)."""
    labels = np.zeros(tomogram.shape, dtype=np.uint8)
    probability = np.zeros(tomogram.shape, dtype=np.float16)
    for place, output in window_outputs(tomogram, predictor, window, device):
        for z in range(0, output.shape[1], slab):  # argmax in slabs keeps the int64 indices small
            best, index = output[:, z : z + slab].max(dim=0)
            inner = (slice(place[0].start + z, min(place[0].start + z + slab, place[0].stop)), *place[1:])
            labels[inner] = index.to(torch.uint8).cpu().numpy()
            probability[inner] = best.to(torch.float16).cpu().numpy()
    return labels, probability


def picks_from_segmentation(
    labels: np.ndarray,
    probability: np.ndarray,
    particles: ParticleTable,
    voxel_size: float,
    min_sizes: dict[str, float],
) -> pd.DataFrame:
    """One pick per connected component of each class at least `min_sizes[name]` voxels, scored by mean probability."""
    frames = []
    for particle in particles:
        components, count = ndimage.label(labels == particle.label)
        sizes, centroids, scores = component_statistics(components, count, probability)
        keep = sizes >= min_sizes[particle.name]
        frames.append(picks_from_voxels(centroids[keep], scores[keep], particle.name, voxel_size))
    return pd.concat(frames, ignore_index=True)


def component_statistics(
    components: np.ndarray, count: int, values: np.ndarray, slab: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per component 1..count: voxel count, (z, y, x) centroid and mean value, summed over z-slabs (bounded memory)."""
    sums = np.zeros((5, count + 1))  # voxels, z, y, x, value
    for z in range(0, components.shape[0], slab):
        block = components[z : z + slab]
        flat = np.flatnonzero(block)
        ids = block.ravel()[flat]
        zyx = np.unravel_index(flat, block.shape)
        weights = [None, zyx[0] + z, zyx[1], zyx[2], values[z : z + slab].ravel()[flat]]
        for row, weight in enumerate(weights):
            sums[row] += np.bincount(ids, weights=weight, minlength=count + 1)
    sizes = sums[0, 1:]
    return sizes, (sums[1:4, 1:] / sizes).T, sums[4, 1:] / sizes
