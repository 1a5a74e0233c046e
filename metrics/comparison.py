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
        p_value = min(1.0, 2 * min(np.mean(drawn <= 0), np.mean(drawn >= 0)))
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
    """A compact letter display: rows sharing a letter cannot be told apart. Each row in turn (best first) starts a
    group and takes in every later row not resolved from any row already in it; a group inside an earlier one is
    dropped, and each row's label lists the letters of its groups ('a' holds the best row)."""
    resolved = {frozenset((d.first, d.second)): d.resolved for d in found}
    kept: list[list[str]] = []
    for start, leader in enumerate(order):
        group = [leader]
        for row in order[start + 1 :]:
            if not any(resolved[frozenset((row, member))] for member in group):
                group.append(row)
        if not any(set(group) <= set(earlier) for earlier in kept):
            kept.append(group)
    return {row: "".join(chr(ord("a") + i) for i, group in enumerate(kept) if row in group) for row in order}


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
