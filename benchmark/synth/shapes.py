"""Procedural density models: the six CZII particles and the decoys, as unions of soft-edged primitives.

Densities are in units of solid protein (1.0 = 1.35 g/cm³ = 0.81 Da/Å³ above the ice). A body with a mass
is normalised so that its voxels integrate to that mass; the hard classes are faint because they are light
or spread out, as in real tomograms. Coordinates are Å in the body's own (x, y, z) frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

PROTEIN_DENSITY = 0.81  # Da/Å³
EDGE = 6.0  # Å beyond a primitive's surface that the anti-aliasing ramp reaches (half a 10 Å voxel)
MEMBRANE_DENSITY = 0.8  # lipid head-group leaflets
FILAMENT_DENSITY = 0.6
DISC_DENSITY = 0.5
GOLDEN = (1 + 5**0.5) / 2
# One normal per opposite pair of the icosahedron's 20 faces (the dodecahedron's vertex directions).
ICOSAHEDRON_NORMALS = np.array(
    [
        (1, 1, 1),
        (1, 1, -1),
        (1, -1, 1),
        (1, -1, -1),
        (0, 1 / GOLDEN, GOLDEN),
        (0, 1 / GOLDEN, -GOLDEN),
        (1 / GOLDEN, GOLDEN, 0),
        (1 / GOLDEN, -GOLDEN, 0),
        (GOLDEN, 0, 1 / GOLDEN),
        (GOLDEN, 0, -1 / GOLDEN),
    ]
) / np.sqrt(3)
ICOSAHEDRON_INRADIUS = 0.7947  # inradius / circumradius: the polyhedral norm's value along a vertex
Vector = tuple[float, float, float]
# Fibonacci lattice on the unit sphere: directions for bounding ellipsoids
_GOLDEN_ANGLE = np.pi * (3 - np.sqrt(5)) * np.arange(4000)
_HEIGHT = np.linspace(-1, 1, 4000)
SPHERE_POINTS = np.stack(
    [np.sqrt(1 - _HEIGHT**2) * np.cos(_GOLDEN_ANGLE), np.sqrt(1 - _HEIGHT**2) * np.sin(_GOLDEN_ANGLE), _HEIGHT], 1
)


class Primitive(Protocol):
    """A solid described by an (approximate) signed distance in Å, negative inside."""

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray: ...

    def reach(self, centre: np.ndarray) -> float: ...


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid with semi-axes along x, y, z (Å)."""

    semi_axes: Vector

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """First-order distance (g - 1) / |grad g| of the normalised radius g; exact for spheres."""
        a, b, c = self.semi_axes
        g = np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2)
        gradient = np.sqrt((x / a**2) ** 2 + (y / b**2) ** 2 + (z / c**2) ** 2)
        return (g - 1) * g / np.maximum(gradient, 1e-6)

    def reach(self, centre: np.ndarray) -> float:
        """Farthest distance of the surface from the body origin, when centred at `centre` (surface sampled)."""
        return float(np.linalg.norm(centre + SPHERE_POINTS * self.semi_axes, axis=1).max())


@dataclass(frozen=True)
class Shell:
    """A hollow shell of mid radius and thickness (Å); facets 0 is a sphere, 1 an icosahedron."""

    radius: float
    thickness: float
    facets: float = 0.0

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Distance from the mid surface minus half the thickness, on a sphere-icosahedron blended radius."""
        rho = np.sqrt(x**2 + y**2 + z**2)
        if self.facets:
            polyhedral = np.abs(np.tensordot(ICOSAHEDRON_NORMALS, np.stack(np.broadcast_arrays(x, y, z)), 1))
            scale = (1 + ICOSAHEDRON_INRADIUS) / 2
            rho = (1 - self.facets) * rho + self.facets * polyhedral.max(axis=0) / scale
        return np.abs(rho - self.radius) - self.thickness / 2

    def reach(self, centre: np.ndarray) -> float:
        """Farthest distance from the body origin: the outer surface along the icosahedron's vertices."""
        shrink = 1 - self.facets * (1 - 2 * ICOSAHEDRON_INRADIUS / (1 + ICOSAHEDRON_INRADIUS))
        return float(np.linalg.norm(centre)) + (self.radius + self.thickness / 2) / shrink


@dataclass(frozen=True)
class Cylinder:
    """A solid cylinder of radius and length (Å) along z: a filament piece or, short, a disc."""

    radius: float
    length: float

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Largest of the radial and axial distances (exact outside the rims)."""
        return np.maximum(np.sqrt(x**2 + y**2) - self.radius, np.abs(z) - self.length / 2)

    def reach(self, centre: np.ndarray) -> float:
        """Farthest distance from the body origin: a rim."""
        return float(np.linalg.norm(centre) + np.hypot(self.radius, self.length / 2))


@dataclass(frozen=True)
class Bilayer:
    """A spherical vesicle: two dense lipid leaflets `spacing` Å apart around a mid radius (Å)."""

    radius: float
    spacing: float = 40.0
    leaflet: float = 10.0

    def sdf(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Distance from the nearer leaflet's mid surface minus half a leaflet's thickness."""
        depth = np.abs(np.sqrt(x**2 + y**2 + z**2) - self.radius)
        return np.abs(depth - self.spacing / 2) - self.leaflet / 2

    def reach(self, centre: np.ndarray) -> float:
        """Farthest distance from the body origin: the outer leaflet."""
        return float(np.linalg.norm(centre)) + self.radius + (self.spacing + self.leaflet) / 2


@dataclass(frozen=True)
class Part:
    """A primitive placed at `centre` (Å) of its body; `amount` is a mass share or a density (see Body)."""

    primitive: Primitive
    amount: float = 1.0
    centre: Vector = (0.0, 0.0, 0.0)

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, voxel_size: float) -> np.ndarray:
        """Occupancy in [0, 1], with a one-voxel linear ramp across the surface (mild anti-aliasing)."""
        cx, cy, cz = self.centre
        return np.clip(0.5 - self.primitive.sdf(x - cx, y - cy, z - cz) / voxel_size, 0, 1)

    @property
    def reach(self) -> float:
        """Distance from the body's origin beyond which this part has no density."""
        return self.primitive.reach(np.array(self.centre)) + EDGE


@dataclass(frozen=True)
class Body:
    """A rigid density model. With `mass_kda`, part amounts are mass shares; without, densities."""

    parts: tuple[Part, ...]
    mass_kda: float | None = None
    exclusion: tuple[tuple[Vector, float], ...] | None = None

    @cached_property
    def radius(self) -> float:
        """Bounding radius (Å): the density is zero farther from the body's origin."""
        return max(part.reach for part in self.parts)

    def spheres(self) -> tuple[np.ndarray, np.ndarray]:
        """Exclusion spheres (body-frame centres (m, 3) Å, radii (m,)) that others may not overlap."""
        spheres = self.exclusion or (((0.0, 0.0, 0.0), self.radius),)
        return np.array([c for c, _ in spheres], dtype=float), np.array([r for _, r in spheres], dtype=float)

    def density(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, voxel_size: float) -> np.ndarray:
        """Density (solid-protein units) at body-frame points; a massive body integrates to its mass."""
        total = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), dtype=np.float32)
        for part in self.parts:
            inside = part.inside(x, y, z, voxel_size)
            if self.mass_kda is None:
                total += part.amount * inside
            else:
                voxels = self.mass_kda * 1000 / (PROTEIN_DENSITY * voxel_size**3)
                total += inside * (part.amount * voxels / max(float(inside.sum()), 1e-6))
        return total


def _d2(offset: Vector) -> tuple[Vector, ...]:
    """The four positions of a D2-symmetric tetramer from one subunit's offset."""
    x, y, z = offset
    return ((x, y, z), (x, -y, -z), (-x, y, -z), (-x, -y, z))


def _tetramer(semi_axes: Vector, offset: Vector, mass_kda: float) -> Body:
    """Four equal ellipsoidal subunits in D2 symmetry."""
    return Body(tuple(Part(Ellipsoid(semi_axes), 0.25, c) for c in _d2(offset)), mass_kda)


PARTICLE_BODIES: dict[str, Body] = {
    # 24-mer cage, 12 nm across, 8 nm cavity
    "apo-ferritin": Body((Part(Shell(51.0, 26.0)),), 480.0),
    # small, featureless: four compact subunits, ~10 nm
    "beta-amylase": _tetramer((30.0, 25.0, 22.0), (22.0, 20.0, 0.0), 224.0),
    # D2 tetramer, ~18 x 13 x 8 nm, half-filled envelope
    "beta-galactosidase": _tetramer((48.0, 38.0, 30.0), (40.0, 28.0, 10.0), 465.0),
    # 80S: large subunit (2/3 of the mass) and small subunit (1/3), ~27 nm
    "ribosome": Body(
        (
            Part(Ellipsoid((105.0, 100.0, 90.0)), 2 / 3, (0.0, 0.0, -30.0)),
            Part(Ellipsoid((100.0, 75.0, 55.0)), 1 / 3, (0.0, 0.0, 85.0)),
        ),
        4300.0,
    ),
    # elongated antiparallel dimer, ~25 x 12 x 7 nm, each chain a row of five globular domains
    "thyroglobulin": Body(
        tuple(
            Part(Ellipsoid((36.0, 30.0, 25.0)), 0.1, (side * x, side * (28.0 + 12.0 * np.cos(x / 60)), 8.0 * (-1) ** i))
            for side in (1, -1)
            for i, x in enumerate(np.linspace(-96.0, 96.0, 5))
        ),
        660.0,
    ),
    # thin icosahedral capsid, ~27 nm across
    "virus-like-particle": Body((Part(Shell(120.0, 24.0, facets=0.5)),), 2500.0),
}


def albumin(rng: np.random.Generator, max_radius: float) -> Body:
    """A serum-albumin-sized (66 kDa) blob, the commonest small decoy."""
    return Body((Part(Ellipsoid((38.0, 28.0, 18.0))),), 66.0)


def protein_complex(rng: np.random.Generator, max_radius: float) -> Body:
    """An unlabelled complex of 2-5 ellipsoidal subunits, 100-900 kDa: confusable with the hard classes."""
    count = int(rng.integers(2, 6))
    mass = float(np.exp(rng.uniform(np.log(100.0), np.log(900.0))))
    shares = rng.dirichlet(np.full(count, 3.0))
    sphere_radii = (3 * shares * mass * 1000 / (4 * np.pi * PROTEIN_DENSITY)) ** (1 / 3)
    aspects = rng.uniform(0.7, 1.4, (count, 3))
    semi_axes = sphere_radii[:, None] * aspects / np.cbrt(aspects.prod(axis=1, keepdims=True))
    centres = rng.normal(0.0, 0.6 * sphere_radii.mean(), (count, 3))
    parts = tuple(
        Part(Ellipsoid(tuple(axes)), float(share), tuple(centre))
        for axes, share, centre in zip(semi_axes, shares, centres, strict=True)
    )
    return Body(parts, mass)


def filament(rng: np.random.Generator, max_radius: float) -> Body:
    """A straight filament piece (actin- to microtubule-like), excluded as a chain of spheres."""
    radius, length = rng.uniform(25.0, 45.0), rng.uniform(300.0, 900.0)
    links = np.linspace(-length / 2, length / 2, int(np.ceil(length / radius)) + 1)
    reach = float(np.hypot(radius, length / (2 * (len(links) - 1)))) + EDGE
    exclusion = tuple(((0.0, 0.0, float(z)), reach) for z in links)
    return Body((Part(Cylinder(radius, length), FILAMENT_DENSITY),), exclusion=exclusion)


def disc(rng: np.random.Generator, max_radius: float) -> Body:
    """A flat disc (lipoprotein, membrane patch seen edge-on)."""
    return Body((Part(Cylinder(rng.uniform(60.0, 150.0), rng.uniform(20.0, 40.0)), DISC_DENSITY),))


def vesicle(rng: np.random.Generator, max_radius: float) -> Body:
    """A lipid vesicle of 20-60 nm radius, no larger than the ice slab holds (when it holds 10 nm)."""
    largest = max(100.0, min(600.0, max_radius - Bilayer(0.0).reach(np.zeros(3)) - EDGE))
    return Body((Part(Bilayer(rng.uniform(min(200.0, largest), largest)), MEMBRANE_DENSITY),))


DecoyFactory = Callable[[np.random.Generator, float], Body]
DECOYS: dict[str, DecoyFactory] = {
    "vesicle": vesicle,
    "filament": filament,
    "disc": disc,
    "complex": protein_complex,
    "albumin": albumin,
}
