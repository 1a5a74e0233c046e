"""Conformance tests generated for every registered architecture (TorchBench-style), on the smoke dataset."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest

from benchmark.coords import XYZ, inside_volume
from benchmark.data import Project
from benchmark.interface import PREDICTION_COLUMNS, Tracker, check_predictions
from benchmark.job import build, load_samples, seed_everything
from benchmark.learning_curve import predicts_mid_fit
from benchmark.registry import ARCHITECTURES
from benchmark.suite import ArchitectureSpec, load_suite

SMOKE = load_suite("smoke")
SMOKE_CONFIGS = {spec.name: spec for spec in SMOKE.architectures}


class Fitted:
    """One architecture fitted on the smoke split, with its first predictions."""

    def __init__(self, name: str, config: Path):
        self.project = Project(config)
        self.spec = SMOKE_CONFIGS.get(name, ArchitectureSpec(name))
        self.train = load_samples(self.project, SMOKE.split.train, SMOKE.data)
        self.val = load_samples(self.project, SMOKE.split.val, SMOKE.data)
        self.test = load_samples(self.project, SMOKE.split.test, SMOKE.data)
        self.model, self.tracker = self.fit(seed=0)
        self.predictions = self.model.predict(self.test[0].tomogram)

    def fit(self, seed: int):
        """Seed as the runner does, build and fit within the smoke suite's budget."""
        seed_everything(seed)
        model = build(self.spec, self.project, "cpu", seed)
        budget = SMOKE.budget_for(self.spec)
        tracker = Tracker(budget)
        tracker.start()
        model.fit(self.train, self.val, budget, tracker)
        return model, tracker


@pytest.fixture(scope="module", params=ARCHITECTURES.names())
def fitted(request, smoke_config) -> Fitted:
    """Each registered architecture, fitted once per module."""
    return Fitted(request.param, smoke_config)


def test_fit_reports_epochs_within_the_budget(fitted):
    assert 1 <= len(fitted.tracker.epoch_seconds) <= SMOKE.budget_for(fitted.spec).epochs
    assert fitted.tracker.stopped_by in ("epochs", "plug-in")
    assert all(seconds >= 0 for seconds in fitted.tracker.epoch_seconds)


def test_predicts_angstrom_picks_with_scores_inside_the_volume(fitted):
    tomogram = fitted.test[0].tomogram
    picks = check_predictions(fitted.predictions, fitted.spec.name, tomogram, fitted.project.particles)
    assert list(picks.columns) == PREDICTION_COLUMNS
    assert not picks.empty, "a fitted model should propose candidates; the runner applies thresholds"
    assert inside_volume(picks[XYZ].to_numpy(), tomogram.shape, tomogram.voxel_size).all()
    assert set(picks["particle_type"]) <= set(fitted.project.particles.names)
    # Å, not voxels: the picks spread over the physical extent of the volume, not its index range
    assert picks[XYZ].to_numpy().max() > max(tomogram.shape)


def test_predicts_inside_an_odd_sized_volume(fitted):
    """Real pyramids round odd sizes up (630 -> 315 -> 158): picks from the cut edge blocks stay inside."""
    tomogram = fitted.test[0].tomogram
    odd = tuple(n - 1 if n % 2 == 0 else n for n in tomogram.shape)
    levels = tuple(
        level[tuple(slice(math.ceil(n / 2**index)) for n in odd)] for index, level in enumerate(tomogram.levels)
    )
    cropped = dataclasses.replace(tomogram, levels=levels)
    picks = check_predictions(fitted.model.predict(cropped), fitted.spec.name, cropped, fitted.project.particles)
    assert not picks.empty


def test_save_then_load_gives_identical_predictions(fitted, tmp_path):
    fitted.model.save(tmp_path / "model")
    restored = build(fitted.spec, fitted.project, "cpu", seed=123)
    restored.load(tmp_path / "model")
    pd.testing.assert_frame_equal(restored.predict(fitted.test[0].tomogram), fitted.predictions)


def test_same_seed_gives_identical_predictions_on_cpu(fitted):
    again, _ = fitted.fit(seed=0)
    pd.testing.assert_frame_equal(again.predict(fitted.test[0].tomogram), fitted.predictions)


def test_every_deep_plugin_predicts_mid_fit():
    """The learning curves need every network-trained row to predict between its epochs."""
    deep = [
        name
        for name in ARCHITECTURES.names()
        if getattr(ARCHITECTURES.get(name), "kind", "") not in ("classical", "ensemble")
    ]
    assert deep and all(predicts_mid_fit(ARCHITECTURES.get(name)) for name in deep), deep


def test_a_prediction_mid_fit_leaves_training_unchanged(fitted):
    """A learning-curve point predicts on the model trained so far; the training that follows is the same as without
    it, and the clock of the budget does not count it."""
    if not predicts_mid_fit(fitted.model):
        pytest.skip(f"{fitted.spec.name} does not predict mid-fit (no learning curve)")
    spec = dataclasses.replace(fitted.spec, epochs=2)
    runs, points = {}, []

    def point(epochs: int) -> None:
        with model.interim():
            found = model.predict(fitted.val[0].tomogram)
        points.append((epochs, check_predictions(found, spec.name, fitted.val[0].tomogram, fitted.project.particles)))

    for curve in ((), (1,)):
        seed_everything(0)
        model = build(spec, fitted.project, "cpu", 0)
        budget = SMOKE.budget_for(spec)
        tracker = Tracker(budget, curve_epochs=curve, at_curve_point=point)
        tracker.start()
        model.fit(fitted.train, fitted.val, budget, tracker)
        runs[curve] = (model.predict(fitted.test[0].tomogram), tracker)
    assert [epochs for epochs, _ in points] == [1]
    assert runs[(1,)][1].curve_seconds > 0 and runs[()][1].curve_seconds == 0
    pd.testing.assert_frame_equal(runs[(1,)][0], runs[()][0])
