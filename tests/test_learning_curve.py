"""Learning curves through a suite run: each deep job scores val at fractions of its bound with the budget's clock
stopped, stores the points, and the report plots them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark.learning_curve import curve_epochs
from benchmark.results import ResultsStore
from benchmark.suite import load_suite
from tests.commands import bench


@pytest.mark.parametrize(
    ("fractions", "bound", "epochs"),
    [
        ((0.25, 0.5, 0.75), 8, (2, 4, 6)),
        ((0.25, 0.5, 0.75), 2, (1,)),  # points that round alike are measured once, never at the end
        ((0.5,), 1, ()),  # one epoch: the end is the only point
        ((0.5,), None, ()),  # no bound: no fraction of it
    ],
)
def test_curve_points_are_the_epochs_nearest_the_fractions_before_the_end(fractions, bound, epochs):
    assert curve_epochs(fractions, bound) == epochs


@pytest.fixture(scope="module")
def curve_run(smoke_config, tmp_path_factory) -> ResultsStore:
    """A smoke run of unet3d for four epochs, its val measured at half of them, and the matched filter (no curve)."""
    folder = tmp_path_factory.mktemp("curves")
    raw = yaml.safe_load(Path(load_suite("smoke").path).read_text())
    raw["name"], raw["learning_curve"] = "curves", [0.5]
    raw["architectures"] = [a for a in raw["architectures"] if a["name"] in ("unet3d", "matched-filter")]
    next(a for a in raw["architectures"] if a["name"] == "unet3d")["epochs"] = 4
    path = folder / "curves.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    result = bench("run", "--suite", path, "--data", smoke_config, "--results", folder / "results")
    assert result.exit_code == 0, result.output
    return ResultsStore.latest("curves", folder / "results")


@pytest.mark.slow
def test_a_deep_job_stores_its_curve_and_the_evaluation_is_not_training(curve_run):
    curves = curve_run.table("curves")
    assert set(curves["architecture"]) == {"unet3d"}  # the matched filter has no epochs to measure between
    assert list(curves["fraction"]) == [0.5, 1.0] and list(curves["epoch"]) == [2, 4]
    assert curves["val_score"].between(0, 1).all() and curves["train_seconds"].is_monotonic_increasing
    resources = curve_run.table("resources").set_index("architecture")
    assert curves["train_seconds"].iloc[-1] == pytest.approx(resources.loc["unet3d", "train_seconds"])
    assert resources.loc["unet3d", "curve_seconds"] > 0 and pd.isna(resources.loc["matched-filter", "curve_seconds"])
    assert curves["eval_seconds"].iloc[0] <= resources.loc["unet3d", "curve_seconds"]
    scores = curve_run.table("scores").query("split == 'val' and particle_type == 'weighted'").set_index("architecture")
    assert curves["val_score"].iloc[-1] == pytest.approx(scores.loc["unet3d", "f4"])  # the end: the job's own score


@pytest.mark.slow
def test_the_report_plots_the_curves_and_counts_their_time_as_overhead(curve_run, tmp_path):
    result = bench("report", "--results", curve_run.folder, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "README.md").read_text()
    assert "## Learning curves" in readme and "learning_curves.png" in readme
    assert "Curve evaluation (s)" in readme
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
