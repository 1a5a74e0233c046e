"""Weighted voting in 3D: the candidate picks of several models fused into one scored candidate per cluster."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from benchmark.coords import XYZ
from benchmark.interface import PREDICTION_COLUMNS
from benchmark.particles import ParticleTable


def fuse_candidates(
    candidates: Sequence[pd.DataFrame], weights: Sequence[float], particles: ParticleTable, distance: float
) -> pd.DataFrame:
    """Per particle type, the candidates of all members (Å picks with scores) within `distance` x the type's radius
    of each other form one cluster (KD-tree pairs, chains linked); one fused pick per cluster.

    The fused point is the mean of the cluster's candidates weighted by score x member weight; the fused score is
    sum over members of weight x the member's best score in the cluster, divided by the sum of all weights: a member
    that did not vote counts 0, so agreement raises the score. Scores are taken as the members give them (negative
    ones count 0 in the weighted mean of the position).
    """
    if len(candidates) != len(weights):
        raise ValueError(f"{len(candidates)} members' candidates but {len(weights)} weights")
    total = float(sum(weights))
    frames = []
    for particle in particles:
        rows = [(m, c[c["particle_type"] == particle.name]) for m, c in enumerate(candidates)]
        member = np.concatenate([np.full(len(r), m) for m, r in rows]).astype(int)
        if not len(member):
            continue
        xyz = np.concatenate([r[XYZ].to_numpy(float) for _, r in rows])
        score = np.concatenate([r["score"].to_numpy(float) for _, r in rows])
        pairs = cKDTree(xyz).query_pairs(r=distance * particle.radius, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xyz),) * 2)
        count, cluster = connected_components(graph, directed=False)
        weight = np.asarray(weights, float)[member]
        best = pd.DataFrame({"cluster": cluster, "member": member, "score": score})
        best = best.groupby(["cluster", "member"])["score"].max().reset_index()
        member_weight = np.asarray(weights, float)[best["member"].to_numpy()]
        votes = np.bincount(best["cluster"].to_numpy(), member_weight * best["score"].to_numpy(), count)
        pull = weight * np.clip(score, 0.0, None) + 1e-12  # every candidate pulls a little: all-zero scores average
        centre = np.stack([np.bincount(cluster, pull * xyz[:, axis], count) for axis in range(3)], 1)
        frame = pd.DataFrame(centre / np.bincount(cluster, pull, count)[:, None], columns=XYZ)
        frame.insert(0, "particle_type", particle.name)
        frame["score"] = votes / total
        frames.append(frame)
    return (
        pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS] if frames else pd.DataFrame(columns=PREDICTION_COLUMNS)
    )
