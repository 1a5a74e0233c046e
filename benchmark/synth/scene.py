"""Scenes: how many particles and decoys a run holds, where they sit in the ice slab, how they are turned."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from benchmark.coords import angstrom_to_voxel, voxel_to_angstrom
from benchmark.synth.presets import REAL_FIELD, REAL_MEDIANS, Preset
from benchmark.synth.shapes import DECOYS, PARTICLE_BODIES, Body

MAX_TRIES = 60  # placement attempts per object before it is dropped as not fitting
Truth = dict[str, tuple[np.ndarray, np.ndarray]]  # particle -> (Å positions (n, 3), transforms (n, 4, 4))


@dataclass(frozen=True)
class Placed:
    """One object of a scene: kind (particle or decoy name), model, centre (z, y, x voxels), rotation."""

    kind: str
    body: Body
    centre: np.ndarray
    rotation: np.ndarray  # 3 x 3, body (x, y, z) -> volume (x, y, z)


class Occupancy:
    """Placed exclusion spheres (Å, x y z); a new object fits when none of its spheres overlaps them."""

    def __init__(self) -> None:
        self.centres = np.empty((0, 3))
        self.radii = np.empty(0)

    def fits(self, centres: np.ndarray, radii: np.ndarray) -> bool:
        """Whether spheres (m, 3), (m,) keep clear of every placed sphere."""
        gaps = np.linalg.norm(centres[:, None, :] - self.centres[None, :, :], axis=2)
        return bool(np.all(gaps >= radii[:, None] + self.radii[None, :]))

    def add(self, centres: np.ndarray, radii: np.ndarray) -> None:
        """Claim the space of spheres (m, 3), (m,)."""
        self.centres = np.concatenate([self.centres, centres])
        self.radii = np.concatenate([self.radii, radii])


def draw_counts(preset: Preset, rng: np.random.Generator) -> dict[str, int]:
    """Heavy-tailed particle and decoy counts of one run, around the real medians scaled to the field."""
    field = preset.shape[1] * preset.shape[2] / (REAL_FIELD[0] * REAL_FIELD[1]) * preset.crowding
    abundance = rng.normal(0.0, preset.run_spread)
    counts = {}
    for name, median in REAL_MEDIANS.items():
        expected = median * field * np.exp(abundance + rng.normal(0.0, preset.type_spread))
        counts[name] = max(preset.min_count, int(rng.poisson(expected)))
    for name, per_tomogram in preset.decoy_counts.items():
        counts[name] = int(rng.poisson(per_tomogram * field * preset.decoys))
    return counts


def compose(preset: Preset, voxel_size: float, rng: np.random.Generator) -> list[Placed]:
    """Place the drawn objects (particles, then decoys; largest first) apart, in the ice slab, rotated."""
    counts = draw_counts(preset, rng)
    nz, ny, nx = preset.shape
    slab = np.array([1 - preset.slab_fraction, 1 + preset.slab_fraction]) / 2 * (nz - 1) * voxel_size
    half_slab = (slab[1] - slab[0]) / 2
    particles = [(name, PARTICLE_BODIES[name]) for name in REAL_MEDIANS for _ in range(counts[name])]
    decoys = [(name, DECOYS[name](rng, half_slab)) for name in preset.decoy_counts for _ in range(counts[name])]
    bodies = sorted(particles, key=_largest_first) + sorted(decoys, key=_largest_first)
    extent = np.array([(nx - 1) * voxel_size, (ny - 1) * voxel_size])
    occupancy = Occupancy()
    scene = []
    for name, body in bodies:
        offsets, radii = body.spheres()
        for _ in range(MAX_TRIES):
            rotation = Rotation.random(rng=rng).as_matrix()
            spheres = offsets @ rotation.T
            low = slab[0] - (spheres[:, 2] - radii).min()  # lowest and highest centre z keeping it in the slab
            high = slab[1] - (spheres[:, 2] + radii).max()
            if low > high:
                continue
            xyz = np.array([*(rng.uniform(0.0, 1.0, 2) * extent), rng.uniform(low, high)])
            if occupancy.fits(spheres + xyz, radii):
                occupancy.add(spheres + xyz, radii)
                scene.append(Placed(name, body, angstrom_to_voxel(xyz, voxel_size)[0], rotation))
                break
    return scene


def _largest_first(item: tuple[str, Body]) -> float:
    """Sort key putting large bodies first: they are the hardest to fit."""
    return -item[1].radius


def ground_truth(scene: list[Placed], voxel_size: float) -> Truth:
    """Per CZII particle: Å (x, y, z) positions and copick transforms (the rotation, no shift)."""
    truth = {}
    for name in REAL_MEDIANS:
        placed = [p for p in scene if p.kind == name]
        transforms = np.tile(np.eye(4), (len(placed), 1, 1))
        transforms[:, :3, :3] = np.array([p.rotation for p in placed]).reshape(-1, 3, 3)
        positions = voxel_to_angstrom(np.array([p.centre for p in placed]).reshape(-1, 3), voxel_size)
        truth[name] = (positions, transforms)
    return truth
