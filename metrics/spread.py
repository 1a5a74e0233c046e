"""Spread of a score over repeated runs (seeds x folds): mean, standard deviation and a 95% t-interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation and the two-sided 95% t-interval of the mean of `runs` values."""

    mean: float
    std: float | None
    runs: int
    low: float | None
    high: float | None

    @classmethod
    def of(cls, values: pd.Series | np.ndarray) -> Spread:
        """The spread of the finite values; a single run has no std and no interval."""
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if len(values) < 2:
            return cls(float(values.mean()) if len(values) else float("nan"), None, len(values), None, None)
        std = float(values.std(ddof=1))
        half = float(stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1)) * std / np.sqrt(len(values))
        mean = float(values.mean())
        return cls(mean, std, len(values), mean - half, mean + half)


def paired_difference(first: pd.Series, second: pd.Series) -> Spread:
    """Spread of first - second over the runs (index: seed, fold) both have."""
    common = first.index.intersection(second.index)
    return Spread.of(first.loc[common].to_numpy(float) - second.loc[common].to_numpy(float))
