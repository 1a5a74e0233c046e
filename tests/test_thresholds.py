"""Validation-tuned score thresholds: exact against a brute-force sweep of the competition metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.particles import ParticleTable
from metrics.fbeta import score_picks
from metrics.thresholds import apply_thresholds, tune_thresholds

PARTICLES = ParticleTable.czii()


def random_case(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """References in two runs and scored candidates: jittered hits, duplicates and false positives."""
    rng = np.random.default_rng(seed)
    solution, candidates = [], []
    for experiment in ("TS_a", "TS_b"):
        for particle in PARTICLES.names[:4]:
            refs = rng.uniform(0, 3000, size=(rng.integers(0, 6), 3))
            solution += [(experiment, particle, *xyz) for xyz in refs]
            hits = refs[rng.random(len(refs)) < 0.7]
            jitter = rng.normal(0, PARTICLES[particle].radius * 0.2, size=hits.shape)
            noise = rng.uniform(0, 3000, size=(rng.integers(0, 8), 3))
            for xyz in np.concatenate([hits + jitter, hits + jitter[::-1], noise]):
                candidates.append((experiment, particle, *xyz, float(rng.random())))
    columns = ["experiment", "particle_type", "x", "y", "z"]
    return pd.DataFrame(solution, columns=columns), pd.DataFrame(candidates, columns=[*columns, "score"])


@pytest.mark.parametrize("seed", range(6))
def test_tuned_threshold_is_the_best_of_a_brute_force_sweep(seed):
    solution, candidates = random_case(seed)
    tuned = tune_thresholds(solution, candidates, PARTICLES).set_index("particle_type")
    for particle in PARTICLES.names[:4]:
        scores = np.unique(candidates.loc[candidates["particle_type"] == particle, "score"])
        if not len(scores) or not (solution["particle_type"] == particle).any():
            continue
        sweep = {}
        for threshold in scores:
            kept = candidates[(candidates["particle_type"] != particle) | (candidates["score"] >= threshold)]
            per_type = score_picks(solution, kept, PARTICLES).per_type.set_index("particle_type")
            sweep[threshold] = per_type.at[particle, "f4"]
        best = max(sweep.values())
        assert tuned.at[particle, "f4"] == pytest.approx(best, abs=1e-12)
        assert tuned.at[particle, "threshold"] == min(t for t, f in sweep.items() if f == pytest.approx(best))


def test_thresholds_keep_everything_for_types_without_references():
    solution, candidates = random_case(0)
    tuned = tune_thresholds(solution, candidates, PARTICLES).set_index("particle_type")
    assert tuned.at["virus-like-particle", "references"] == 0
    assert tuned.at["virus-like-particle", "f4"] == 0.0


def test_apply_thresholds_keeps_scores_at_or_above_their_type_threshold():
    candidates = pd.DataFrame(
        {"particle_type": ["ribosome", "ribosome", "apo-ferritin"], "score": [0.5, 0.4, 0.1], "x": [0, 1, 2]}
    )
    thresholds = pd.DataFrame({"particle_type": ["ribosome", "apo-ferritin"], "threshold": [0.5, 0.2]})
    assert apply_thresholds(candidates, thresholds)["x"].tolist() == [0]
