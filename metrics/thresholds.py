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

    Exact for the competition's matching (see `threshold_curves`). Ties go to the lower threshold (F4 favours
    recall); a type without references or without candidates keeps every candidate.
    """
    curves = threshold_curves(solution, candidates, particles)
    rows = []
    for particle in particles:
        curve = curves[curves["particle_type"] == particle.name]
        best = {"threshold": KEEP_ALL, "f4": 0.0}
        if len(curve) and curve["references"].iloc[0] and curve["kept"].iloc[0]:
            top = curve.iloc[int(np.argmax(curve["f4"].to_numpy()))]  # first maximum: the lowest threshold among ties
            best = {"threshold": float(top["threshold"]), "f4": float(top["f4"])}
        references = int(curve["references"].iloc[0]) if len(curve) else 0
        rows.append({"particle_type": particle.name, "references": references, **best})
    return pd.DataFrame(rows)


def threshold_curves(solution: pd.DataFrame, candidates: pd.DataFrame, particles: ParticleTable) -> pd.DataFrame:
    """Per type and candidate score t (ascending), the micro precision, recall and F4 of keeping score >= t.

    Exact for the competition's matching: a reference counts as found at threshold t when any candidate within reach
    has score >= t, so every threshold is evaluated at once from each reference's best score. A type without
    candidates has one row at KEEP_ALL (nothing kept, nothing found).
    """
    kept, _ = in_scope(solution, candidates, particles)
    best = reference_best_scores(solution, kept, particles)
    parts = []
    for particle in particles:
        scores = np.sort(kept.loc[kept["particle_type"] == particle.name, "score"].to_numpy(float))
        parts.append(_curve(scores, np.sort(best[particle.name])).assign(particle_type=particle.name))
    return pd.concat(parts, ignore_index=True)[["particle_type", *CURVE]]


CURVE = ["threshold", "references", "kept", "tp", "precision", "recall", "f4"]


def reference_best_scores(
    solution: pd.DataFrame, kept: pd.DataFrame, particles: ParticleTable
) -> dict[str, np.ndarray]:
    """Per type, the best score of the candidates within reach of each reference (-inf where none is)."""
    groups = dict(list(kept.groupby(GROUP)))
    found_by_type = {p.name: [np.empty(0)] for p in particles}
    for key, references in points_by_group(solution).items():
        best = np.full(len(references), -np.inf)
        found = groups.get(key)
        if found is not None:
            neighbours = cKDTree(found[XYZ].to_numpy(float)).query_ball_point(references, r=reach(particles, key[1]))
            scores = found["score"].to_numpy(float)
            best = np.array([scores[n].max() if n else -np.inf for n in neighbours])
        found_by_type[key[1]].append(best)
    return {name: np.concatenate(parts) for name, parts in found_by_type.items()}


def _curve(scores: np.ndarray, best: np.ndarray) -> pd.DataFrame:
    """The curve of one type from its sorted candidate scores and sorted per-reference best scores."""
    if len(scores) == 0:
        return pd.DataFrame([{"threshold": KEEP_ALL, "references": len(best), "kept": 0, "tp": 0, "precision": 0.0,
                              "recall": 0.0, "f4": 0.0}])  # fmt: skip
    thresholds = np.unique(scores)
    tp = len(best) - np.searchsorted(best, thresholds, side="left")
    kept = len(scores) - np.searchsorted(scores, thresholds, side="left")
    precision = tp / kept
    recall = tp / len(best) if len(best) else np.zeros(len(thresholds))
    return pd.DataFrame({"threshold": thresholds, "references": len(best), "kept": kept, "tp": tp,
                         "precision": precision, "recall": recall, "f4": f_beta(precision, recall, BETA)})  # fmt: skip


def apply_thresholds(candidates: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """Keep the candidates whose score reaches their type's threshold (every candidate of a type without one)."""
    limit = candidates["particle_type"].map(thresholds.set_index("particle_type")["threshold"]).astype(float)
    return candidates[candidates["score"] >= limit.fillna(KEEP_ALL)].reset_index(drop=True)
