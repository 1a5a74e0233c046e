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


def test_types_val_cannot_tune_keep_every_test_candidate_even_below_all_val_scores():
    columns = ["experiment", "particle_type", "x", "y", "z"]
    solution = pd.DataFrame([("TS_val", "ribosome", 500.0, 500.0, 500.0)], columns=columns)
    val = pd.DataFrame(
        [("TS_val", "virus-like-particle", 100.0, 100.0, 100.0, 0.9)],  # candidates, but no references
        columns=[*columns, "score"],
    )  # and ribosome: references, but no candidates
    tuned = tune_thresholds(solution, val, PARTICLES).set_index("particle_type")
    assert tuned.at["virus-like-particle", "references"] == 0 and tuned.at["ribosome", "references"] == 1
    assert (tuned.loc[["virus-like-particle", "ribosome"], "f4"] == 0.0).all()
    test = pd.DataFrame(
        {"particle_type": ["virus-like-particle", "ribosome", "ribosome"], "score": [0.1, -3.0, 0.2], "x": [0, 1, 2]}
    )
    assert apply_thresholds(test, tuned.reset_index())["x"].tolist() == [0, 1, 2]


def test_apply_thresholds_keeps_scores_at_or_above_their_type_threshold():
    candidates = pd.DataFrame(
        {"particle_type": ["ribosome", "ribosome", "apo-ferritin"], "score": [0.5, 0.4, 0.1], "x": [0, 1, 2]}
    )
    thresholds = pd.DataFrame({"particle_type": ["ribosome", "apo-ferritin"], "threshold": [0.5, 0.2]})
    assert apply_thresholds(candidates, thresholds)["x"].tolist() == [0]


def test_apply_thresholds_to_no_candidates_is_no_candidates():
    empty = pd.DataFrame({"particle_type": pd.Series([], dtype="str"), "score": pd.Series([], dtype=float)})
    thresholds = pd.DataFrame({"particle_type": ["ribosome"], "threshold": [0.5]})
    assert apply_thresholds(empty, thresholds).empty  # a step may drop every candidate of a run
