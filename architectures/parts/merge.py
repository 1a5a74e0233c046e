"""Per-slice 2D detections merged into 3D picks: linked across neighbouring slices, one scored pick per cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from architectures.parts.peaks import picks_from_voxels
from benchmark.data import Tomogram

DETECTION_COLUMNS = ["particle_type", "z", "y", "x", "score"]  # z: slice index; y, x: voxel indices (fractional)


def merge_detections(
    detections: pd.DataFrame, reach_xy: dict[str, float], reach_z: float, expected_slices: dict[str, float]
) -> pd.DataFrame:
    """Link the detections of each type whose centres lie within `reach_xy[type]` in x and y and `reach_z` slices in
    z (chains link too: KD-tree pairs, then connected components); one pick per cluster.

    A cluster's centre is the confidence-weighted mean of its detections. Its score is the sum, over its slices, of
    the best confidence on the slice, divided by the larger of `expected_slices[type]` and its slice count: a track
    as long as a particle is deep scores its mean confidence, a one-slice blip a fraction of it. Every cluster is
    returned (particle_type, z, y, x, score, slices): the runner tunes the score thresholds on val.
    """
    frames = []
    for name, rows in detections.groupby("particle_type", sort=False):
        zyx = rows[["z", "y", "x"]].to_numpy(float)
        scaled = zyx / np.array([reach_z, reach_xy[name], reach_xy[name]])
        pairs = cKDTree(scaled).query_pairs(r=1.0, p=np.inf, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(rows),) * 2)
        count, cluster = connected_components(graph, directed=False)
        confidence = rows["score"].to_numpy(float)
        weight = np.bincount(cluster, confidence, minlength=count)
        centre = np.stack([np.bincount(cluster, confidence * zyx[:, axis], count) for axis in range(3)], 1)
        best = pd.DataFrame({"cluster": cluster, "z": zyx[:, 0].round(), "score": confidence})
        best = best.groupby(["cluster", "z"])["score"].max().groupby("cluster")
        slices = best.size().to_numpy()
        frame = pd.DataFrame(centre / weight[:, None], columns=["z", "y", "x"])
        frame.insert(0, "particle_type", name)
        frame["score"] = best.sum().to_numpy() / np.maximum(expected_slices[name], slices)
        frame["slices"] = slices
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*DETECTION_COLUMNS, "slices"])


def clusters_to_picks(clusters: pd.DataFrame, tomogram: Tomogram, level: int) -> pd.DataFrame:
    """Merged clusters (voxel indices of a pyramid level) as Å picks (particle_type, x, y, z, score) in the volume."""
    picks = [
        picks_from_voxels(rows[["z", "y", "x"]].to_numpy(float), rows["score"].to_numpy(float), name,
                          tomogram.voxel_size, level, tomogram.shape)
        for name, rows in clusters.groupby("particle_type", sort=False)
    ]  # fmt: skip
    return pd.concat(picks, ignore_index=True) if picks else picks_from_voxels(np.empty((0, 3)), [], "", 1.0)
