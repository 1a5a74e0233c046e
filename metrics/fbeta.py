"""The CZII Kaggle competition metric (weighted F-beta of particle picks), reproduced exactly.

The reference is the competition's `score(solution, submission, ...)`; its quirks are kept on purpose:

- A reference counts as found (TP) when any candidate of the same type and tomogram lies within
  DISTANCE_MULTIPLIER x its radius (distance <= r, as `KDTree.query_ball_tree`); TP is the number of
  DISTINCT matched references, not a one-to-one assignment.
- FP = candidates - TP and FN = references - TP. One candidate within reach of two references gives
  TP 2 for a single candidate, so FP can be NEGATIVE and precision (hence a type's F-beta, and in
  principle the score) can exceed 1; that is the competition's number and it is reported as is.
- TP/FP/FN are summed over the tomograms (micro) before precision, recall and F-beta are computed.
- Only experiments present in the solution count: submission rows of other experiments are dropped
  before anything else, including the unknown-particle-type check.
- The weighted sum of per-type F-beta is divided by the sum of ALL weights of the particle table
  (7 for CZII: beta-amylase's weight 0 is in the denominator). A type without references anywhere
  in the solution scores F-beta 0 (the competition skips it, which adds the same 0).

Where the competition would crash or accept nonsense, a one-line BenchError is raised instead: unknown
particle types (in the solution, or in the kept submission rows), NaN/infinite coordinates, and a
particle table whose weights are all 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from benchmark.coords import XYZ
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable

BETA = 4
DISTANCE_MULTIPLIER = 0.5
GROUP = ["experiment", "particle_type"]
COUNTS = ["tp", "fp", "fn"]


@dataclass(frozen=True, eq=False)
class MetricResult:
    """Per-type precision/recall/F1/F4/TP/FP/FN, the competition score (`weighted`) and the plain mean F4."""

    per_type: pd.DataFrame
    weighted: float
    mean: float
    ignored_experiments: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """A JSON-ready dict: weighted, mean, ignored_experiments and one record per particle type."""
        return {
            "weighted": self.weighted,
            "mean": self.mean,
            "ignored_experiments": list(self.ignored_experiments),
            "per_type": self.per_type.to_dict(orient="records"),
        }


def matched_references(references: np.ndarray, candidates: np.ndarray, radius: float) -> np.ndarray:
    """Per reference of one tomogram and type, whether a candidate lies within `radius` (the competition's TP)."""
    references = np.asarray(references, dtype=float).reshape(-1, 3)
    candidates = np.asarray(candidates, dtype=float).reshape(-1, 3)
    if len(references) == 0 or len(candidates) == 0:
        return np.zeros(len(references), dtype=bool)
    return cKDTree(candidates).query_ball_point(references, r=radius, return_length=True) > 0


def count_matches(references: np.ndarray, candidates: np.ndarray, radius: float) -> tuple[int, int, int]:
    """(TP, FP, FN) of one tomogram and type: TP = distinct references with a candidate within `radius`."""
    candidates = np.asarray(candidates, dtype=float).reshape(-1, 3)
    matched = matched_references(references, candidates, radius)
    tp = int(matched.sum())
    return tp, len(candidates) - tp, len(matched) - tp


def f_beta(precision: ArrayLike, recall: ArrayLike, beta: float) -> np.ndarray:
    """F-beta from precision and recall (scalars or arrays), 0 where both are 0 (the competition's formula)."""
    precision, recall = np.broadcast_arrays(np.asarray(precision, dtype=float), np.asarray(recall, dtype=float))
    denominator = beta**2 * precision + recall
    numerator = (1 + beta**2) * precision * recall
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def score_picks(
    solution: pd.DataFrame, submission: pd.DataFrame, particles: ParticleTable | None = None
) -> MetricResult:
    """Score submission picks against solution picks (columns experiment, particle_type, x, y, z in Å)."""
    particles = ParticleTable.czii() if particles is None else particles
    total_weight = sum(p.weight for p in particles)
    if total_weight <= 0:
        raise BenchError("every particle type has metric weight 0, so the weighted score is undefined")
    submission, ignored = in_scope(solution, submission, particles)
    per_type = _per_type_table(_type_counts(solution, submission, particles), particles)
    return MetricResult(
        per_type=per_type,
        weighted=float((per_type["f4"] * per_type["weight"]).sum() / total_weight),
        mean=float(per_type["f4"].mean()),
        ignored_experiments=ignored,
    )


def in_scope(
    solution: pd.DataFrame, submission: pd.DataFrame, particles: ParticleTable
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The submission rows of the solution's experiments and the ignored experiments, both checked for names and NaN."""
    experiments = set(solution["experiment"])
    ignored = tuple(sorted(set(submission["experiment"]) - experiments))
    submission = submission[submission["experiment"].isin(experiments)]
    particles.check_names(solution["particle_type"].unique(), "the solution")
    particles.check_names(submission["particle_type"].unique(), "the submission")
    _check_finite(solution, "the solution")
    _check_finite(submission, "the submission")
    return submission, ignored


def _check_finite(picks: pd.DataFrame, where: str) -> None:
    """Raise a BenchError when some x, y or z value is NaN or infinite."""
    bad = int((~np.isfinite(picks[XYZ].to_numpy(dtype=float))).any(axis=1).sum())
    if bad:
        raise BenchError(f"{where} has {bad} row(s) with missing or infinite x, y or z; fix the file")


def points_by_group(picks: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """The (n, 3) Å coordinates of the picks of each (experiment, particle_type)."""
    return {key: group[XYZ].to_numpy(dtype=float) for key, group in picks.groupby(GROUP, sort=False)}


def _type_counts(solution: pd.DataFrame, submission: pd.DataFrame, particles: ParticleTable) -> pd.DataFrame:
    """TP, FP, FN per particle type of the table, summed over the tomograms (micro)."""
    references = points_by_group(solution)
    candidates = points_by_group(submission)
    empty = np.empty((0, 3))
    rows = [
        (key[1], *count_matches(references.get(key, empty), candidates.get(key, empty), reach(particles, key[1])))
        for key in references.keys() | candidates.keys()
    ]
    counts = pd.DataFrame(rows, columns=["particle_type", *COUNTS]).groupby("particle_type")[COUNTS].sum()
    return counts.reindex(particles.names, fill_value=0).astype(int)


def reach(particles: ParticleTable, name: str) -> float:
    """The matching distance of a particle type: DISTANCE_MULTIPLIER x its radius."""
    return particles[name].radius * DISTANCE_MULTIPLIER


def _per_type_table(counts: pd.DataFrame, particles: ParticleTable) -> pd.DataFrame:
    """One row per particle type in label order: weight, precision, recall, F1, F4, TP, FP, FN."""
    rows = []
    for particle in particles:
        tp, fp, fn = (int(counts.at[particle.name, c]) for c in COUNTS)
        precision = tp / (tp + fp) if tp + fp > 0 else 0.0
        recall = tp / (tp + fn) if tp + fn > 0 else 0.0
        rows.append(
            {
                "particle_type": particle.name,
                "weight": particle.weight,
                "precision": precision,
                "recall": recall,
                "f1": float(f_beta(precision, recall, 1)),
                "f4": float(f_beta(precision, recall, BETA)),
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }
        )
    return pd.DataFrame(rows)
