"""Particle types: names, radii and labels from the copick config; metric weights and hard types from the suite's
`metric:` section, the copick objects' metadata, or the CZII competition, in that order."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from benchmark.errors import BenchError, BenchWarning

# The CZII competition's metric facts per particle: its weight, and whether it is hard to pick (the study's hard
# types). Other particles get weight 1, as in the competition's metric, and are not hard.
CZII_METRIC: dict[str, tuple[float, bool]] = {
    "apo-ferritin": (1.0, False),
    "beta-amylase": (0.0, False),
    "beta-galactosidase": (2.0, True),
    "ribosome": (1.0, False),
    "thyroglobulin": (2.0, True),
    "virus-like-particle": (1.0, False),
}
METADATA_KEY = "metric"  # a copick object's metadata may hold {"metric": {"weight": 2, "hard": true}}


@dataclass(frozen=True)
class Metric:
    """Metric settings a suite's `metric:` section (or `bench score`) gives: weights by particle name, and the hard
    types (None: each type's own; a list: exactly those), with where they were given for error messages."""

    weights: Mapping[str, Any] = field(default_factory=dict)
    hard: list[str] | None = None
    source: str = "the metric"


@dataclass(frozen=True)
class ParticleType:
    """One pickable particle: radius in Å, copick label, metric weight, whether it is hard, and RGBA colour."""

    name: str
    radius: float
    label: int
    weight: float
    hard: bool = False
    color: tuple[int, int, int, int] = (100, 100, 100, 255)


class ParticleTable:
    """The particle types of a project, ordered by copick label."""

    def __init__(self, particles: Iterable[ParticleType], unweighted: Iterable[str] = ()):
        self._by_name = {p.name: p for p in sorted(particles, key=lambda p: p.label)}
        if not self._by_name:
            raise BenchError(
                "the copick config has no pickable particles (is_particle: true); add them to pickable_objects"
            )
        given = set(unweighted)
        self.unweighted = [name for name in self._by_name if name in given]  # weight 1 for want of any given

    @classmethod
    def from_copick(cls, root) -> ParticleTable:
        """Read the particle objects of a copick root; objects without a radius cannot be scored. Weight and hardness
        come from the object's metadata (`metric`), else the CZII competition's, else weight 1 and not hard."""
        particles, unweighted = [], []
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
            weight, hard = CZII_METRIC.get(obj.name, (None, False))
            given = _metadata_metric(obj)
            weight, hard = given.get("weight", weight), given.get("hard", hard)
            if weight is None:
                unweighted.append(obj.name)
            particles.append(
                ParticleType(
                    name=obj.name,
                    radius=float(obj.radius),
                    label=int(obj.label),
                    weight=1.0 if weight is None else float(weight),
                    hard=hard,
                    color=tuple(obj.color),
                )
            )
        return cls(particles, unweighted)

    def with_metric(self, metric: Metric) -> ParticleTable:
        """A copy with the metric's weights and (when it names them) hard types; names the table does not know,
        weights that are not numbers >= 0, and weights that are all 0 are refused naming the metric's source."""
        weights, hard, where = metric.weights, metric.hard, metric.source
        self.check_names([*weights, *(hard or [])], where)
        for name, weight in weights.items():
            if not _is_weight(weight):
                raise BenchError(f"{where} gives '{name}' weight {weight!r}; a weight is a number >= 0")
        particles = [
            replace(p, weight=float(weights.get(p.name, p.weight)), hard=p.hard if hard is None else p.name in hard)
            for p in self
        ]
        if not any(p.weight > 0 for p in particles):
            raise BenchError(f"{where} leaves every particle type weight 0, so no score is defined; give one a weight")
        return ParticleTable(particles, set(self.unweighted) - set(weights))

    def warn_unweighted(self, fix: str) -> None:
        """One warning naming the particle types no source gave a weight (they count with weight 1), with `fix`."""
        if self.unweighted:
            warnings.warn(
                f"particle type(s) {', '.join(map(repr, self.unweighted))} are not CZII particles and have no metric "
                f"weight given: scored with weight 1 and, unless listed as hard, not hard; {fix}",
                BenchWarning,
                stacklevel=2,
            )

    @property
    def hard(self) -> list[str]:
        """Names of the hard particle types, in label order."""
        return [p.name for p in self if p.hard]

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


def _is_weight(value: Any) -> bool:
    """A metric weight: a finite number >= 0."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf


def _metadata_metric(obj: Any) -> dict[str, Any]:
    """The weight and hardness a copick object's metadata gives (`metric: {weight: W, hard: true}`), either optional."""
    given = (getattr(obj, "metadata", None) or {}).get(METADATA_KEY)
    if given is None:
        return {}
    fine = isinstance(given, dict) and not set(given) - {"weight", "hard"}
    if not fine or not _is_weight(given.get("weight", 0)) or not isinstance(given.get("hard", False), bool):
        raise BenchError(
            f"pickable object '{obj.name}' has metadata {METADATA_KEY!r} {given!r} in the copick config; give "
            '{"weight": a number >= 0, "hard": true or false} (either may be left out)'
        )
    return given


CZII_PARTICLES = tuple(
    ParticleType(name, radius, label, *CZII_METRIC[name], color=color)
    for name, radius, label, color in (
        ("apo-ferritin", 60.0, 1, (0, 117, 220, 128)),
        ("beta-amylase", 65.0, 2, (153, 63, 0, 128)),
        ("beta-galactosidase", 90.0, 3, (76, 0, 92, 128)),
        ("ribosome", 150.0, 4, (0, 92, 49, 128)),
        ("thyroglobulin", 130.0, 5, (43, 206, 72, 128)),
        ("virus-like-particle", 135.0, 6, (255, 204, 153, 128)),
    )
)
