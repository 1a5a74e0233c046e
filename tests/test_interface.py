"""The plug-in contract: budgets, the runner's epoch tracker, and the checks on predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data import Project
from benchmark.errors import BenchError
from benchmark.interface import Budget, Tracker, check_predictions
from benchmark.particles import ParticleTable

PARTICLES = ParticleTable.czii()


def test_tracker_stops_at_the_epoch_budget_and_times_each_epoch():
    tracker = Tracker(Budget(epochs=3))
    seen = []
    for epoch in tracker.epochs():
        seen.append(epoch)
        tracker.log(loss=1.0 / (epoch + 1))
    assert seen == [0, 1, 2]
    assert len(tracker.epoch_seconds) == 3
    assert [log["loss"] for log in tracker.logs] == [1.0, 0.5, pytest.approx(1 / 3)]


def test_tracker_stops_when_the_minutes_are_spent():
    tracker = Tracker(Budget(minutes=1e-9))
    assert list(tracker.epochs()) == [0]


def test_a_loop_that_breaks_still_counts_its_epoch():
    tracker = Tracker(Budget(epochs=5))
    for _ in tracker.epochs():
        break
    assert len(tracker.epoch_seconds) == 1


def test_tracker_reports_progress_per_epoch():
    shown = []
    tracker = Tracker(Budget(epochs=2), progress=lambda epoch, logs: shown.append((epoch, logs)))
    for epoch in tracker.epochs():
        tracker.log(loss=float(epoch))
    assert shown == [(0, {"loss": 0.0}), (1, {"loss": 1.0})]


@pytest.mark.parametrize("budget", [{}, {"epochs": 0}, {"minutes": -1.0}])
def test_budgets_must_be_positive_and_present(budget):
    with pytest.raises(BenchError):
        Budget(**budget)


@pytest.fixture
def tomogram(copick_project):
    return Project(copick_project(shape=(16, 32, 32))).tomogram("TS_1")


def picks(**columns) -> pd.DataFrame:
    base = {"particle_type": ["ribosome"], "x": [100.0], "y": [100.0], "z": [50.0], "score": [0.9]}
    return pd.DataFrame(base | columns)


def test_good_predictions_pass_and_keep_only_the_contract_columns(tomogram):
    checked = check_predictions(picks().assign(extra=1), "m", tomogram, PARTICLES)
    assert list(checked.columns) == ["particle_type", "x", "y", "z", "score"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (pd.DataFrame({"label": [1], "z": [0], "y": [0], "x": [0]}), "missing particle_type, score"),
        (picks(particle_type=["mystery"]), "unknown particle type(s) 'mystery'"),
        (picks(score=[np.nan]), "non-finite"),
        (picks(x=[5000.0]), "1 picks outside the TS_1 volume"),
        ([1, 2, 3], "returned list, not a DataFrame"),
    ],
)
def test_bad_predictions_are_named_in_one_line(tomogram, bad, message):
    with pytest.raises(BenchError) as error:
        check_predictions(bad, "m", tomogram, PARTICLES)
    assert message in str(error.value)
    assert "architecture 'm'" in str(error.value)
