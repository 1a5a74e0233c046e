"""Per-slice 2D detections merged into 3D picks: a detector run over every slice, its boxes linked across
neighbouring slices, one scored pick per cluster."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from architectures.parts.peaks import picks_from_voxels
from architectures.parts.slices import SliceSpec, slice_images
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable

DETECTION_COLUMNS = ["particle_type", "z", "y", "x", "score"]  # z: slice index; y, x: voxel indices (fractional)

#: one image's detections: boxes (n, 4) as x1, y1, x2, y2 pixels, copick labels (n,) and scores (n,)
SliceBoxes = tuple[np.ndarray, np.ndarray, np.ndarray]


def detect_slices(
    volume: np.ndarray,
    spec: SliceSpec,
    batch: int,
    detect: Callable[[np.ndarray], Sequence[SliceBoxes]],
    particles: ParticleTable,
) -> pd.DataFrame:
    """Run `detect` on the images (n, channels, y, x) of every slice of a normalised volume, `batch` slices at a
    time, and gather its boxes as detections (particle_type, z, y, x voxel indices of the box centre, score)."""
    found = []
    for start in range(0, volume.shape[0], batch):
        z = np.arange(start, min(start + batch, volume.shape[0]))
        for index, boxes in zip(z, detect(slice_images(volume, z, spec)), strict=True):
            found.append(slice_detections(index, *boxes, particles))
    return pd.concat(found, ignore_index=True)


def slice_detections(
    z: int, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, particles: ParticleTable
) -> pd.DataFrame:
    """One slice's boxes (x1, y1, x2, y2 pixels, edges on pixel borders) as detections at the voxel index of their
    centre; labels are copick labels, and boxes of a label no particle has are dropped."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    names = label_names(particles)
    frame = pd.DataFrame(
        {
            "particle_type": [names.get(int(label)) for label in labels],
            "z": float(z),
            "y": (boxes[:, 1] + boxes[:, 3]) / 2 - 0.5,  # box edges to the voxel index of the centre
            "x": (boxes[:, 0] + boxes[:, 2]) / 2 - 0.5,
            "score": np.asarray(scores, dtype=float),
        }
    )
    return frame.dropna(subset=["particle_type"])


def label_names(particles: ParticleTable) -> dict[int, str]:
    """The particle of each copick label, the class a 2D detector predicts (labels must be distinct and >= 1)."""
    names = {p.label: p.name for p in particles}
    if len(names) != len(particles) or min(names) < 1:
        raise BenchError(f"copick labels {[p.label for p in particles]} must be distinct and >= 1 to name classes")
    return names


def picks_from_detections(
    detections: pd.DataFrame,
    tomogram: Tomogram,
    particles: ParticleTable,
    level: int,
    merge_xy: float,
    merge_z: float,
    z_fraction: float,
) -> pd.DataFrame:
    """Merge the detections of slices at a pyramid level into scored Å picks: links reach `merge_xy` x the radius in
    x-y and `merge_z` slices in z, and a track as deep as the target slices (`z_fraction` of the radius each side of
    the centre) scores its mean confidence."""
    radii = {p.name: p.radius / tomogram.level_voxel_size(level) for p in particles}
    clusters = merge_detections(
        detections,
        reach_xy={name: merge_xy * r for name, r in radii.items()},
        reach_z=merge_z,
        expected_slices={name: 2 * z_fraction * r + 1 for name, r in radii.items()},
    )
    return clusters_to_picks(clusters, tomogram, level)


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
