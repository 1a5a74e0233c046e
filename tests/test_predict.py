"""`bench predict`: a saved job's model picks a copick project as the job picked its test runs; `bench run
--no-keep-models`; steps' fitted state restored; copick's own export of the picks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import copick
import numpy as np
import pandas as pd
import pytest
import starfile
from click.testing import CliRunner
from commands import assert_one_line_error, bench
from copick.cli.export import export
from test_postprocessing import PARTICLES, empty_tomogram, intensity_data, table

from benchmark.coords import XYZ
from benchmark.data import Project
from benchmark.errors import BenchError
from benchmark.evaluation import plain
from benchmark.postprocessing import Step, build_step
from benchmark.results import ResultsStore
from conftest import CZII_OBJECTS

TEST_RUNS = ["TS_5_4", "TS_69_2"]  # the smoke suite's test split
COLUMNS = ["experiment", "particle_type", *XYZ]


@pytest.fixture
def project(smoke_run, tmp_path) -> Path:
    """A copy of the smoke run's copick project (its picks included), so that predictions go into the copy."""
    source = Path(smoke_run.manifest["data"]["config"]).parent
    folder = shutil.copytree(source, tmp_path / "smoke")
    config = folder / "copick.json"
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "static_root": str(folder / "static"),
                                  "overlay_root": str(folder / "overlay")}))  # fmt: skip
    return config


def predict(results: ResultsStore | Path, config: Path, *args) -> object:
    """`bench predict` of the test runs unless told which runs."""
    folder = results.folder if isinstance(results, ResultsStore) else results
    runs = [] if "--all" in args or "--runs" in args else [a for run in TEST_RUNS for a in ("--runs", run)]
    return bench("predict", "--results", folder, "--data", config, *runs, *args)


def stored(smoke_run: ResultsStore, label: str, seed: int, name: str) -> pd.DataFrame:
    """One of a job's stored prediction CSVs."""
    return pd.read_csv(smoke_run.folder / "predictions" / label / f"seed{seed}" / "ts" / name)


def of_run(picks: pd.DataFrame, run: str, columns: list[str] = COLUMNS) -> pd.DataFrame:
    """A run's rows, in their order, of the given columns."""
    return picks.loc[picks["experiment"] == run, columns].reset_index(drop=True)


@pytest.mark.parametrize(("label", "seed"), [("deepfindet", 0), ("matched-filter", 0), ("heatmap-unet", 1)])
def test_predict_reproduces_the_jobs_thresholded_test_picks(smoke_run, project, tmp_path, label, seed):
    """The same model, post-processing (matched-filter's nms) and val-tuned thresholds: the job's picks, exactly."""
    csv = tmp_path / "picks.csv"
    result = predict(smoke_run, project, "--arch", label, "--seed", seed, "--session-id", "again", "--csv", csv)
    assert result.exit_code == 0, result.output
    ours = pd.read_csv(csv)
    for run in TEST_RUNS:
        expected = of_run(stored(smoke_run, label, seed, f"{run}.csv"), run)
        pd.testing.assert_frame_equal(of_run(ours, run), expected, check_dtype=False, check_exact=True)
        assert f"{run}: {len(of_run(ours, run))} picks (apo-ferritin " in result.output
    assert label == "deepfindet" or len(ours) > 0  # a one-epoch deepfindet keeps nothing; the others do
    assert f"copick picks: user bench-{label}, session again" in result.output


@pytest.mark.parametrize("label", ["deepfindet", "heatmap-unet"])
def test_keep_all_writes_every_candidate_with_its_score(smoke_run, project, tmp_path, label):
    kept, every = tmp_path / "kept.csv", tmp_path / "all.csv"
    assert predict(smoke_run, project, "--arch", label, "--session-id", "kept", "--csv", kept).exit_code == 0
    result = predict(smoke_run, project, "--arch", label, "--session-id", "all", "--keep-all", "--csv", every)
    assert result.exit_code == 0, result.output
    ours, candidates = pd.read_csv(every), stored(smoke_run, label, 0, "candidates.csv")
    assert list(ours.columns) == ["id", *COLUMNS, "score"] and ours["id"].tolist() == list(range(len(ours)))
    assert len(ours) >= len(pd.read_csv(kept)) and len(ours) > 0
    for run in TEST_RUNS:
        pd.testing.assert_frame_equal(of_run(ours, run, [*COLUMNS, "score"]), of_run(candidates, run, [*COLUMNS,
                                      "score"]), check_dtype=False, check_exact=True)  # fmt: skip


def test_picks_are_copick_picks_of_the_user_and_a_new_session(smoke_run, project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CSV's default folder
    result = predict(smoke_run, project, "--arch", "matched-filter", "--runs", "TS_5_4")
    assert result.exit_code == 0, result.output
    ours = pd.read_csv(tmp_path / "picks-matched-filter-seed0.csv")
    run = copick.from_file(str(project)).get_run("TS_5_4")
    written = [p for p in run.get_picks(user_id="bench-matched-filter") if p.session_id.startswith("predict-")]
    assert {p.pickable_object_name for p in written} == {o["name"] for o in CZII_OBJECTS}
    for picks in written:
        mine = ours[ours["particle_type"] == picks.pickable_object_name][XYZ].to_numpy(float)
        np.testing.assert_array_equal(np.asarray(picks.numpy()[0], float).reshape(-1, 3), mine)
    assert len(ours) > 0 and set(ours["experiment"]) == {"TS_5_4"}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--session-id", "0"], ["--session-id 0 is reserved for ground truth"]),
        (["--user-id", "my_picks"], ["--user-id 'my_picks' holds characters copick does not allow", "'my-picks'"]),
        (["--runs", "TS_5_5"], ["run 'TS_5_5' is not in copick project", "(did you mean TS_5_4"]),
        (["--arch", "deepfindt"], ["has no entry 'deepfindt' (did you mean deepfindet?)"]),
        (["--fold", "loo"], ["has no fold 'loo'; folds: ts"]),
        (["--seed", "7"], ["'deepfindet' has no job of seed 7 in", "seeds with a saved model: 0, 1"]),
    ],
)
def test_mistakes_are_refused_in_one_line_before_any_model_runs(smoke_run, project, tmp_path, args, fragments):
    args = ["--arch", "deepfindet", *args] if "--arch" not in args else args
    result = predict(smoke_run, project, *args, "--csv", tmp_path / "picks.csv")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "picks.csv").exists()


def test_runs_or_all_and_a_results_folder_are_required(smoke_run, project, tmp_path):
    both = bench("predict", "--results", smoke_run.folder, "--data", project, "--arch", "deepfindet", "--all",
                 "--runs", "TS_5_4")  # fmt: skip
    assert both.exit_code == 2 and "--runs NAME (repeatable), or --all; one of the two" in both.output
    assert_one_line_error(predict(tmp_path / "nothing", project, "--arch", "deepfindet"), "is not a results folder")


def test_existing_picks_are_refused_without_overwrite_and_replaced_with_it(smoke_run, project, tmp_path):
    csv = tmp_path / "picks.csv"
    args = ["--arch", "matched-filter", "--runs", "TS_69_2", "--session-id", "mine", "--csv", csv]
    assert predict(smoke_run, project, *args, "--keep-all").exit_code == 0
    every = len(pd.read_csv(csv))
    assert_one_line_error(predict(smoke_run, project, *args), "run 'TS_69_2' already has picks of user "
                          "bench-matched-filter, session mine; pass --overwrite")  # fmt: skip
    assert len(pd.read_csv(csv)) == every  # nothing was written
    result = predict(smoke_run, project, *args, "--overwrite")
    assert result.exit_code == 0, result.output
    kept = len(pd.read_csv(csv))
    run = Project(project).run("TS_69_2")
    stored_picks = sum(len(p.numpy()[0]) for p in run.get_picks(user_id="bench-matched-filter", session_id="mine"))
    assert stored_picks == kept < every  # the thresholded picks replaced every candidate


def without(name: str) -> list[dict]:
    """The CZII particle objects without one."""
    return [o for o in CZII_OBJECTS if o["name"] != name]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ({"objects": without("thyroglobulin")}, "has other particle types than the model of 'deepfindet': missing "
                                                "thyroglobulin; extra none"),
        ({"objects": [*CZII_OBJECTS, {"name": "proteasome", "is_particle": True, "label": 7, "radius": 80.0,
                                      "color": [9, 9, 9, 255]}]},
         "missing none; extra proteasome"),
        ({"folder_voxel_size": 20.0, "true_voxel_size": 20.024}, "run 'TS_1' has no tomograms at 10.012 Å (within "
                                                                 "1%), the voxel size the model of 'deepfindet' was "
                                                                 "trained at; its voxel sizes: 20 Å"),
        ({"tomo_type": "wbp"}, "run 'TS_1' has no 'denoised' tomogram, the type the model of 'deepfindet' was trained "
                               "on; its tomograms at 10.012 Å: wbp"),
    ],
)  # fmt: skip
def test_a_project_that_does_not_fit_the_model_is_refused(smoke_run, copick_project, tmp_path, build, message):
    config = copick_project(**build)
    result = predict(smoke_run, config, "--arch", "deepfindet", "--all", "--csv", tmp_path / "picks.csv")
    assert_one_line_error(result, message)
    assert not list(config.parent.rglob("bench-*")) and not (tmp_path / "picks.csv").exists()


def test_copick_export_writes_star_files_with_the_predicted_coordinates(smoke_run, project, tmp_path):
    csv = tmp_path / "picks.csv"
    result = predict(smoke_run, project, "--arch", "matched-filter", "--runs", "TS_5_4", "--session-id", "out",
                     "--csv", csv)  # fmt: skip
    assert result.exit_code == 0, result.output
    exported = CliRunner().invoke(export, ["picks", "--config", str(project), "--picks-uri",
                                           "ribosome:bench-matched-filter/out", "--output-dir", str(tmp_path / "star"),
                                           "--output-format", "star", "--voxel-size", "10.012"])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    (path,) = (tmp_path / "star").glob("TS_5_4_ribosome_*.star")
    particles = starfile.read(path)
    particles = particles["particles"] if isinstance(particles, dict) else particles
    # RELION 5's centred Å coordinates: around the tomogram's centre, copick's shape / 2 x its voxel spacing
    spacing = copick.from_file(str(project)).get_run("TS_5_4").voxel_spacings[0]
    centre = np.asarray(Project(project).tomogram("TS_5_4").shape[::-1]) / 2 * spacing.voxel_size
    columns = [f"rlnCenteredCoordinate{axis}Angst" for axis in "XYZ"]
    theirs = particles[columns].to_numpy(float) + centre
    ours = pd.read_csv(csv).query("particle_type == 'ribosome'")[XYZ].to_numpy(float)
    assert len(ours) > 0 and set(particles["rlnTomoName"]) == {"TS_5_4"}
    np.testing.assert_allclose(theirs, ours, atol=1e-3)


@pytest.mark.slow
def test_no_keep_models_leaves_no_model_and_predict_says_why(smoke_config, tmp_path):
    result = bench("run", "--suite", "smoke", "--arch", "matched-filter", "--results", tmp_path / "results",
                   "--no-write-picks", "--no-keep-models")  # fmt: skip
    assert result.exit_code == 0, result.output
    store = ResultsStore.latest("smoke", tmp_path / "results")
    assert store.manifest["options"]["keep_models"] is False
    assert (store.folder / "jobs" / "matched-filter-seed0-ts" / "job.json").is_file()
    assert not list(store.folder.rglob("model"))
    refused = predict(store, smoke_config, "--arch", "matched-filter", "--csv", tmp_path / "picks.csv")
    assert_one_line_error(refused, "job matched-filter-seed0-ts kept no model", "was run with bench run "
                          "--no-keep-models")  # fmt: skip


def test_bench_run_keeps_models_by_default(smoke_run):
    assert smoke_run.manifest["options"]["keep_models"] is True
    assert all((smoke_run.folder / "jobs" / key / "model").is_dir() for key in smoke_run.manifest["jobs"])


def roundtrip(fitted: dict) -> dict:
    """What a fit's record is after the manifest's JSON."""
    return json.loads(json.dumps(fitted, default=plain))


@pytest.mark.parametrize(
    "entry",
    [
        {"step": "intensity-validation", "margin": [0.0, 1.0, 3.0, 40.0]},  # the margin 3 widens by each spread
        {"step": "hard-particle-offsets", "types": ["apo-ferritin"], "count": 2},
        {"step": "hard-particle-offsets", "types": ["apo-ferritin"], "parents": "all"},
    ],
)
def test_a_step_restored_from_what_it_fitted_applies_as_the_fitted_one(entry):
    data, candidates = intensity_data(val_contrast=1.0)
    fitted = build_step(entry, PARTICLES)
    fitted.fit(data)
    restored = build_step(entry, PARTICLES)
    restored.restore(roundtrip(fitted.fitted()))
    assert restored.fitted() == roundtrip(fitted.fitted())
    more = pd.concat([candidates, table([("apo-ferritin", 300, 300, 200, 0.95), ("apo-ferritin", 100, 100, 200, 0.5)])])
    for tomogram in (data.val[0].tomogram, empty_tomogram()):
        pd.testing.assert_frame_equal(restored(more, tomogram), fitted(more, tomogram))


def test_a_step_that_fitted_something_but_cannot_restore_it_is_refused():
    class Floor(Step):
        """A third-party step with a fit and no restore."""

        def fit(self, data):
            self.floor = 0.5

        def fitted(self):
            return {"floor": self.floor}

    with pytest.raises(BenchError, match="fitted floor but has no restore"):
        Floor(PARTICLES).restore({"floor": 0.5})
    Floor(PARTICLES).restore({})  # nothing fitted: nothing to take back
