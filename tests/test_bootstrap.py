"""The verdict's statistics on hand-made counts: the hierarchical bootstrap's coverage and bounds, paired
differences, the probability of improvement, Holm's correction and the groups of rows the suite cannot tell apart."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from metrics.bootstrap import bootstrap, competition_score
from metrics.comparison import Difference, differences, groups, holm, resolvable_difference
from metrics.fbeta import BETA, f_beta

WEIGHTS = {"easy": 1.0, "hard": 2.0}


def evidence(rows: dict[str, list[dict]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts and matches tables of rows given as {row: [{seed, run, particle_type, flags, fp[, fold]}, ...]}."""
    counts, matches = [], []
    for row, tomograms in rows.items():
        for t in tomograms:
            key = {"architecture": row, "seed": t["seed"], "fold": t.get("fold", "ts"), "split": "test",
                   "run": t["run"], "particle_type": t["particle_type"]}  # fmt: skip
            flags = np.asarray(t["flags"], dtype=int)
            counts.append({**key, "references": len(flags), "candidates": flags.sum() + t["fp"], "tp": flags.sum(),
                           "fp": t["fp"], "fn": len(flags) - flags.sum()})  # fmt: skip
            matches += [{**key, "reference": i, "matched": flag} for i, flag in enumerate(flags)]
    return pd.DataFrame(counts), pd.DataFrame(matches)


def simulated(
    rng: np.random.Generator, recall: dict[str, float], false: float, runs: int, seeds: int = 1, spread: float = 0
) -> list:
    """Tomograms of one row: 8-20 references per type, each found with its type's probability (drawn per tomogram
    from a beta distribution of that mean when `spread` > 0: tomograms differ), and Poisson false positives."""
    found = []
    for seed in range(seeds):
        for run in range(runs):
            for name, p in recall.items():
                q = rng.beta(p * spread, (1 - p) * spread) if spread else p
                found.append({"seed": seed, "run": f"r{run}", "particle_type": name,
                              "flags": rng.random(rng.integers(8, 21)) < q, "fp": int(rng.poisson(false))})  # fmt: skip
    return found


def truth(recall: dict[str, float], false: float) -> float:
    """The competition score of an infinite test set drawn like `simulated` (14 references per type on average)."""
    scores = [f_beta(p * 14 / (p * 14 + false), p, BETA) for p in recall.values()]
    return float(sum(WEIGHTS[name] * s for name, s in zip(recall, scores, strict=True)) / sum(WEIGHTS.values()))


def test_the_observed_statistic_is_the_competition_score_of_the_pooled_counts():
    counts, matches = evidence({"a": [
        {"seed": 0, "run": "r1", "particle_type": "easy", "flags": [1, 1, 0, 1], "fp": 2},
        {"seed": 0, "run": "r2", "particle_type": "easy", "flags": [1, 0], "fp": 0},
        {"seed": 0, "run": "r1", "particle_type": "hard", "flags": [0, 1], "fp": 5},
        {"seed": 0, "run": "r2", "particle_type": "hard", "flags": [], "fp": 1},
    ]})  # fmt: skip
    found = bootstrap(matches, counts, WEIGHTS, replicates=200)
    easy = f_beta(4 / 6, 4 / 6, BETA)  # TP 4 of 6 references, 6 kept
    hard = f_beta(1 / 7, 1 / 2, BETA)  # TP 1 of 2 references, 7 kept
    assert found.observed["a"] == pytest.approx((easy + 2 * hard) / 3)
    tp, fp, references = np.array([[4.0, 1.0]]), np.array([[2.0, 6.0]]), np.array([[6.0, 2.0]])
    assert competition_score(tp, fp, references, np.array([1.0, 2.0]))[0] == pytest.approx((easy + 2 * hard) / 3)


def coverage(seed: int, runs: int, spread: float, trials: int) -> float:
    """How often the interval of one simulated row holds the true score, over `trials` simulated test sets."""
    rng = np.random.default_rng(seed)
    recall, false = {"easy": 0.8, "hard": 0.5}, 3.0
    target, covered = truth(recall, false), []
    for trial in range(trials):
        counts, matches = evidence({"a": simulated(rng, recall, false, runs=runs, spread=spread)})
        low, high = bootstrap(matches, counts, WEIGHTS, replicates=600, seed=trial).interval("a")
        covered.append(low <= target <= high)
    return float(np.mean(covered))


def test_the_interval_covers_the_true_score_of_a_few_unlike_tomograms_about_as_often_as_it_says():
    assert coverage(11, runs=3, spread=8, trials=150) >= 0.88  # nominal 95%; redrawing the tomograms alone: ~78%


def test_the_interval_is_conservative_on_many_alike_tomograms():
    assert coverage(12, runs=12, spread=0, trials=100) >= 0.95  # both levels redrawn: wider than these need


def test_intervals_stay_inside_zero_and_one_even_at_the_edges():
    rng = np.random.default_rng(1)
    perfect = [{"seed": s, "run": f"r{r}", "particle_type": t, "flags": [1] * 5, "fp": 0}
               for s in (0, 1) for r in (0, 1) for t in WEIGHTS]  # fmt: skip
    blind = [{**t, "flags": [0] * 5, "fp": 9} for t in perfect]
    noisy = simulated(rng, {"easy": 0.97, "hard": 0.03}, 0.2, runs=2, seeds=2)
    counts, matches = evidence({"perfect": perfect, "blind": blind, "noisy": noisy})
    found = bootstrap(matches, counts, WEIGHTS, replicates=500)
    assert found.interval("perfect") == (1.0, 1.0) and found.interval("blind") == (0.0, 0.0)
    low, high = found.interval("noisy")
    assert 0.0 <= low < high <= 1.0
    single = bootstrap(*reversed(evidence({"one": simulated(rng, {"easy": 0.7, "hard": 0.4}, 2.0, runs=3)})),
                       WEIGHTS, replicates=500)  # fmt: skip
    assert single.runs["one"] == 1 and single.interval("one")[0] < single.interval("one")[1]  # test-set spread


def test_two_equal_rows_are_tied_and_a_clearly_better_one_is_resolved():
    rng = np.random.default_rng(3)
    same = simulated(rng, {"easy": 0.6, "hard": 0.4}, 2.0, runs=6, seeds=2)
    better = [{**t, "flags": np.ones_like(t["flags"]), "fp": 0} for t in same]
    counts, matches = evidence({"better": better, "first": same, "twin": same})
    found = bootstrap(matches, counts, WEIGHTS, replicates=2000)
    order = ["better", "first", "twin"]
    compared = {(d.first, d.second): d for d in differences(found, order)}
    twins = compared[("first", "twin")]
    assert twins.mean == 0 and twins.improvement == pytest.approx(0.5, abs=0.05) and not twins.resolved
    assert twins.low <= 0 <= twins.high
    assert compared[("better", "first")].resolved and compared[("better", "first")].improvement > 0.99
    assert groups(order, list(compared.values())) == {"better": "a", "first": "b", "twin": "b"}
    assert 0 < resolvable_difference(found, order) < 1


def test_differences_are_paired_on_the_test_draw_so_a_constant_gap_is_resolved():
    # one more reference found on each of many tomograms: the test draw moves both rows together
    rng = np.random.default_rng(5)
    base = simulated(rng, {"easy": 0.5, "hard": 0.5}, 1.0, runs=10, spread=4)
    ahead = []
    for t in base:
        flags = np.array(t["flags"], dtype=int)
        if t["particle_type"] == "easy":
            flags[np.flatnonzero(flags == 0)[:1]] = 1
        ahead.append({**t, "flags": flags})
    counts, matches = evidence({"ahead": ahead, "base": base})
    found = bootstrap(matches, counts, WEIGHTS, replicates=2000)
    (difference,) = differences(found, ["ahead", "base"])
    assert difference.low > 0 and difference.resolved and difference.improvement > 0.95
    low, high = found.interval("base")
    assert low < found.observed["ahead"] < high  # the rows' own intervals overlap: only pairing resolves the gap


def test_holm_adjusts_in_step_down_order_and_caps_at_one():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.6, 0.9]) == [1.0, 1.0]


def test_groups_share_a_letter_only_among_rows_not_told_apart():
    def pair(first: str, second: str, resolved: bool) -> Difference:
        return Difference(first, second, 0.1, 0.0, 0.2, 0.0, 0.001 if resolved else 0.5, 0.7)

    order = ["a", "b", "c", "d"]
    resolved = {("a", "b"): False, ("a", "c"): True, ("a", "d"): True, ("b", "c"): False, ("b", "d"): True,
                ("c", "d"): False}  # fmt: skip
    found = [pair(first, second, flag) for (first, second), flag in resolved.items()]
    assert groups(order, found) == {"a": "a", "b": "ab", "c": "bc", "d": "c"}


def test_every_pair_not_told_apart_shares_a_letter_and_no_resolved_pair_does():
    rng = np.random.default_rng(2)
    order = list("abcdef")
    for _ in range(200):
        resolved = {pair: bool(rng.random() < 0.5) for pair in combinations(order, 2)}
        found = [Difference(f, s, 0.1, 0.0, 0.2, 0.0, 0.001 if r else 0.5, 0.7) for (f, s), r in resolved.items()]
        letters = groups(order, found)
        assert "a" in letters["a"]
        for (first, second), apart in resolved.items():
            assert bool(set(letters[first]) & set(letters[second])) is not apart, (resolved, letters)


def test_a_row_that_shares_an_entry_s_candidates_and_equals_it_never_differs_from_it():
    rng = np.random.default_rng(4)
    same = simulated(rng, {"easy": 0.6, "hard": 0.4}, 2.0, runs=3, seeds=2)
    counts, matches = evidence({"entry": same, "entry+nothing": same})
    linked = {"entry+nothing": "entry"}
    found = bootstrap(matches, counts, WEIGHTS, linked, linked, replicates=1000)
    (difference,) = differences(found, ["entry", "entry+nothing"])
    assert (difference.low, difference.high, difference.improvement, difference.p_value) == (0.0, 0.0, 0.5, 1.0)


def test_a_row_s_interval_does_not_depend_on_the_other_rows_compared():
    rng = np.random.default_rng(6)
    mine = simulated(rng, {"easy": 0.7, "hard": 0.3}, 2.0, runs=3, seeds=2)
    other = [{**t, "flags": rng.random(len(t["flags"])) < 0.5} for t in mine]  # the same references found otherwise
    alone = bootstrap(*reversed(evidence({"mine": mine})), WEIGHTS, replicates=1000)
    beside = bootstrap(*reversed(evidence({"other": other, "mine": mine})), WEIGHTS, replicates=1000)
    assert alone.interval("mine") == beside.interval("mine")


def test_with_folds_a_row_is_the_mean_of_its_training_runs_and_a_missing_run_only_drops_out():
    rng = np.random.default_rng(8)
    runs = []
    for fold, tested in (("ts", ["r0", "r1"]), ("f1", ["r0"]), ("f2", ["r1"])):  # r0, r1 tested by two folds each
        for seed in (0, 1):
            for run in tested:
                for name in WEIGHTS:
                    runs.append({"seed": seed, "fold": fold, "run": run, "particle_type": name,
                                 "flags": rng.random(10) < 0.6, "fp": int(rng.poisson(2))})  # fmt: skip
    counts, matches = evidence({"row": runs})
    found = bootstrap(matches, counts, WEIGHTS, replicates=500)
    unit = counts.groupby(["seed", "fold", "particle_type"])[["tp", "fp", "references"]].sum().unstack()
    scores = competition_score(*(unit[c][list(WEIGHTS)].to_numpy(float) for c in ("tp", "fp", "references")),
                               np.array(list(WEIGHTS.values())))  # fmt: skip
    assert found.observed["row"] == pytest.approx(scores.mean()) and found.runs["row"] == 6
    matches = matches[(matches["seed"] != 1) | (matches["fold"] != "f2")]
    fewer = bootstrap(matches, counts[(counts["seed"] != 1) | (counts["fold"] != "f2")], WEIGHTS, replicates=500)
    assert fewer.runs["row"] == 5 and np.isfinite(fewer.statistic["row"]).all()


def test_rows_of_one_family_share_their_seed_draws():
    rng = np.random.default_rng(9)
    base = simulated(rng, {"easy": 0.6, "hard": 0.3}, 2.0, runs=4, seeds=3)
    variant = [{**t, "fp": t["fp"] + 1} for t in base]
    counts, matches = evidence({"entry": base, "entry+more": variant})
    apart = bootstrap(matches, counts, WEIGHTS, replicates=1000)
    together = bootstrap(matches, counts, WEIGHTS, {"entry+more": "entry"}, replicates=1000)
    spread = [np.std(found.statistic["entry"] - found.statistic["entry+more"]) for found in (apart, together)]
    assert spread[1] < spread[0]
