"""The CZII competition metric: hand-computed cases and the official Kaggle code as an oracle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import KDTree

from benchmark.errors import BenchError
from benchmark.particles import ParticleTable, ParticleType
from metrics import BETA, DISTANCE_MULTIPLIER, count_matches, f_beta, score_picks

CZII = ParticleTable.czii()
NAMES = CZII.names
COLUMNS = ["experiment", "particle_type", "x", "y", "z"]


# --- the official Kaggle metric, verbatim (only formatted), as the oracle ---------------------------------


class ParticipantVisibleError(Exception):
    pass


def compute_metrics(reference_points, reference_radius, candidate_points):
    num_reference_particles = len(reference_points)
    num_candidate_particles = len(candidate_points)
    if len(reference_points) == 0:
        return 0, num_candidate_particles, 0
    if len(candidate_points) == 0:
        return 0, 0, num_reference_particles
    ref_tree = KDTree(reference_points)
    candidate_tree = KDTree(candidate_points)
    raw_matches = candidate_tree.query_ball_tree(ref_tree, r=reference_radius)
    matches_within_threshold = []
    for match in raw_matches:
        matches_within_threshold.extend(match)
    # Prevent submitting multiple matches per particle.
    matches_within_threshold = set(matches_within_threshold)
    tp = int(len(matches_within_threshold))  # noqa: RUF046 (verbatim)
    fp = int(num_candidate_particles - tp)
    fn = int(num_reference_particles - tp)
    return tp, fp, fn


def kaggle_score(solution, submission, row_id_column_name, distance_multiplier=0.5, beta=4):
    particle_radius = {
        "apo-ferritin": 60,
        "beta-amylase": 65,
        "beta-galactosidase": 90,
        "ribosome": 150,
        "thyroglobulin": 130,
        "virus-like-particle": 135,
    }
    weights = {
        "apo-ferritin": 1,
        "beta-amylase": 0,
        "beta-galactosidase": 2,
        "ribosome": 1,
        "thyroglobulin": 2,
        "virus-like-particle": 1,
    }
    particle_radius = {k: v * distance_multiplier for k, v in particle_radius.items()}
    split_experiments = set(solution["experiment"].unique())
    submission = submission.loc[submission["experiment"].isin(split_experiments)]
    if not set(submission["particle_type"].unique()).issubset(set(weights.keys())):
        raise ParticipantVisibleError("Unrecognized `particle_type`.")
    results = {pt: {"total_tp": 0, "total_fp": 0, "total_fn": 0} for pt in solution["particle_type"].unique()}
    for experiment in split_experiments:
        for particle_type in solution["particle_type"].unique():
            reference_radius = particle_radius[particle_type]
            select = (solution["experiment"] == experiment) & (solution["particle_type"] == particle_type)
            reference_points = solution.loc[select, ["x", "y", "z"]].values
            select = (submission["experiment"] == experiment) & (submission["particle_type"] == particle_type)
            candidate_points = submission.loc[select, ["x", "y", "z"]].values
            if len(reference_points) == 0:
                reference_points = np.array([])
                reference_radius = 1
            if len(candidate_points) == 0:
                candidate_points = np.array([])
            tp, fp, fn = compute_metrics(reference_points, reference_radius, candidate_points)
            results[particle_type]["total_tp"] += tp
            results[particle_type]["total_fp"] += fp
            results[particle_type]["total_fn"] += fn
    aggregate_fbeta = 0.0
    for particle_type, totals in results.items():
        tp = totals["total_tp"]
        fp = totals["total_fp"]
        fn = totals["total_fn"]
        precision = tp / (tp + fp) if tp + fp > 0 else 0
        recall = tp / (tp + fn) if tp + fn > 0 else 0
        fbeta = (
            (1 + beta**2) * (precision * recall) / (beta**2 * precision + recall) if (precision + recall) > 0 else 0.0
        )
        aggregate_fbeta += fbeta * weights.get(particle_type, 1.0)
    aggregate_fbeta = aggregate_fbeta / sum(weights.values())
    return aggregate_fbeta


# --- helpers -----------------------------------------------------------------------------------------------


def picks(*rows: tuple) -> pd.DataFrame:
    """A picks frame from (experiment, particle_type, x, y, z) tuples."""
    return pd.DataFrame(list(rows), columns=COLUMNS).astype({c: float for c in "xyz"})


def row(result, name: str) -> dict:
    """The per-type row of one particle type as a dict."""
    return result.per_type.set_index("particle_type").loc[name].to_dict()


def centres(experiment: str = "TS_1") -> pd.DataFrame:
    """One reference of every CZII type, 1000 Å apart."""
    return picks(*[(experiment, name, 1000.0 * i, 0.0, 0.0) for i, name in enumerate(NAMES)])


# --- count_matches -----------------------------------------------------------------------------------------


def test_constants_are_the_competitions():
    assert (BETA, DISTANCE_MULTIPLIER) == (4, 0.5)


def test_several_candidates_on_one_reference_count_once():
    # 3 candidates around one reference: 1 distinct reference matched -> tp 1, fp 3 - 1 = 2, fn 0
    refs = np.array([[0.0, 0.0, 0.0]])
    cands = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -3.0]])
    assert count_matches(refs, cands, 30.0) == (1, 2, 0)


def test_one_candidate_within_reach_of_two_references_gives_negative_fp():
    # references 40 Å apart, candidate in the middle (20 Å from both, reach 30): both matched -> tp 2,
    # fp = 1 candidate - 2 = -1, fn 0 (the competition's quirk)
    refs = np.array([[0.0, 0.0, 0.0], [40.0, 0.0, 0.0]])
    cands = np.array([[20.0, 0.0, 0.0]])
    assert count_matches(refs, cands, 30.0) == (2, -1, 0)


def test_empty_sides():
    refs = np.array([[0.0, 0.0, 0.0], [500.0, 0.0, 0.0]])
    assert count_matches(refs, np.empty((0, 3)), 30.0) == (0, 0, 2)
    assert count_matches(np.empty((0, 3)), refs, 30.0) == (0, 2, 0)
    assert count_matches(np.empty((0, 3)), np.empty((0, 3)), 30.0) == (0, 0, 0)


def test_distance_boundary_is_inclusive():
    refs = np.array([[0.0, 0.0, 0.0]])
    # (18, 24, 0) is exactly 30 Å away (18^2 + 24^2 = 900 = 30^2): matched, as distance <= r
    assert count_matches(refs, np.array([[18.0, 24.0, 0.0]]), 30.0) == (1, 0, 0)
    assert count_matches(refs, np.array([[30.0 + 1e-9, 0.0, 0.0]]), 30.0) == (0, 1, 1)


def test_fbeta_formula():
    # P 0.5, R 1: F1 = 2*0.5/1.5 = 2/3; F4 = 17*0.5/(16*0.5 + 1) = 8.5/9 = 17/18
    assert f_beta(0.5, 1.0, 1) == pytest.approx(2 / 3)
    assert f_beta(0.5, 1.0, 4) == pytest.approx(17 / 18)
    assert f_beta(0.0, 0.0, 4) == 0.0


# --- score_picks: hand-computed cases -------------------------------------------------------------------


def test_result_shape_and_json():
    result = score_picks(centres(), centres())
    table = result.per_type
    assert list(table.columns) == ["particle_type", "weight", "precision", "recall", "f1", "f4", "tp", "fp", "fn"]
    assert list(table["particle_type"]) == NAMES
    assert all(pd.api.types.is_integer_dtype(table[c]) for c in ["tp", "fp", "fn"])
    decoded = json.loads(json.dumps(result.to_dict()))
    assert decoded["weighted"] == 1.0
    assert [r["particle_type"] for r in decoded["per_type"]] == NAMES


def test_perfect_picks_score_one():
    result = score_picks(centres(), centres())
    assert result.weighted == pytest.approx(1.0)
    assert result.mean == pytest.approx(1.0)


def test_beta_amylase_weight_zero_stays_in_denominator():
    solution = centres()
    # everything but beta-amylase (weight 0) perfect: (1 + 2 + 1 + 2 + 1) / 7 = 1; mean F4 = 5/6
    result = score_picks(solution, solution[solution["particle_type"] != "beta-amylase"])
    assert result.weighted == pytest.approx(1.0)
    assert result.mean == pytest.approx(5 / 6)
    amylase = row(result, "beta-amylase")
    assert (amylase["tp"], amylase["fn"], amylase["f4"]) == (0, 1, 0.0)
    # only apo-ferritin (weight 1) perfect: 1 / 7; mean 1/6
    result = score_picks(solution, solution[solution["particle_type"] == "apo-ferritin"])
    assert result.weighted == pytest.approx(1 / 7)
    assert result.mean == pytest.approx(1 / 6)


def test_counts_are_summed_over_tomograms_before_f():
    solution = picks(
        ("A", "apo-ferritin", 0, 0, 0),
        ("B", "apo-ferritin", 0, 0, 0),
        ("B", "apo-ferritin", 500, 0, 0),
        ("B", "apo-ferritin", 1000, 0, 0),
    )
    submission = picks(
        ("A", "apo-ferritin", 5, 0, 0),  # A: hit + 3 false positives -> tp 1, fp 3, fn 0
        ("A", "apo-ferritin", 300, 0, 0),
        ("A", "apo-ferritin", 600, 0, 0),
        ("A", "apo-ferritin", 900, 0, 0),
        ("B", "apo-ferritin", 0, 5, 0),  # B: 1 of 3 found -> tp 1, fp 0, fn 2
    )
    # summed: tp 2, fp 3, fn 2 -> P 2/5, R 2/4, F4 = 17 * 0.2 / (16 * 0.4 + 0.5) = 3.4 / 6.9 = 34/69
    # (the average of per-tomogram F4, (0.85 + 17/49) / 2 = 0.598, would be wrong)
    result = score_picks(solution, submission)
    apo = row(result, "apo-ferritin")
    assert (apo["tp"], apo["fp"], apo["fn"]) == (2, 3, 2)
    assert (apo["precision"], apo["recall"]) == pytest.approx((0.4, 0.5))
    assert apo["f1"] == pytest.approx(2 * 0.2 / 0.9)
    assert apo["f4"] == pytest.approx(34 / 69)
    assert result.weighted == pytest.approx(34 / 69 / 7)


def test_type_without_references_in_one_tomogram_counts_candidates_as_fp():
    solution = picks(("A", "ribosome", 0, 0, 0), ("B", "apo-ferritin", 0, 0, 0))
    submission = picks(
        ("A", "ribosome", 10, 0, 0),  # A: tp 1
        ("B", "ribosome", 0, 0, 0),  # B has no ribosome: both are false positives
        ("B", "ribosome", 900, 0, 0),
    )
    # ribosome: tp 1, fp 2, fn 0 -> P 1/3, R 1, F4 = 17/3 / (16/3 + 1) = 17/19; weighted (17/19) / 7
    result = score_picks(solution, submission)
    ribosome = row(result, "ribosome")
    assert (ribosome["tp"], ribosome["fp"], ribosome["fn"]) == (1, 2, 0)
    assert ribosome["f4"] == pytest.approx(17 / 19)
    assert result.weighted == pytest.approx(17 / 19 / 7)
    assert result.weighted == pytest.approx(kaggle_score(solution, submission, "id"), abs=1e-12)


def test_type_without_references_anywhere_scores_zero_with_its_false_positives():
    solution = picks(("A", "ribosome", 0, 0, 0))
    submission = picks(
        ("A", "ribosome", 0, 0, 0),
        ("A", "virus-like-particle", 0, 0, 0),
        ("A", "virus-like-particle", 50, 0, 0),
    )
    # virus-like-particle: tp 0, fp 2, fn 0, F4 0; only ribosome (weight 1) counts: 1/7
    result = score_picks(solution, submission)
    vlp = row(result, "virus-like-particle")
    assert (vlp["tp"], vlp["fp"], vlp["fn"], vlp["f4"]) == (0, 2, 0, 0.0)
    assert result.weighted == pytest.approx(1 / 7)
    assert result.weighted == pytest.approx(kaggle_score(solution, submission, "id"), abs=1e-12)


def test_submission_experiments_absent_from_the_solution_are_ignored():
    solution = centres("TS_1")
    submission = pd.concat([centres("TS_1"), centres("TS_99")], ignore_index=True)
    result = score_picks(solution, submission)
    assert result.weighted == pytest.approx(1.0)
    assert result.per_type["fp"].tolist() == [0] * 6
    assert result.ignored_experiments == ("TS_99",)


def test_unknown_particle_type_in_the_submission_is_a_bench_error():
    submission = pd.concat([centres(), picks(("TS_1", "proteasome", 0, 0, 0))], ignore_index=True)
    with pytest.raises(BenchError, match="proteasome") as info:
        score_picks(centres(), submission)
    message = str(info.value)
    assert "\n" not in message
    assert "known types: apo-ferritin" in message


def test_unknown_particle_type_only_in_an_ignored_experiment_is_fine():
    submission = pd.concat([centres(), picks(("TS_99", "proteasome", 0, 0, 0))], ignore_index=True)
    assert score_picks(centres(), submission).weighted == pytest.approx(1.0)


def test_unknown_particle_type_in_the_solution_is_a_bench_error():
    with pytest.raises(BenchError, match=r"solution.*proteasome"):
        score_picks(picks(("TS_1", "proteasome", 0, 0, 0)), centres())


def test_non_finite_coordinates_are_a_bench_error():
    submission = picks(("TS_1", "ribosome", float("nan"), 0, 0))
    with pytest.raises(BenchError, match="submission has 1 row"):
        score_picks(centres(), submission)


def test_distance_boundary_uses_half_the_table_radius():
    # apo-ferritin radius 60 Å -> reach 30 Å: (18, 24, 0) Å away is exactly 30 -> found
    solution = picks(("A", "apo-ferritin", 100, 100, 100))
    inside = score_picks(solution, picks(("A", "apo-ferritin", 118, 124, 100)))
    assert row(inside, "apo-ferritin")["tp"] == 1
    outside = score_picks(solution, picks(("A", "apo-ferritin", 130.001, 100, 100)))
    assert (row(outside, "apo-ferritin")["tp"], row(outside, "apo-ferritin")["fp"]) == (0, 1)


def test_radii_and_weights_come_from_the_particle_table():
    table = ParticleTable([ParticleType("blob", 20.0, 1, 3.0), ParticleType("dot", 8.0, 2, 1.0)])
    solution = picks(("A", "blob", 0, 0, 0), ("A", "dot", 0, 0, 0))
    # blob reach 10: found at 10 Å (F4 1, weight 3); dot reach 4: missed at 10 Å -> (3 * 1 + 0) / 4
    result = score_picks(solution, picks(("A", "blob", 10, 0, 0), ("A", "dot", 10, 0, 0)), table)
    assert result.per_type["particle_type"].tolist() == ["blob", "dot"]
    assert result.weighted == pytest.approx(0.75)
    assert result.mean == pytest.approx(0.5)


def test_precision_above_one_is_kept():
    # two apo-ferritin references 40 Å apart, one candidate between them: tp 2, fp -1, fn 0,
    # P = 2 / 1 = 2, R = 1, F4 = 17 * 2 / (32 + 1) = 34/33 > 1, as the competition computes it
    solution = picks(("A", "apo-ferritin", 0, 0, 0), ("A", "apo-ferritin", 40, 0, 0))
    submission = picks(("A", "apo-ferritin", 20, 0, 0))
    result = score_picks(solution, submission)
    apo = row(result, "apo-ferritin")
    assert (apo["tp"], apo["fp"], apo["fn"]) == (2, -1, 0)
    assert apo["precision"] == pytest.approx(2.0)
    assert apo["f4"] == pytest.approx(34 / 33)
    assert result.weighted == pytest.approx(kaggle_score(solution, submission, "id"), abs=1e-12)


# --- oracle: random solution/submission pairs against the Kaggle code ----------------------------------


def random_pair(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random solution and a submission with jittered hits, duplicates, false positives and extra runs."""
    rng = np.random.default_rng(seed)
    experiments = [f"TS_{i}" for i in range(rng.integers(1, 5))]
    present = [n for n in NAMES if rng.random() < 0.8]
    solution, submission = [], []
    for experiment in experiments:
        for name in NAMES:
            refs = rng.uniform(0, 3000, (int(rng.integers(2, 15)) if name in present else 0, 3))
            if len(refs) and rng.random() < 0.3:  # two references 20 Å apart, one candidate between them
                refs[1] = refs[0] + [20.0, 0.0, 0.0]
                cands = np.concatenate([(refs[:1] + refs[1:2]) / 2, refs[2:] + rng.normal(0, 2, refs[2:].shape)])
            else:
                cands = _candidates(rng, refs, CZII[name].radius / 2)
            solution.append(_frame(experiment, name, refs))
            submission.append(_frame(experiment, name, cands))
    for name in rng.choice(NAMES, 3):  # an experiment the solution does not have
        submission.append(_frame("TS_extra", name, rng.uniform(0, 3000, (4, 3))))
    solution, submission = pd.concat(solution, ignore_index=True), pd.concat(submission, ignore_index=True)
    if seed % 2:  # integer Å: many candidates exactly on the reach boundary
        solution[["x", "y", "z"]] = solution[["x", "y", "z"]].round()
        submission[["x", "y", "z"]] = submission[["x", "y", "z"]].round()
    return solution, submission


def _candidates(rng: np.random.Generator, refs: np.ndarray, reach: float) -> np.ndarray:
    """Jittered hits on most references, duplicates of some hits and a few false positives."""
    hits = refs[rng.random(len(refs)) < 0.8]
    hits = hits + rng.normal(0, reach * 0.5, hits.shape)
    dups = hits[rng.random(len(hits)) < 0.3]
    dups = dups + rng.normal(0, 5, dups.shape)
    fps = rng.uniform(0, 3000, (int(rng.integers(0, 4)), 3))
    return np.concatenate([hits, dups, fps])


def _frame(experiment: str, name: str, xyz: np.ndarray) -> pd.DataFrame:
    """Picks of one experiment and type."""
    frame = pd.DataFrame(xyz, columns=["x", "y", "z"])
    frame.insert(0, "particle_type", name)
    frame.insert(0, "experiment", experiment)
    return frame


@pytest.mark.parametrize("seed", range(12))
def test_matches_the_kaggle_metric(seed: int):
    solution, submission = random_pair(seed)
    expected = kaggle_score(solution.copy(), submission.copy(), "id")
    assert score_picks(solution, submission).weighted == pytest.approx(expected, abs=1e-12)


def test_exact_boundaries_match_the_kaggle_metric():
    rng = np.random.default_rng(7)
    refs = rng.integers(0, 2000, (200, 3)).astype(float)
    # offsets of length exactly 30 (apo-ferritin's reach) or 31
    offsets = np.array([[18, 24, 0], [0, -30, 0], [-24, 0, 18], [31, 0, 0], [0, 0, -31]], dtype=float)
    cands = refs + offsets[rng.integers(0, len(offsets), len(refs))]
    solution = _frame("A", "apo-ferritin", refs)
    submission = _frame("A", "apo-ferritin", cands)
    expected = compute_metrics(refs, 30.0, cands)
    assert count_matches(refs, cands, 30.0) == expected
    assert score_picks(solution, submission).weighted == pytest.approx(
        kaggle_score(solution, submission, "id"), abs=1e-12
    )
