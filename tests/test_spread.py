"""Spread over runs: mean, std and the 95% t-interval, and paired differences between architectures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics.spread import Spread, paired_difference


def test_interval_is_the_t_interval_of_the_mean():
    spread = Spread.of(np.array([0.50, 0.60, 0.55]))
    assert spread.mean == pytest.approx(0.55) and spread.std == pytest.approx(0.05) and spread.runs == 3
    half = 4.302652729911275 * 0.05 / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert (spread.low, spread.high) == (pytest.approx(0.55 - half), pytest.approx(0.55 + half))


def test_a_single_run_has_no_spread_and_missing_values_do_not_count():
    spread = Spread.of(pd.Series([0.4, np.nan]))
    assert (spread.mean, spread.std, spread.runs, spread.low, spread.high) == (0.4, None, 1, None, None)


def test_paired_difference_matches_runs_by_seed_and_fold():
    index = pd.MultiIndex.from_tuples([(0, "ts"), (1, "ts"), (2, "ts")], names=["seed", "fold"])
    first = pd.Series([0.7, 0.8, 0.9], index=index)
    second = pd.Series([0.5, 0.6], index=index[[1, 0]])  # seed 1 then seed 0; seed 2 missing
    spread = paired_difference(first, second)
    assert spread.runs == 2
    assert spread.mean == pytest.approx(((0.7 - 0.6) + (0.8 - 0.5)) / 2)
