"""Distance-based non-maximum suppression of picks, and the greedy clusters it forms."""

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
    picks, leader = greedy_clusters(picks, particles, distance, across_types)
    return picks[leader == np.arange(len(picks))].reset_index(drop=True)


def greedy_clusters(
    picks: pd.DataFrame, particles: ParticleTable, distance: float, across_types: bool = False
) -> tuple[pd.DataFrame, np.ndarray]:
    """The picks sorted by descending score, and for each the pick that greedy NMS keeps in its place: itself when
    kept, else the best kept pick within `distance` x radius (the larger of the two radii) that suppressed it."""
    picks = picks.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    if picks.empty:
        return picks, np.zeros(0, dtype=int)
    reach = picks["particle_type"].map({p.name: p.radius for p in particles}).to_numpy(float) * distance
    points = picks[XYZ].to_numpy(float)
    better, worse = cKDTree(points).query_pairs(r=reach.max(), output_type="ndarray").T  # better < worse: by score
    close = np.linalg.norm(points[better] - points[worse], axis=1) <= np.maximum(reach[better], reach[worse])
    if not across_types:
        types = picks["particle_type"].to_numpy()
        close &= types[better] == types[worse]
    better, worse = better[close], worse[close]
    kept = greedy_survivors(len(picks), better, worse)
    leader = np.arange(len(picks))
    by_kept = kept[better]
    np.minimum.at(leader, worse[by_kept], better[by_kept])  # the best kept neighbour (lowest index: highest score)
    return picks, leader


def greedy_survivors(count: int, better: np.ndarray, worse: np.ndarray) -> np.ndarray:
    """The picks greedy NMS keeps, taking them in index order, given the (better, worse) index pairs that conflict.

    Without a Python loop over picks: in rounds, a pick with a kept better neighbour is suppressed, and a pick whose
    better neighbours are all decided (none kept) is kept; the best undecided pick is decided every round, and the
    rounds number the longest chain of conflicts, not the picks.
    """
    kept, suppressed = np.zeros(count, dtype=bool), np.zeros(count, dtype=bool)
    while not (kept | suppressed).all():
        suppressed[worse[kept[better]]] = True
        undecided = ~(kept | suppressed)
        waiting = np.zeros(count, dtype=bool)
        waiting[worse[undecided[better]]] = True
        kept |= undecided & ~waiting
    return kept
