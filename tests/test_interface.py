"""The plug-in contract: budgets, the runner's epoch tracker, and the checks on predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data import Project
from benchmark.errors import BenchError
from benchmark.interface import Budget, SavedModel, Tracker, check_predictions
from benchmark.particles import ParticleTable
from benchmark.resource_columns import epoch_steps

PARTICLES = ParticleTable.czii()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_tracker_stops_at_the_epoch_bound_and_times_each_epoch():
    tracker = Tracker(Budget(minutes=10, epochs=3))
    seen = []
    for epoch in tracker.epochs(samples=40, unit="patches"):
        seen.append(epoch)
        tracker.log(loss=1.0 / (epoch + 1))
    assert seen == [0, 1, 2]
    assert len(tracker.epoch_seconds) == 3
    assert [log["loss"] for log in tracker.logs] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert (tracker.stopped_by, tracker.epoch_samples, tracker.epoch_unit) == ("epochs", 40, "patches")


def test_the_budget_clock_starts_with_fit_so_data_preparation_counts():
    clock = FakeClock()
    tracker = Tracker(Budget(minutes=1), clock=clock)
    tracker.start()  # the runner, just before fit
    clock.now = 61.0  # fit spent the minute preparing data
    assert list(tracker.epochs()) == []
    assert tracker.stopped_by == "minutes"


def test_an_epoch_starts_only_when_the_longest_so_far_still_fits():
    clock = FakeClock()
    tracker = Tracker(Budget(minutes=1, epochs=100), clock=clock)
    tracker.start()
    for _ in tracker.epochs():
        clock.now += 25.0  # epochs end at 25 and 50 s; a third would end at 75 s, past the 60 s cap
    assert tracker.epoch_seconds == [25.0, 25.0]
    assert tracker.stopped_by == "minutes"
    assert tracker.exhausted() is False and tracker.elapsed() == 50.0


def test_a_loop_that_breaks_still_counts_its_epoch():
    tracker = Tracker(Budget(minutes=10, epochs=5))
    for _ in tracker.epochs():
        break
    assert len(tracker.epoch_seconds) == 1
    assert tracker.stopped_by == "plug-in"
    assert tracker.epoch_samples is None and tracker.epoch_unit is None


def test_the_tracker_times_each_epochs_waits_for_data():
    clock = FakeClock()
    tracker = Tracker(Budget(minutes=10, epochs=2), clock=clock)
    for epoch in tracker.epochs():
        for _ in range(3):
            with tracker.waiting():
                clock.now += 0.5 * (epoch + 1)  # cutting a batch
            clock.now += 2.0  # the step
        tracker.waited(0.25)  # a wait the plug-in measured itself
    assert tracker.data_seconds == [1.75, 3.25]
    assert tracker.data_steps == [4, 4]  # three timed batches and one wait reported: the steps of the epoch
    assert tracker.epoch_seconds == [7.5, 9.0]


def test_a_tracker_whose_plug_in_never_waits_records_no_data_wait():
    tracker = Tracker(Budget(minutes=10, epochs=2))
    assert len(list(tracker.epochs())) == 2
    assert tracker.data_seconds == [] and tracker.data_steps == []


def test_tracker_reports_progress_per_epoch():
    shown = []
    tracker = Tracker(Budget(minutes=10, epochs=2), progress=lambda epoch, logs: shown.append((epoch, logs)))
    for epoch in tracker.epochs():
        tracker.log(loss=float(epoch))
    assert shown == [(0, {"loss": 0.0}), (1, {"loss": 1.0})]


@pytest.mark.parametrize(
    "budget", [{"minutes": None}, {"minutes": 1, "epochs": 0}, {"minutes": -1.0}, {"minutes": 1, "grace_minutes": -1}]
)
def test_budgets_must_be_positive_and_have_minutes(budget):
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


def test_learning_curve_points_run_between_epochs_with_the_budget_clock_stopped():
    clock = FakeClock()
    seen = []

    def evaluate(epochs: int) -> None:
        seen.append((epochs, tracker.elapsed()))
        clock.now += 100.0  # a long evaluation: longer than the whole cap

    tracker = Tracker(Budget(minutes=1, epochs=4), clock=clock, curve_epochs=(1, 3), at_curve_point=evaluate)
    tracker.start()
    for _ in tracker.epochs():
        clock.now += 10.0
    assert seen == [(1, 10.0), (3, 30.0)]  # after epochs 1 and 3, with the training seconds spent by then
    assert tracker.epoch_seconds == [10.0] * 4  # no epoch counts the evaluation
    assert tracker.stopped_by == "epochs"  # and the cap does not either: all four epochs ran
    assert tracker.elapsed() == 40.0 and tracker.curve_seconds == 200.0


def test_a_tracker_counts_only_the_steps_of_epochs_it_timed():
    clock = FakeClock()
    tracker = Tracker(Budget(minutes=10, epochs=4), clock=clock)
    for epoch in tracker.epochs():
        for _ in range(5 if epoch >= 2 else 0):  # the plug-in times its waits from the third epoch on
            with tracker.waiting():
                clock.now += 0.1
        clock.now += 1.0
    assert tracker.data_steps == [0, 0, 5, 5] and np.isnan(tracker.data_seconds[:2]).all()
    assert epoch_steps(tracker) == 5  # the untimed epochs' zeros do not count


def test_a_saved_model_gives_its_jobs_stored_candidates_of_the_runs_it_predicted(tmp_path):
    rows = [["ribosome", 1.0, 2.0, 3.0, 0.9, "16463"], ["ribosome", 4.0, 5.0, 6.0, 0.8, "TS_1"]]
    pd.DataFrame(rows, columns=["particle_type", "x", "y", "z", "score", "experiment"]).to_csv(
        tmp_path / "candidates.csv", index=False
    )
    for run in ("16463", "TS_1"):
        (tmp_path / f"{run}.csv").write_text("id,experiment,particle_type,x,y,z\n")
    saved = SavedModel("member", tmp_path / "model", 1.0, tmp_path)
    found = saved.candidates("16463")  # a run name that reads as a number stays a name
    assert found.to_dict("records") == [{"particle_type": "ribosome", "x": 1.0, "y": 2.0, "z": 3.0, "score": 0.9}]
    assert saved.candidates("TS_2") is None  # a run its job did not predict
    assert saved.served == {"16463"}
    assert SavedModel("member", tmp_path / "model", 1.0).candidates("TS_1") is None  # no stored candidates
