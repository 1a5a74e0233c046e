"""Distance-based non-maximum suppression of picks."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from benchmark.coords import XYZ
from benchmark.data import Tomogram
from benchmark.particles import ParticleTable
from benchmark.registry import register_postprocess


@register_postprocess("nms")
def nms(
    picks: pd.DataFrame, tomogram: Tomogram, particles: ParticleTable, distance: float = 1.0, across_types: bool = False
) -> pd.DataFrame:
    """Keep the best-scored pick within `distance` x radius; per type, or across types with the larger radius."""
    picks = picks.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    radii = picks["particle_type"].map({p.name: p.radius for p in particles}).to_numpy(float) * distance
    groups = [picks.index.to_numpy()] if across_types else picks.groupby("particle_type").indices.values()
    keep = np.zeros(len(picks), dtype=bool)
    for rows in groups:
        keep[_suppress(picks.loc[rows, XYZ].to_numpy(float), radii[rows], rows)] = True
    return picks[keep].reset_index(drop=True)


def _suppress(points: np.ndarray, reach: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Greedy NMS over points already sorted by descending score; returns the kept rows."""
    tree = cKDTree(points)
    suppressed = np.zeros(len(points), dtype=bool)
    kept = []
    for i in range(len(points)):
        if suppressed[i]:
            continue
        kept.append(rows[i])
        neighbours = np.asarray(tree.query_ball_point(points[i], r=reach.max()), dtype=int)
        close = np.linalg.norm(points[neighbours] - points[i], axis=1) <= np.maximum(reach[i], reach[neighbours])
        suppressed[neighbours[close]] = True
    return np.asarray(kept, dtype=int)
