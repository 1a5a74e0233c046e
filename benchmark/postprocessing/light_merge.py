"""Light merging: candidates of one type closer than a fraction of its radius become one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.coords import XYZ
from benchmark.data import Tomogram
from benchmark.particles import ParticleTable
from benchmark.postprocessing.nms import greedy_clusters
from benchmark.registry import register_postprocess


@register_postprocess("light-merge")
def light_merge(
    picks: pd.DataFrame, tomogram: Tomogram, particles: ParticleTable, distance: float = 0.5
) -> pd.DataFrame:
    """Greedy by score, as NMS: each kept candidate absorbs the candidates of its type within `distance` x radius
    that it suppresses, and moves to their score-weighted mean position (equal weights in a cluster with a score
    that is not positive), keeping its own score and other columns. Clusters do not chain: every member lies within
    the distance of its cluster's best candidate."""
    picks, leader = greedy_clusters(picks, particles, distance)
    if picks.empty:
        return picks
    scores = picks["score"].to_numpy(float)
    clusters, index = np.unique(leader, return_inverse=True)
    positive = np.bincount(index, weights=(scores <= 0).astype(float)) == 0
    weights = np.where(positive[index], scores, 1.0)
    total = np.bincount(index, weights=weights)
    merged = picks.loc[clusters].reset_index(drop=True)
    merged[XYZ] = np.stack([np.bincount(index, weights=weights * picks[c].to_numpy(float)) / total for c in XYZ], 1)
    return merged
