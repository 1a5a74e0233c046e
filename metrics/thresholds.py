"""Per-particle score thresholds that maximise the competition's F-beta on the validation runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from benchmark.coords import XYZ
from benchmark.particles import ParticleTable
from metrics.fbeta import BETA, GROUP, f_beta, in_scope, points_by_group, reach

KEEP_ALL = -np.inf  # the threshold of a type the validation runs cannot tune


def tune_thresholds(solution: pd.DataFrame, candidates: pd.DataFrame, particles: ParticleTable) -> pd.DataFrame:
    """For each type, the score threshold (keep score >= threshold) with the best micro F4 over the runs.

    Exact for the competition's matching: a reference counts as found at threshold t when any candidate
    within reach has score >= t, so every threshold is evaluated at once from each reference's best score.
    Ties go to the lower threshold (F4 favours recall); a type without references or without candidates
    keeps every candidate.
    """
    kept, _ = in_scope(solution, candidates, particles)
    groups = dict(list(kept.groupby(GROUP)))
    best_scores = {p.name: [] for p in particles}
    for key, references in points_by_group(solution).items():
        best = np.full(len(references), -np.inf)
        found = groups.get(key)
        if found is not None:
            neighbours = cKDTree(found[XYZ].to_numpy(float)).query_ball_point(references, r=reach(particles, key[1]))
            scores = found["score"].to_numpy(float)
            best = np.array([scores[n].max() if n else -np.inf for n in neighbours])
        best_scores[key[1]].append(best)
    rows = []
    for particle in particles:
        scores = np.sort(kept.loc[kept["particle_type"] == particle.name, "score"].to_numpy(float))
        best = np.sort(np.concatenate(best_scores[particle.name] or [np.empty(0)]))
        rows.append({"particle_type": particle.name, "references": len(best), **_best_threshold(scores, best)})
    return pd.DataFrame(rows)


def _best_threshold(scores: np.ndarray, best: np.ndarray) -> dict[str, float]:
    """Threshold and F4 maximising F4, given sorted candidate scores and sorted per-reference best scores."""
    if len(best) == 0 or len(scores) == 0:
        return {"threshold": KEEP_ALL, "f4": 0.0}
    thresholds = np.unique(scores)
    tp = len(best) - np.searchsorted(best, thresholds, side="left")
    kept = len(scores) - np.searchsorted(scores, thresholds, side="left")
    f4 = f_beta(tp / kept, tp / len(best), BETA)
    index = int(np.argmax(f4))  # first maximum: the lowest threshold among ties
    return {"threshold": float(thresholds[index]), "f4": float(f4[index])}


def apply_thresholds(candidates: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """Keep the candidates whose score reaches their type's threshold (every candidate of a type without one)."""
    limit = candidates["particle_type"].map(thresholds.set_index("particle_type")["threshold"]).astype(float)
    return candidates[candidates["score"] >= limit.fillna(KEEP_ALL)].reset_index(drop=True)
