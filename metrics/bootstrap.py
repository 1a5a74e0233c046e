"""A hierarchical bootstrap of the competition score: training runs, test tomograms and the particles within them.

Each replicate draws a new test set and new training runs at once:

- tomograms: the evaluated runs (tomograms, whichever folds test them) are drawn with replacement, a multinomial;
- particles: every reference gets a Poisson(1) weight, multiplied by its tomogram's count (k x Poisson(1), which
  lets a rare type drop out of a replicate as it can drop out of a new test set), and every training run's false
  positives on a tomogram are drawn from a Poisson of the observed count;
- training runs: each row's seeds are drawn with replacement.

A training run (seed, fold) scores the competition score of its fold's tomograms pooled (micro); a row's statistic
is the mean over its runs, each fold weighted by how often its tomograms were drawn (so with one fold it is the
mean over seeds of the stored competition scores). The tomogram and reference draws are shared by every row, so a
difference between two rows is paired on the same test set. Seeds are paired only within a family (rows built from
the same fitted models: an ensemble and the entries it reused, ablation variants and their entry), since seed 0 of
two architectures shares nothing but the number; rows built from the same candidates (ablation variants and their
entry) also share their false-positive draws, so identical rows never differ. Every row draws from its own stream
(seeded by its family's name), so its interval does not depend on which other rows are compared.

Redrawing both tomograms and particles is conservative where tomograms are many and alike (the interval then covers
more than it says), and holds its coverage where they are few and differ, as in a cryo-ET test set, where redrawing
the tomograms alone falls well short; tests/test_bootstrap.py measures both on simulated tomograms. Two limits
remain: a bootstrap over n seeds shrinks their spread by (n - 1) / n, and a row that found every reference (or none)
with no false positives has an interval of zero width.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import poisson

from metrics.fbeta import BETA, f_beta

REPLICATES = 20_000
CHUNK = 4_000  # replicates drawn at once: bounds the memory of the (replicates x references) weights
CONFIDENCE = 0.95
UNIT = ["seed", "fold"]  # one training run of a row
GROUP = ["run", "particle_type"]
REFERENCE = [*GROUP, "reference"]


def competition_score(tp: np.ndarray, fp: np.ndarray, references: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted F4 of per-type counts (last axis: types in the order of `weights`), divided by the weights' sum."""
    kept = tp + fp
    precision = np.divide(tp, kept, out=np.zeros_like(tp, dtype=float), where=kept > 0)
    recall = np.divide(tp, references, out=np.zeros_like(tp, dtype=float), where=references > 0)
    return (f_beta(precision, recall, BETA) * weights).sum(axis=-1) / weights.sum()


@dataclass(frozen=True)
class Replicates:
    """Per row: the observed statistic (mean over its training runs of their competition scores), its bootstrap
    replicates, the replicates of one randomly drawn seed's score (for the probability of improvement), and its
    number of training runs (seeds x folds)."""

    observed: dict[str, float]
    statistic: dict[str, np.ndarray]
    single: dict[str, np.ndarray]
    runs: dict[str, int]

    def interval(self, row: str, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """The percentile interval of a row's statistic, inside [0, 1]."""
        low, high = np.quantile(self.statistic[row], [(1 - confidence) / 2, (1 + confidence) / 2])
        return float(np.clip(low, 0, 1)), float(np.clip(high, 0, 1))


@dataclass(frozen=True)
class _Unit:
    """One training run of a row: its references found and present, false positives per group, and fold runs."""

    seed: int
    fold: str
    flags: np.ndarray  # (references,) 1 where found
    present: np.ndarray  # (references,) 1 where the run's fold tests the reference's tomogram
    fp: np.ndarray  # (groups,)
    runs: np.ndarray  # (tomograms,) 1 where the fold tests the tomogram


def bootstrap(
    matches: pd.DataFrame,
    counts: pd.DataFrame,
    weights: Mapping[str, float],
    families: Mapping[str, str] | None = None,
    candidates: Mapping[str, str] | None = None,
    replicates: int = REPLICATES,
    seed: int = 0,
) -> Replicates:
    """Replicates of every row (column `architecture`) of one split's `matches` (a row per reference and training
    run) and `counts` (a row per tomogram, type and training run), with the metric `weights` per particle type.
    `families` maps a row to a family whose seed draws it shares (default: its own); `candidates` maps a row to the
    row whose candidates it shares, and so its false-positive draws (default: its own)."""
    types = list(weights)
    weight = np.array([weights[t] for t in types], dtype=float)
    tomograms = sorted(counts["run"].unique())
    universe = matches[REFERENCE].drop_duplicates().sort_values(REFERENCE).reset_index(drop=True)
    groups = counts[GROUP].drop_duplicates().sort_values(GROUP).reset_index(drop=True)
    reference_tomogram = universe["run"].map({run: i for i, run in enumerate(tomograms)}).to_numpy()
    group_tomogram = groups["run"].map({run: i for i, run in enumerate(tomograms)}).to_numpy()
    reference_type, group_type = _one_hot(universe["particle_type"], types), _one_hot(groups["particle_type"], types)
    units = {row: _units(found, matches, universe, groups, tomograms) for row, found in counts.groupby("architecture")}
    families, candidates = dict(families or {}), dict(candidates or {})
    scores = {row: np.empty((replicates, len(mine))) for row, mine in units.items()}
    masses = {row: np.empty((replicates, len(mine))) for row, mine in units.items()}
    false = {row: [_false_draws(candidates.get(row, row), unit, seed, replicates) for unit in mine]
             for row, mine in units.items()}  # fmt: skip
    rng = np.random.default_rng(seed)
    for start in range(0, replicates, CHUNK):
        size = min(CHUNK, replicates - start)
        drawn = rng.multinomial(len(tomograms), np.full(len(tomograms), 1 / len(tomograms)), size=size)
        reference_draws = drawn[:, reference_tomogram] * rng.poisson(1.0, size=(size, len(universe)))
        for row, mine in units.items():
            for i, unit in enumerate(mine):
                references = reference_draws @ (reference_type * unit.present[:, None])
                tp = reference_draws @ (reference_type * unit.flags[:, None])
                fp = (drawn[:, group_tomogram] * false[row][i][start : start + size]) @ group_type
                scores[row][start : start + size, i] = competition_score(tp, fp, references, weight)
                masses[row][start : start + size, i] = drawn @ unit.runs / unit.runs.sum()
    observed, statistic, single, runs = {}, {}, {}, {}
    for row, mine in units.items():
        seeds = sorted({unit.seed for unit in mine})
        counted, chosen = _seed_draws(families.get(row, row), len(seeds), seed, replicates)
        position = np.array([seeds.index(unit.seed) for unit in mine])
        mass = masses[row] * counted[:, position]
        statistic[row] = _weighted_mean(scores[row], mass)
        single[row] = _weighted_mean(scores[row], masses[row] * (position[None, :] == chosen[:, None]))
        observed[row] = float(np.mean([_observed(unit, reference_type, group_type, weight) for unit in mine]))
        runs[row] = len(mine)
    return Replicates(observed, statistic, single, runs)


def _units(found: pd.DataFrame, matches: pd.DataFrame, universe, groups, tomograms: list[str]) -> list[_Unit]:
    """The training runs of one row, on the reference, group and tomogram universes of the comparison."""
    row = found["architecture"].iloc[0]
    mine = matches[matches["architecture"] == row]
    reference_index, group_index = pd.MultiIndex.from_frame(universe), pd.MultiIndex.from_frame(groups)
    units = []
    for (seed, fold), counted in found.groupby(UNIT):
        of_unit = mine[(mine["seed"] == seed) & (mine["fold"] == fold)].set_index(REFERENCE)["matched"]
        flags = of_unit.reindex(reference_index).to_numpy(float)
        fp = counted.set_index(GROUP)["fp"].reindex(group_index).to_numpy(float)
        runs = np.isin(tomograms, counted["run"].unique()).astype(float)
        units.append(
            _Unit(int(seed), str(fold), np.nan_to_num(flags), (~np.isnan(flags)).astype(float), np.nan_to_num(fp), runs)
        )
    return units


def _observed(unit: _Unit, reference_type: np.ndarray, group_type: np.ndarray, weight: np.ndarray) -> float:
    """A training run's competition score on its own tomograms (no resampling)."""
    return float(competition_score(unit.flags @ reference_type, unit.fp @ group_type, unit.present @ reference_type,
                                   weight))  # fmt: skip


def _false_draws(source: str, unit: _Unit, seed: int, replicates: int) -> np.ndarray:
    """(replicates, groups) false-positive counts of a training run: Poisson draws of its observed counts through
    uniforms shared by every row built from the same candidates (`source`) and seed, so identical rows draw alike.
    The competition's negative FP (one candidate matching two references) is kept as it is."""
    rng = np.random.default_rng([seed, _key(source), unit.seed, _key(unit.fold)])
    uniforms = rng.random((replicates, len(unit.fp)))
    observed = np.maximum(unit.fp, 0)
    draws = np.where(observed > 0, poisson.ppf(uniforms, np.where(observed > 0, observed, 1)), 0.0)
    return draws + np.minimum(unit.fp, 0)


def _seed_draws(family: str, seeds: int, seed: int, replicates: int) -> tuple[np.ndarray, np.ndarray]:
    """How often each of a row's seeds is drawn per replicate (a multinomial), and one seed drawn per replicate,
    from the stream of its family: rows of one family with the same seeds draw the same."""
    rng = np.random.default_rng([seed, _key(family), seeds])
    return rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=replicates), rng.integers(0, seeds, replicates)


def _weighted_mean(scores: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Per replicate, the mean of the training runs' scores weighted by `mass` (0 where no run has mass)."""
    total = mass.sum(axis=1)
    return np.divide((scores * mass).sum(axis=1), total, out=np.zeros(len(total)), where=total > 0)


def _key(name: str) -> int:
    """A stable integer for a name, to seed its stream."""
    return zlib.crc32(name.encode())


def _one_hot(values: pd.Series, types: list[str]) -> np.ndarray:
    """(n, types) indicator of each value's particle type."""
    return (values.to_numpy()[:, None] == np.array(types)[None, :]).astype(float)
