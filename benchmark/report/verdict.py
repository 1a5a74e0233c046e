"""The numbers behind a report's verdict, from a results folder's stored tables only: the bootstrap of every row,
paired comparisons and groups, the competition score per tomogram, and the price of tuning thresholds on val.
Nothing here formats; `benchmark.report.document` renders these numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.particles import CZII_METRIC
from metrics.bootstrap import UNIT, Replicates, bootstrap, competition_score
from metrics.comparison import Difference, differences, groups, resolvable_difference


def metric_weights(manifest: dict, names: list[str]) -> dict[str, float]:
    """The metric weight of each particle type as the run recorded it (runs that recorded none: the CZII weights,
    1 for other types, as the metric then used)."""
    recorded = {p["name"]: float(p["weight"]) for p in manifest.get("particles", [])}
    return {name: recorded.get(name, CZII_METRIC.get(name, (1.0, False))[0]) for name in names}


@dataclass(frozen=True)
class Verdict:
    """Rows best first by their observed statistic, their replicates, every paired difference (Holm-corrected),
    the groups the suite cannot tell apart, and the smallest difference it resolves."""

    order: list[str]
    replicates: Replicates
    differences: list[Difference]
    groups: dict[str, str]
    resolvable: float

    @classmethod
    def of(
        cls,
        counts: pd.DataFrame,
        matches: pd.DataFrame,
        weights: dict[str, float],
        families: dict[str, str] | None = None,
        candidates: dict[str, str] | None = None,
    ) -> Verdict:
        """The verdict over the rows of one split's counts and matches (`families` and `candidates`: which rows
        share fitted models and candidates, see `metrics.bootstrap.bootstrap`)."""
        replicates = bootstrap(matches, counts, weights, families, candidates)
        order = sorted(replicates.observed, key=lambda row: -replicates.observed[row])
        found = differences(replicates, order)
        return cls(order, replicates, found, groups(order, found), resolvable_difference(replicates, order))

    def difference(self, first: str, second: str) -> Difference:
        """The comparison of two rows, first - second."""
        for found in self.differences:
            if (found.first, found.second) == (first, second):
                return found
        raise KeyError((first, second))

    def resolved_best(self) -> str | None:
        """The best row when the suite tells it apart from every other, else None."""
        leaders = self.leaders()
        return leaders[0] if len(leaders) == 1 and len(self.order) > 1 else None

    def leaders(self) -> list[str]:
        """The rows the suite cannot tell apart from the best (group 'a'), best first."""
        return [row for row in self.order if "a" in self.groups[row]]


def tomogram_scores(counts: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """The competition score of each row on each tomogram alone (rows: fold and run; columns: rows), mean over seeds;
    a type without references in the tomogram scores F4 0 there, as in the competition's metric."""
    types = list(weights)
    weight = np.array([weights[t] for t in types])
    table = counts.pivot_table(index=["architecture", *UNIT, "run"], columns="particle_type",
                               values=["tp", "fp", "references"], aggfunc="sum")  # fmt: skip
    tp, fp, references = (
        table[c].reindex(columns=types, fill_value=0).to_numpy(float) for c in ("tp", "fp", "references")
    )
    scores = pd.Series(competition_score(tp, fp, references, weight), index=table.index)
    means = scores.groupby(level=["architecture", "fold", "run"]).mean()
    return means.unstack("architecture")


def threshold_transfer(weighted: pd.DataFrame, thresholds: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """Per row (mean over its runs): the evaluated split's competition score at the val-tuned thresholds, at the
    thresholds that would have been best on that split (the oracle: reported, never used to choose), and the price."""
    weight = thresholds["particle_type"].map(weights).astype(float)
    oracle = (
        thresholds.assign(part=thresholds["oracle_f4"] * weight / sum(weights.values()))
        .groupby(["architecture", *UNIT])["part"]
        .sum(min_count=1)
        .groupby("architecture")
        .mean()
    )
    tuned = weighted.groupby("architecture")["f4"].mean()
    return pd.DataFrame({"tuned": tuned, "oracle": oracle}).dropna().assign(price=lambda t: t["oracle"] - t["tuned"])


def families_of(reused: pd.DataFrame) -> dict[str, str]:
    """Rows built from the same fitted models, from the resources' `reused` column (the labels an ensemble's job
    reused, `;`-separated): each row mapped to one name per connected set of rows."""
    parent: dict[str, str] = {}

    def root(row: str) -> str:
        while parent.setdefault(row, row) != row:
            row = parent[row]
        return row

    for row, labels in zip(reused["architecture"], reused["reused"], strict=True):
        for label in str(labels).split(";") if isinstance(labels, str) else []:
            parent[root(label)] = root(row)
    return {row: root(row) for row in parent}


def evaluated_references(counts: pd.DataFrame, weights: dict[str, float]) -> tuple[int, int]:
    """How many tomograms a split's counts evaluate and the references of scored types (weight > 0) they hold, each
    tomogram once whichever folds test it."""
    per_tomogram = counts.drop_duplicates(["run", "particle_type"])
    scored = per_tomogram[per_tomogram["particle_type"].map(weights).fillna(1.0) > 0]
    return per_tomogram["run"].nunique(), int(scored["references"].sum())
