"""Particle types: names, radii and labels from the copick config, weights from the competition."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from benchmark.errors import BenchError

# The CZII competition's metric weights; objects it does not know get weight 1, as in its metric.
COMPETITION_WEIGHTS: dict[str, float] = {
    "apo-ferritin": 1.0,
    "beta-amylase": 0.0,
    "beta-galactosidase": 2.0,
    "ribosome": 1.0,
    "thyroglobulin": 2.0,
    "virus-like-particle": 1.0,
}


@dataclass(frozen=True)
class ParticleType:
    """One pickable particle: radius in Å, copick label, metric weight and RGBA colour."""

    name: str
    radius: float
    label: int
    weight: float
    color: tuple[int, int, int, int] = (100, 100, 100, 255)


class ParticleTable:
    """The particle types of a project, ordered by copick label."""

    def __init__(self, particles: Iterable[ParticleType]):
        self._by_name = {p.name: p for p in sorted(particles, key=lambda p: p.label)}
        if not self._by_name:
            raise BenchError(
                "the copick config has no pickable particles (is_particle: true); add them to pickable_objects"
            )

    @classmethod
    def from_copick(cls, root) -> ParticleTable:
        """Read the particle objects of a copick root; objects without a radius cannot be scored."""
        particles = []
        for obj in root.pickable_objects:
            if not obj.is_particle:
                continue
            if obj.radius is None:
                raise BenchError(f"pickable object '{obj.name}' has no radius in the copick config; add 'radius' (Å)")
            if not math.isfinite(obj.radius) or obj.radius <= 0:
                raise BenchError(
                    f"pickable object '{obj.name}' has radius {obj.radius:g} Å in the copick config; a particle's "
                    "radius must be a positive number of Å: fix 'radius'"
                )
            particles.append(
                ParticleType(
                    name=obj.name,
                    radius=float(obj.radius),
                    label=int(obj.label),
                    weight=COMPETITION_WEIGHTS.get(obj.name, 1.0),
                    color=tuple(obj.color),
                )
            )
        return cls(particles)

    @classmethod
    def czii(cls) -> ParticleTable:
        """The CZII competition's six particles, as its copick config defines them."""
        return cls(CZII_PARTICLES)

    def __iter__(self) -> Iterator[ParticleType]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> ParticleType:
        try:
            return self._by_name[name]
        except KeyError:
            raise BenchError(f"unknown particle type '{name}'; known types: {', '.join(self.names)}") from None

    @property
    def names(self) -> list[str]:
        """Particle names in label order."""
        return list(self._by_name)

    def check_names(self, names: Iterable[str], where: str) -> None:
        """Raise a BenchError naming every particle type in `names` that the table does not know."""
        unknown = sorted(set(names) - set(self._by_name))
        if unknown:
            raise BenchError(
                f"{where} names unknown particle type(s) {', '.join(map(repr, unknown))}; "
                f"known types: {', '.join(self.names)}"
            )


CZII_PARTICLES = tuple(
    ParticleType(name, radius, label, COMPETITION_WEIGHTS[name], color)
    for name, radius, label, color in (
        ("apo-ferritin", 60.0, 1, (0, 117, 220, 128)),
        ("beta-amylase", 65.0, 2, (153, 63, 0, 128)),
        ("beta-galactosidase", 90.0, 3, (76, 0, 92, 128)),
        ("ribosome", 150.0, 4, (0, 92, 49, 128)),
        ("thyroglobulin", 130.0, 5, (43, 206, 72, 128)),
        ("virus-like-particle", 135.0, 6, (255, 204, 153, 128)),
    )
)
