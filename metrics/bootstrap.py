"""A hierarchical bootstrap of the competition score: training runs, test tomograms and the particles within them.

Each replicate draws a new test set and new training runs at once:

- tomograms: the evaluated (fold, run) pairs are drawn with replacement (a multinomial over them);
- particles: every reference gets a Poisson(1) weight (the Poisson bootstrap) on top of its tomogram's, and every
  false positive of a training run likewise (its count is drawn from a Poisson of the observed count);
- training runs: each row's seeds are drawn with replacement; a row's statistic is the mean over its drawn seeds.

A seed's competition score pools TP, FP and FN over every evaluated tomogram of every fold (micro, as the
competition pools tomograms). The tomogram and reference draws are shared by every row, so a difference between two
rows is paired on the same test set; seeds are paired only within a family (rows built from the same fitted models,
such as ablation variants and their entry), since seed 0 of two architectures shares nothing but the number.

Redrawing both tomograms and particles is conservative where tomograms are many and alike (the interval then covers
more than it says), and holds its coverage where they are few and differ, as in a cryo-ET test set, where
redrawing the tomograms alone falls well short; tests/test_bootstrap.py measures both on simulated tomograms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.fbeta import BETA, f_beta

REPLICATES = 4000
CONFIDENCE = 0.95
TOMOGRAM = ["fold", "run"]
GROUP = [*TOMOGRAM, "particle_type"]


def competition_score(tp: np.ndarray, fp: np.ndarray, references: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted F4 of per-type counts (last axis: types in the order of `weights`), divided by the weights' sum."""
    kept = tp + fp
    precision = np.divide(tp, kept, out=np.zeros_like(tp, dtype=float), where=kept > 0)
    recall = np.divide(tp, references, out=np.zeros_like(tp, dtype=float), where=references > 0)
    return (f_beta(precision, recall, BETA) * weights).sum(axis=-1) / weights.sum()


@dataclass(frozen=True)
class Replicates:
    """Per row: the observed statistic (mean over seeds of the pooled competition score), its bootstrap replicates,
    and the replicates of one randomly drawn seed's score (for the probability of improvement)."""

    observed: dict[str, float]
    statistic: dict[str, np.ndarray]
    single: dict[str, np.ndarray]
    runs: dict[str, int]

    def interval(self, row: str, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """The percentile interval of a row's statistic, inside [0, 1]."""
        low, high = np.quantile(self.statistic[row], [(1 - confidence) / 2, (1 + confidence) / 2])
        return float(np.clip(low, 0, 1)), float(np.clip(high, 0, 1))


def bootstrap(
    matches: pd.DataFrame,
    counts: pd.DataFrame,
    weights: Mapping[str, float],
    families: Mapping[str, str] | None = None,
    replicates: int = REPLICATES,
    seed: int = 0,
) -> Replicates:
    """Replicates of every row (column `architecture`) of one split's `matches` (a row per reference and training
    run) and `counts` (a row per tomogram, type and training run), with the metric `weights` per particle type.
    `families` maps a row to the rows whose fitted models it shares (default: each row its own)."""
    rng = np.random.default_rng(seed)
    types = list(weights)
    weight = np.array([weights[t] for t in types], dtype=float)
    tomograms = counts[TOMOGRAM].drop_duplicates().sort_values(TOMOGRAM).reset_index(drop=True)
    tomogram_of = {tuple(row): i for i, row in enumerate(tomograms.itertuples(index=False))}
    # references: one column each, shared by every row; the tomogram draw times the reference's own Poisson weight
    universe = matches[[*GROUP, "reference"]].drop_duplicates().sort_values([*GROUP, "reference"])
    universe = universe.reset_index(drop=True)
    reference_index = pd.MultiIndex.from_frame(universe)
    tomogram_draws = rng.multinomial(len(tomograms), np.full(len(tomograms), 1 / len(tomograms)), size=replicates)
    reference_tomogram = np.array([tomogram_of[key] for key in zip(universe["fold"], universe["run"], strict=True)],
                                  dtype=int)  # fmt: skip
    reference_draws = tomogram_draws[:, reference_tomogram] * rng.poisson(1.0, size=(replicates, len(universe)))
    reference_type = _one_hot(universe["particle_type"], types)
    groups = counts[GROUP].drop_duplicates().sort_values(GROUP).reset_index(drop=True)
    group_index = pd.MultiIndex.from_frame(groups)
    group_tomogram = np.array([tomogram_of[key] for key in zip(groups["fold"], groups["run"], strict=True)], dtype=int)
    group_type = _one_hot(groups["particle_type"], types)
    families = dict(families or {})
    family_draws: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    observed, statistic, single, runs = {}, {}, {}, {}
    for row, found in counts.groupby("architecture", sort=False):
        seeds = sorted(found["seed"].unique())
        mine = matches[matches["architecture"] == row]
        observed_scores, replicate_scores = [], []
        for value in seeds:
            of_seed = mine[mine["seed"] == value].set_index([*GROUP, "reference"])["matched"]
            flags = of_seed.reindex(reference_index).to_numpy(float)
            present = ~np.isnan(flags)  # the references of the folds this seed was evaluated on
            flags = np.nan_to_num(flags)
            fp = found[found["seed"] == value].set_index(GROUP)["fp"].reindex(group_index).to_numpy(float)
            fp = np.nan_to_num(fp)
            references = reference_draws @ (reference_type * present[:, None])
            tp = reference_draws @ (reference_type * flags[:, None])
            fp_draws = rng.poisson(np.maximum(fp, 0), size=(replicates, len(fp))) + np.minimum(fp, 0)
            false = (tomogram_draws[:, group_tomogram] * fp_draws) @ group_type
            replicate_scores.append(competition_score(tp, false, references, weight))
            observed_scores.append(
                competition_score(flags @ reference_type, fp @ group_type, present @ reference_type, weight)
            )
        scores = np.column_stack(replicate_scores)  # (replicates, seeds)
        family = families.get(row, row)
        if family not in family_draws:
            family_draws[family] = _seed_draws(rng, replicates, len(seeds))
        counts_drawn, chosen = family_draws[family]
        if counts_drawn.shape[1] != len(seeds):  # a family member with other seeds: draws of its own
            counts_drawn, chosen = _seed_draws(rng, replicates, len(seeds))
        statistic[row] = (scores * counts_drawn).sum(axis=1) / len(seeds)
        single[row] = scores[np.arange(replicates), chosen]
        observed[row] = float(np.mean(observed_scores))
        runs[row] = len(seeds)
    return Replicates(observed, statistic, single, runs)


def _seed_draws(rng: np.random.Generator, replicates: int, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """How often each seed is drawn per replicate (a multinomial), and one seed drawn per replicate."""
    return rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=replicates), rng.integers(0, seeds, size=replicates)


def _one_hot(values: pd.Series, types: list[str]) -> np.ndarray:
    """(n, types) indicator of each value's particle type."""
    return (values.to_numpy()[:, None] == np.array(types)[None, :]).astype(float)
