"""Comparisons of rows from their bootstrap replicates: paired differences, the probability of improvement, Holm's
correction over every pair, groups of rows the suite cannot tell apart, and the smallest difference it resolves."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from metrics.bootstrap import CONFIDENCE, Replicates

ALPHA = 1 - CONFIDENCE


@dataclass(frozen=True)
class Difference:
    """first - second: the observed difference, its percentile interval, the bootstrap two-sided p-value, the
    p-value after Holm's correction over every pair compared, and the probability that a new training run of the
    first beats one of the second on a new draw of the test set (ties count half, as rliable's)."""

    first: str
    second: str
    mean: float
    low: float
    high: float
    p_value: float
    adjusted: float
    improvement: float

    def reversed(self) -> Difference:
        """The same comparison as second - first."""
        low, high = 0.0 - self.high, 0.0 - self.low  # 0.0 - x: no "-0.000" for a zero
        return Difference(self.second, self.first, 0.0 - self.mean, low, high, self.p_value, self.adjusted,
                          1 - self.improvement)  # fmt: skip

    @property
    def resolved(self) -> bool:
        """Whether the suite tells the two apart at the family-wise level ALPHA."""
        return self.adjusted < ALPHA


def differences(replicates: Replicates, order: list[str]) -> list[Difference]:
    """Every pair of rows (in `order`, best first), Holm-corrected together."""
    pairs = list(combinations(order, 2))
    raw = []
    for first, second in pairs:
        drawn = replicates.statistic[first] - replicates.statistic[second]
        low, high = np.quantile(drawn, [ALPHA / 2, 1 - ALPHA / 2])
        tail = min(np.count_nonzero(drawn <= 0), np.count_nonzero(drawn >= 0))
        p_value = min(1.0, 2 * (tail + 1) / (len(drawn) + 1))  # never 0 from finitely many replicates
        one, other = replicates.single[first], replicates.single[second]
        improvement = float(np.mean(one > other) + 0.5 * np.mean(one == other))
        mean = replicates.observed[first] - replicates.observed[second]
        raw.append((first, second, mean, float(low), float(high), float(p_value), improvement))
    adjusted = holm([r[5] for r in raw])
    return [Difference(f, s, m, lo, hi, p, a, i) for (f, s, m, lo, hi, p, i), a in zip(raw, adjusted, strict=True)]


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the order given."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def groups(order: list[str], found: list[Difference]) -> dict[str, str]:
    """A compact letter display: every largest set of rows no two of which are told apart gets a letter (in the order
    of its best row, so 'a' holds the best row), and each row lists the letters of its sets. Two rows share a letter
    exactly when the suite cannot tell them apart."""
    tied = {row: set() for row in order}
    for difference in found:
        if not difference.resolved:
            tied[difference.first].add(difference.second)
            tied[difference.second].add(difference.first)
    cliques = sorted(_maximal_cliques(tied), key=lambda clique: sorted(order.index(row) for row in clique))
    return {row: "".join(chr(ord("a") + i) for i, clique in enumerate(cliques) if row in clique) for row in order}


def _maximal_cliques(tied: dict[str, set[str]]) -> list[set[str]]:
    """The largest sets of mutually tied rows (Bron-Kerbosch with pivoting)."""
    found: list[set[str]] = []

    def extend(clique: set[str], candidates: set[str], excluded: set[str]) -> None:
        if not candidates and not excluded:
            found.append(clique)
            return
        pivot = max(candidates | excluded, key=lambda row: len(tied[row] & candidates))
        for row in sorted(candidates - tied[pivot]):
            extend(clique | {row}, candidates & tied[row], excluded & tied[row])
            candidates = candidates - {row}
            excluded = excluded | {row}

    extend(set(), set(tied), set())
    return found


def resolvable_difference(replicates: Replicates, order: list[str]) -> float:
    """The smallest difference this suite can resolve: the median over pairs of the half-width of the difference's
    interval at Holm's strictest level (ALPHA divided by the number of pairs), which a difference must exceed to be
    resolved first."""
    pairs = list(combinations(order, 2))
    if not pairs:
        return float("nan")
    level = ALPHA / len(pairs)
    widths = []
    for first, second in pairs:
        drawn = replicates.statistic[first] - replicates.statistic[second]
        low, high = np.quantile(drawn, [level / 2, 1 - level / 2])
        widths.append((high - low) / 2)
    return float(np.median(widths))
