"""Light merging: candidates of one type closer than a fraction of its radius become one."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from benchmark.coords import XYZ
from benchmark.data import Tomogram
from benchmark.particles import ParticleTable
from benchmark.registry import register_postprocess


@register_postprocess("light-merge")
def light_merge(
    picks: pd.DataFrame, tomogram: Tomogram, particles: ParticleTable, distance: float = 0.5
) -> pd.DataFrame:
    """Merge candidates of one type linked by distances under `distance` x radius into one at their score-weighted
    mean position (equal weights when a score is not positive), with the best member's score and other columns."""
    if picks.empty:
        return picks
    picks = picks.reset_index(drop=True)
    radius = picks["particle_type"].map({p.name: p.radius for p in particles}).to_numpy(float)
    cluster = np.arange(len(picks))
    for name in picks["particle_type"].unique():
        members = np.flatnonzero(picks["particle_type"].to_numpy() == name)
        points = picks.loc[members, XYZ].to_numpy(float)
        pairs = cKDTree(points).query_pairs(r=distance * radius[members[0]], output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(members),) * 2)
        cluster[members] = members[_first_members(connected_components(graph, directed=False)[1])]
    scores = picks["score"].to_numpy(float)
    weights = np.clip(scores, 0, None) if (scores > 0).all() else np.ones(len(picks))
    index = np.unique(cluster, return_inverse=True)[1]
    total = np.bincount(index, weights=weights)
    centres = np.stack([np.bincount(index, weights=weights * picks[c].to_numpy(float)) / total for c in XYZ], axis=1)
    best = pd.Series(scores).groupby(index).idxmax().to_numpy()
    merged = picks.loc[best].reset_index(drop=True)
    merged[XYZ] = centres
    return merged.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _first_members(labels: np.ndarray) -> np.ndarray:
    """For each point, the index of the first point with its component label: a stable cluster id."""
    _, first = np.unique(labels, return_index=True)
    return first[labels]
