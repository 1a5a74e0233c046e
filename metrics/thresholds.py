"""Per-particle score thresholds that maximise the competition's F-beta on the validation runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from benchmark.coords import XYZ
from benchmark.particles import ParticleTable
from metrics.fbeta import BETA, DISTANCE_MULTIPLIER, GROUP


def tune_thresholds(solution: pd.DataFrame, candidates: pd.DataFrame, particles: ParticleTable) -> pd.DataFrame:
    """For each type, the score threshold (keep score >= threshold) with the best micro F4 over the runs.

    Exact for the competition's matching: a reference counts as found at threshold t when any candidate
    within reach has score >= t, so every threshold is evaluated at once from each reference's best score.
    Ties go to the lower threshold (F4 favours recall); a type without references keeps every candidate.
    """
    best_scores = {p.name: [] for p in particles}
    kept = candidates[candidates["experiment"].isin(set(solution["experiment"]))]
    groups = dict(list(kept.groupby(GROUP)))
    for (experiment, name), refs in solution.groupby(GROUP):
        found = groups.get((experiment, name))
        best = np.full(len(refs), -np.inf)
        if found is not None and len(found):
            reach = particles[name].radius * DISTANCE_MULTIPLIER
            neighbours = cKDTree(found[XYZ].to_numpy(float)).query_ball_point(refs[XYZ].to_numpy(float), r=reach)
            scores = found["score"].to_numpy(float)
            best = np.array([scores[n].max() if n else -np.inf for n in neighbours])
        best_scores[name].append(best)
    rows = []
    for particle in particles:
        scores = np.sort(kept.loc[kept["particle_type"] == particle.name, "score"].to_numpy(float))
        best = np.sort(np.concatenate(best_scores[particle.name] or [np.empty(0)]))
        rows.append({"particle_type": particle.name, "references": len(best), **_best_threshold(scores, best)})
    return pd.DataFrame(rows)


def _best_threshold(scores: np.ndarray, best: np.ndarray) -> dict[str, float]:
    """Threshold and F4 maximising F4, given sorted candidate scores and sorted per-reference best scores."""
    if len(best) == 0 or len(scores) == 0:
        return {"threshold": float(scores[0]) if len(scores) else 0.0, "f4": 0.0}
    thresholds = np.unique(scores)
    tp = len(best) - np.searchsorted(best, thresholds, side="left")
    kept = len(scores) - np.searchsorted(scores, thresholds, side="left")
    precision = tp / kept
    recall = tp / len(best)
    denominator = BETA**2 * precision + recall
    f4 = np.divide((1 + BETA**2) * precision * recall, denominator, out=np.zeros_like(recall), where=denominator > 0)
    index = int(np.argmax(f4))  # first maximum: the lowest threshold among ties
    return {"threshold": float(thresholds[index]), "f4": float(f4[index])}


def apply_thresholds(candidates: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """Keep the candidates whose score reaches their type's threshold."""
    limit = candidates["particle_type"].map(thresholds.set_index("particle_type")["threshold"])
    return candidates[candidates["score"] >= limit.fillna(-np.inf)].reset_index(drop=True)
