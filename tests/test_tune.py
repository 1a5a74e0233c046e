"""`bench tune`: the same trials for every architecture, on val only, resumable and reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmark.data import Project
from benchmark.suite import load_suite
from benchmark.tune import RECORD, TRIALS, TUNED, Tuning
from tests.commands import assert_one_line_error, bench

SMOKE = load_suite("smoke")
SPACE = {"lr": {"low": 1.0e-3, "high": 3.0e-2, "log": True}, "jitter": {"low": 2, "high": 8},
         "particle_share": {"choices": [0.5, 0.9]}}  # fmt: skip


def tuning_suite(folder: Path) -> Path:
    """The smoke suite with a search space for unet3d (the suite's replaces the plug-in's) and two epochs, so that
    each trial measures a learning-curve point."""
    raw = yaml.safe_load(SMOKE.path.read_text())
    for entry in raw["architectures"]:
        if entry["name"] == "unet3d":
            entry["epochs"] = 2
        if entry["name"] == "ensemble":
            entry["config"]["members"][1]["epochs"] = 2
    raw["name"], raw["learning_curve"] = "tuning", [0.5]
    raw["tune"] = {"unet3d": SPACE}
    path = folder / "tuning.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def tune(suite: Path, config: Path, root: Path, *extra: str):
    """`bench tune` of unet3d, in-process."""
    return bench("tune", "--suite", suite, "--data", config, "--results", root, *extra)


@pytest.fixture(scope="module")
def tuned(smoke_config, tmp_path_factory):
    """Two tunings of the same suite (the second interrupted after its first trial, then resumed), and the test runs
    opened while they ran."""
    folder = tmp_path_factory.mktemp("tune")
    suite = tuning_suite(folder)
    opened, read = [], Project.tomogram

    def tomogram(self, run, *args, **kwargs):
        opened.append(run)
        return read(self, run, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Project, "tomogram", tomogram)
        first = tune(suite, smoke_config, folder / "a", "--trials", "2", "--arch", "unet3d")
        assert first.exit_code == 0, first.output
        plain = Tuning.run_trial
        calls = []

        def stopped_at_the_second(self, *args):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return plain(self, *args)

        patch.setattr(Tuning, "run_trial", stopped_at_the_second)
        second = tune(suite, smoke_config, folder / "b", "--trials", "2", "--arch", "unet3d")
        assert second.exit_code != 0
        patch.setattr(Tuning, "run_trial", plain)
        stopped = next((folder / "b" / "tuning-tune").iterdir())
        resumed = tune(suite, smoke_config, folder / "b", "--resume", stopped)
        assert resumed.exit_code == 0, resumed.output
    return {"suite": suite, "first": next((folder / "a" / "tuning-tune").iterdir()), "resumed": stopped,
            "output": first.output, "opened": opened}  # fmt: skip


def test_every_trial_trains_on_train_and_scores_on_val_never_opening_a_test_run(tuned):
    assert tuned["opened"] and not set(tuned["opened"]) & set(SMOKE.split.test)
    trials = pd.read_csv(tuned["first"] / TRIALS)
    assert list(trials["architecture"]) == ["unet3d"] * 2
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED"} and trials["val_score"].between(0, 1).all()
    assert "tune: unet3d: trial 2/2" in tuned["output"] and "best val" in tuned["output"]


def test_the_same_command_makes_the_same_trials_and_choice_even_when_resumed(tuned):
    first, resumed = (pd.read_csv(tuned[key] / TRIALS) for key in ("first", "resumed"))
    counted = resumed[resumed["state"] != "FAIL"].reset_index(drop=True)  # the interrupted trial, made again
    assert len(resumed) == 3 and list(resumed["state"]).count("FAIL") == 1
    pd.testing.assert_series_equal(first["params"], counted["params"])
    pd.testing.assert_series_equal(first["val_score"], counted["val_score"])
    assert (tuned["first"] / TUNED).read_text().split("\n", 3)[3] == (tuned["resumed"] / TUNED).read_text().split(
        "\n", 3
    )[3]


def test_the_tuned_suite_holds_the_best_trial_for_the_entry_and_its_ensemble_members(tuned):
    trials = pd.read_csv(tuned["first"] / TRIALS)
    best = trials.loc[trials["val_score"].idxmax()]
    path = tuned["first"] / TUNED
    text = path.read_text()
    assert text.startswith("# Tuned by `bench tune --suite tuning --trials 2`")
    assert f"unet3d: val {best['val_score']:.3f}, trial {int(best['trial'])}" in text
    suite = load_suite(str(path))
    unet3d = next(spec for spec in suite.architectures if spec.name == "unet3d")
    chosen = json.loads(best["params"])
    assert unet3d.config["lr"] == pytest.approx(chosen["lr"]) and unet3d.config["jitter"] == chosen["jitter"]
    assert unet3d.config["particle_share"] in (0.5, 0.9)
    ensemble = next(spec for spec in suite.architectures if spec.name == "ensemble")
    assert ensemble.config["members"][1]["config"] == unet3d.config  # still equal: the ensemble reuses the entry


def test_a_tuning_report_shows_every_trial_and_a_slice_plot(tuned, tmp_path):
    result = bench("report", "--results", tuned["first"], "--out", tmp_path)
    assert result.exit_code == 0, result.output
    readme = (tmp_path / "README.md").read_text()
    assert readme.count("| complete |") + readme.count("| pruned |") == 2
    assert "Chosen: trial" in readme and (tmp_path / "slice_unet3d.png").stat().st_size > 10_000


def test_a_resume_refuses_new_trials_and_a_tuning_needs_a_trial_count(tuned, smoke_config, tmp_path):
    assert_one_line_error(tune(tuned["suite"], smoke_config, tmp_path), "--trials N")
    kept = {name: (tuned["first"] / name).read_bytes() for name in (RECORD, TRIALS)}
    again = tune(tuned["suite"], smoke_config, tmp_path, "--resume", tuned["first"], "--trials", "5")
    assert_one_line_error(again, "keeps the trials")
    assert {name: (tuned["first"] / name).read_bytes() for name in kept} == kept  # the refusal changed nothing
