"""Where a picker's kept picks go wrong: how close its hits lie to the references (and in which direction), how its
score changes with the matching radius, how many picks it keeps against the references, and its duplicates.

Every function takes picks in the competition's layout (experiment, particle_type, x, y, z in Å; kept picks also a
score) and pools over the tomograms given, as the metric does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from benchmark.coords import XYZ
from benchmark.particles import ParticleTable
from metrics.fbeta import BETA, DISTANCE_MULTIPLIER, GROUP, count_matches, f_beta, points_by_group

#: matching radii as fractions of each particle's radius; the metric's is DISTANCE_MULTIPLIER
RADIUS_FRACTIONS = (0.25, DISTANCE_MULTIPLIER, 0.75, 1.0)
OFFSETS = ["dz", "dy", "dx"]  # pick minus reference, Å, in the arrays' (z, y, x) order
EMPTY = np.empty((0, 3))


def nearest_picks(references: pd.DataFrame, kept: pd.DataFrame, particles: ParticleTable) -> pd.DataFrame:
    """Per reference, the nearest kept pick of its type and tomogram: its row label in `kept` (-1 where there is none),
    the distance and the offset pick - reference (Å), and `hit`: whether it lies within the metric's reach."""
    groups = dict(list(kept.groupby(GROUP)))
    parts = []
    for key, found in references.groupby(GROUP, sort=False):
        points = found[XYZ].to_numpy(float)
        picks = groups.get(key)
        rows = pd.DataFrame(index=found.index, columns=["pick", "distance", *OFFSETS], dtype=float)
        rows["pick"] = -1
        if picks is not None and len(picks):
            distance, index = cKDTree(picks[XYZ].to_numpy(float)).query(points)
            offset = picks[XYZ].to_numpy(float)[index] - points
            rows["pick"], rows["distance"] = picks.index.to_numpy()[index], distance
            rows[OFFSETS] = offset[:, ::-1]
        rows["hit"] = rows["distance"] <= particles[key[1]].radius * DISTANCE_MULTIPLIER
        parts.append(rows)
    nearest = pd.concat(parts) if parts else pd.DataFrame(columns=["pick", "distance", *OFFSETS, "hit"])
    return references.join(nearest.astype({"pick": int, "hit": bool}))


def localisation(nearest: pd.DataFrame) -> pd.DataFrame:
    """Per type, over the references a kept pick found: how many, the median and 90th percentile of the distance to
    the nearest pick, and the mean offset along z, y and x (Å): a systematic shift shows as a non-zero mean."""
    hits = nearest[nearest["hit"]]
    grouped = hits.groupby("particle_type")
    table = pd.DataFrame({
        "hits": grouped.size(),
        "median_distance": grouped["distance"].median(),
        "p90_distance": grouped["distance"].quantile(0.9),
        **{f"mean_{axis}": grouped[axis].mean() for axis in OFFSETS},
    })  # fmt: skip
    return table.reindex(nearest["particle_type"].unique()).fillna({"hits": 0}).astype({"hits": int})


def radius_sweep(
    references: pd.DataFrame,
    kept: pd.DataFrame,
    particles: ParticleTable,
    fractions: tuple[float, ...] = RADIUS_FRACTIONS,
) -> pd.DataFrame:
    """Per matching radius (a fraction of each type's radius) and type: TP, FP, FN and F4 of the kept picks, summed
    over the tomograms, with a row `weighted` holding the competition score at that radius."""
    truth, found = points_by_group(references), points_by_group(kept)
    total = sum(p.weight for p in particles)
    rows = []
    for fraction in fractions:
        for particle in particles:
            keys = [key for key in truth.keys() | found.keys() if key[1] == particle.name]
            counts = np.array([count_matches(truth.get(k, EMPTY), found.get(k, EMPTY), particle.radius * fraction)
                               for k in keys]).reshape(-1, 3).sum(axis=0)  # fmt: skip
            tp, fp, fn = (int(c) for c in counts)
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            rows.append({"fraction": fraction, "particle_type": particle.name, "tp": tp, "fp": fp, "fn": fn,
                         "f4": float(f_beta(precision, recall, BETA)), "weight": particle.weight})  # fmt: skip
    sweep = pd.DataFrame(rows)
    weighted = (sweep["f4"] * sweep["weight"]).groupby(sweep["fraction"]).sum() / total
    extra = pd.DataFrame({"fraction": weighted.index, "particle_type": "weighted", "f4": weighted.to_numpy()})
    return pd.concat([sweep.drop(columns="weight"), extra], ignore_index=True)


def duplicates(kept: pd.DataFrame, particles: ParticleTable) -> pd.Series:
    """Per kept pick, whether a better-scored kept pick of its type and tomogram lies within one radius of it (equal
    scores: the earlier row counts as the better)."""
    flags = pd.Series(False, index=kept.index)
    for key, found in kept.groupby(GROUP, sort=False):
        ranked = found.sort_values("score", ascending=False, kind="stable")
        pairs = cKDTree(ranked[XYZ].to_numpy(float)).query_pairs(particles[key[1]].radius, output_type="ndarray")
        if len(pairs):
            flags[ranked.index.to_numpy()[pairs.max(axis=1)]] = True  # the lower-ranked pick of each close pair
    return flags


def count_errors(references: pd.DataFrame, kept: pd.DataFrame, particles: ParticleTable) -> pd.DataFrame:
    """Per tomogram and type: references, kept picks, the count error (kept - references) and the duplicates among
    the kept picks with their rate."""
    flagged = kept.assign(duplicate=duplicates(kept, particles))
    index = pd.MultiIndex.from_product([sorted(references["experiment"].unique()), particles.names], names=GROUP)
    table = pd.DataFrame({
        "references": references.groupby(GROUP).size(),
        "kept": flagged.groupby(GROUP).size(),
        "duplicates": flagged.groupby(GROUP)["duplicate"].sum(),
    }).reindex(index).fillna(0).astype(int)  # fmt: skip
    table["count_error"] = table["kept"] - table["references"]
    table["duplicate_rate"] = table["duplicates"] / table["kept"].where(table["kept"] > 0)
    return table.reset_index()
